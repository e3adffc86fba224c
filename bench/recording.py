"""What recording costs: on the frame path, per chunk written, and in storage.

**Question:** with ``CALLSITE_RECORDING=on``, what does each 20 ms frame cost the event loop
more, what does writing a chunk cost the thread that writes it, and how large are the files?
**Target:** under a microsecond per frame (a frame's whole path is tens of microseconds), a
chunk written in a few milliseconds, and files well under the raw PCM.

* ``frame``: ``TrackRecorder.add`` for a frame, against the same loop that only slices the
  frame (the baseline), in interleaved rounds so that the machine's noise hits both; the
  figure is the median difference per frame. Chunks are sealed as in a call, but not
  written (that is the next figure).
* ``chunk``: FLAC-encoding one chunk of ``CALLSITE_RECORDING_CHUNK_SECONDS`` (5 s) of the
  demo call's agent, the work ``store.save_chunk`` does besides one storage write and one
  row.
* ``assembly``: decoding and laying out ten minutes of a track and encoding it again, what
  ``store.assemble`` does per track when a call ends.
* ``size``: each demo track and their mix as FLAC against its raw 16-bit PCM.

    .venv/bin/python -m bench.recording --rounds 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from streaming.recording import codec
from streaming.units import TICKS_PER_SECOND

AUDIO = Path(__file__).resolve().parents[1] / "simulator" / "calls" / "audio"
RATE, FRAME = 16000, 320
FRAME_TICKS = TICKS_PER_SECOND // 50


def _setup_django() -> None:
    """The recorder writes through the ORM: Django's settings, no database reached."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsite.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghij")
    import django

    django.setup()


def _track(name: str) -> np.ndarray:
    samples, rate = soundfile.read(AUDIO / f"{name}.wav", dtype="int16")
    assert rate == RATE
    return np.asarray(samples)


def _frames(samples: np.ndarray) -> list[bytes]:
    return [samples[i : i + FRAME].tobytes() for i in range(0, len(samples) - FRAME + 1, FRAME)]


def frame_cost(frames: list[bytes], rounds: int) -> dict[str, float]:
    """Nanoseconds per frame: with the recorder, without, and the difference (medians)."""
    _setup_django()
    from streaming.recording.recorder import TrackRecorder
    from streaming.recording.store import TrackKey

    class Unwritten(TrackRecorder):
        """A recorder whose sealed chunks are dropped: the frame path alone."""

        def seal(self) -> None:
            self.open = None

    recorder = Unwritten(TrackKey(0, "8:acs:bench", None), label="bench", chunk_seconds=5)
    with_ns, without_ns = [], []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for index, pcm in enumerate(frames):
            recorder.add(index * FRAME_TICKS, pcm, RATE)
        with_ns.append((time.perf_counter_ns() - start) / len(frames))
        start = time.perf_counter_ns()
        for index, pcm in enumerate(frames):
            _ = index * FRAME_TICKS, pcm[:0], RATE
        without_ns.append((time.perf_counter_ns() - start) / len(frames))
    return {
        "with_ns": statistics.median(with_ns),
        "without_ns": statistics.median(without_ns),
        "recording_ns": statistics.median(w - o for w, o in zip(with_ns, without_ns, strict=True)),
    }


def _median_ms(work: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(rounds: int) -> dict[str, Any]:
    agent, customer = _track("agent"), _track("customer")
    mix = np.clip(agent.astype(np.int32) + customer, -32768, 32767).astype(np.int16)
    chunk = agent[RATE * 10 : RATE * 15]
    ten_minutes = np.tile(agent, int(np.ceil(600 * RATE / len(agent))))[: 600 * RATE]
    ten_minutes_flac = codec.encode(ten_minutes, RATE)

    def assemble_one() -> None:
        samples = np.zeros(len(ten_minutes), dtype=np.int16)
        data, _ = codec.decode(ten_minutes_flac)
        samples[: len(data)] = data
        codec.encode(samples, RATE)

    sizes = {
        name: {"raw": len(x) * 2, "flac": len(codec.encode(x, RATE))}
        for name, x in (("agent", agent), ("customer", customer), ("mix", mix))
    }
    return {
        "frame": frame_cost(_frames(agent), rounds),
        "chunk_ms": _median_ms(lambda: codec.encode(chunk, RATE), rounds),
        "assembly_10min_ms": _median_ms(assemble_one, max(3, rounds // 4)),
        "size": {k: {**v, "ratio": round(v["flac"] / v["raw"], 3)} for k, v in sizes.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(args.rounds)
    frame = figures["frame"]
    print(
        f"frame: {frame['recording_ns']:.0f} ns more per frame with the recorder "
        f"({frame['with_ns']:.0f} ns against {frame['without_ns']:.0f} ns)"
    )
    print(f"chunk: {figures['chunk_ms']:.2f} ms to encode 5 s")
    print(f"assembly: {figures['assembly_10min_ms']:.0f} ms per 10-minute track")
    for name, size in figures["size"].items():
        flac, raw = size["flac"], size["raw"]
        print(f"size: {name}: {flac:,} bytes FLAC of {raw:,} raw ({size['ratio']:.0%})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
