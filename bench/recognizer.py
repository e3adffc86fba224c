"""Recognizer benchmark: real-time factor and word error rate of the sphinx backend.

    python -m bench.recognizer                      # the demo call, 1 and 2 concurrent streams
    python -m bench.recognizer --script path/to/call.toml --json out.json

Each participant's WAV of an audio script is fed to a pocketsphinx session as fast as the
session takes it (no pacing), through the same worker processes the server uses. Reported:

* real-time factor per stream: wall time to decode a stream / its audio duration, and the
  worker's CPU time / audio duration (steadier on a shared machine);
* word error rate per speaker against the script's reference transcript.

The run with two concurrent streams puts both speakers on one worker, as a call does when
the pool has one process; with one worker per core the streams would decode in parallel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import tomllib
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import ROOT
from bench.harness.cpu import cpu_seconds
from simulator.audio import DEMO_AUDIO_SCRIPT
from streaming.units import FRAME_MS


@dataclass
class StreamResult:
    speaker: str
    audio_seconds: float
    wall_seconds: float
    finals: int
    hypothesis: str
    reference: str
    wer: float

    @property
    def rtf(self) -> float:
        return self.wall_seconds / self.audio_seconds


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsite.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghij")
    import django

    django.setup()


def load_call(script: Path) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """The script's (speaker, wav) pairs and each speaker's reference text, in order."""
    data = tomllib.loads(script.read_text())
    participants = [
        (str(p.get("role") or Path(p["wav"]).stem), script.parent / p["wav"])
        for p in data.get("participants", [])
    ]
    reference_file = data.get("call", {}).get("transcript", "transcript.txt")
    references: dict[str, list[str]] = {}
    for line in (script.parent / reference_file).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        speaker, _start, _end, text = line.split("\t", 3)
        references.setdefault(speaker, []).append(text)
    return participants, {k: " ".join(v) for k, v in references.items()}


def read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise SystemExit(f"{path}: need 16-bit mono PCM")
        return wav.readframes(wav.getnframes()), wav.getframerate()


async def decode(
    recognizer: Any, speaker: str, pcm: bytes, rate: int, reference: str
) -> StreamResult:
    from streaming.recognizers import SessionConfig
    from streaming.recognizers.evaluation import word_error_rate

    session = recognizer.open(SessionConfig(sample_rate=rate, label=speaker))
    await session.start()
    finals: list[str] = []

    async def collect() -> None:
        async for result in session.results():
            if result.final:
                finals.append(result.text)

    reader = asyncio.create_task(collect())
    frame = rate * FRAME_MS // 1000 * 2
    started = time.perf_counter()
    for i in range(0, len(pcm), frame):
        await session.feed(pcm[i : i + frame])
        if i % (frame * 50) == 0:
            await asyncio.sleep(0)  # let the pipe drain, as a live call would
    await session.close()
    await reader
    wall = time.perf_counter() - started
    hypothesis = " ".join(finals)
    return StreamResult(
        speaker=speaker,
        audio_seconds=len(pcm) / 2 / rate,
        wall_seconds=wall,
        finals=len(finals),
        hypothesis=hypothesis,
        reference=reference,
        wer=word_error_rate(reference, hypothesis),
    )


async def run(script: Path, concurrency: list[int]) -> dict[str, Any]:
    from streaming.recognizers import SessionConfig
    from streaming.recognizers.evaluation import normalize, word_errors
    from streaming.recognizers.sphinx import SphinxRecognizer

    participants, references = load_call(script)
    audio = {speaker: read_wav(path) for speaker, path in participants}
    report: dict[str, Any] = {"script": str(script.relative_to(ROOT)), "runs": []}
    for streams in concurrency:
        recognizer = SphinxRecognizer(workers=1, backlog_seconds=3600)
        warm = recognizer.open(SessionConfig(sample_rate=16000))
        await warm.start()  # start the worker outside the timing
        await warm.close()
        async for _ in warm.results():
            pass
        (pid,) = recognizer.worker_pids()
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        chosen = participants[:streams] if streams <= len(participants) else participants
        results = await asyncio.gather(
            *(decode(recognizer, s, *audio[s], references.get(s, "")) for s, _ in chosen)
        )
        wall = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        await recognizer.aclose()
        audio_total = sum(r.audio_seconds for r in results)
        errors = sum(word_errors(normalize(r.reference), normalize(r.hypothesis)) for r in results)
        words = sum(len(normalize(r.reference)) for r in results)
        run_report = {
            "streams": len(results),
            "wall_seconds": round(wall, 3),
            "worker_cpu_seconds": round(cpu, 3),
            "cpu_rtf_per_stream": round(cpu / audio_total, 4),
            "wall_rtf_per_stream": [round(r.rtf, 4) for r in results],
            "wer": round(errors / words, 4) if words else None,
            "per_stream": [asdict(r) | {"rtf": round(r.rtf, 4)} for r in results],
        }
        report["runs"].append(run_report)
        print(
            f"{len(results)} concurrent stream(s): wall RTF per stream "
            f"{', '.join(f'{r.rtf:.3f}' for r in results)}; worker CPU RTF "
            f"{cpu / audio_total:.3f}; WER {run_report['wer']:.1%}",
            flush=True,
        )
        for r in results:
            print(f"  {r.speaker}: {r.finals} finals, WER {r.wer:.1%}", flush=True)
            print(f"    said:  {r.reference}", flush=True)
            print(f"    heard: {r.hypothesis}", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", type=Path, default=DEMO_AUDIO_SCRIPT)
    parser.add_argument("--streams", default="1,2", help="concurrent streams per run")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)
    _setup_django()
    concurrency = [int(x) for x in args.streams.split(",") if x.strip()]
    report = asyncio.run(run(args.script.resolve(), concurrency))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
