"""Recognizer benchmark: sphinx and whisper side by side, in one run.

    python -m bench.recognizer                       # everything (about 20 minutes)
    python -m bench.recognizer --parts accuracy,cpu  # word error rate and CPU only
    python -m bench.recognizer --json recognizer.json

Streams go through the same worker processes the server uses (``WorkerPool``), with the
backends' settings as the server builds them. Measured:

* **accuracy** (``accuracy``): the demo call (one stream per participant) and the
  read-speech corpus of ``bench.speech_corpus`` (six voices, each one stream, clean and
  through a telephone channel), each fed to one worker as fast as it takes it, finals only.
  The bench and its worker are pinned to one CPU (``--cpu``). Word error rate is normalised
  (``streaming.recognizers.evaluation``: "4" is "four", "Mr." is "mister"); the worker's CPU
  time over the audio's duration is the real-time factor of dense read speech;
* **CPU per stream** (``cpu``): the demo call, its two streams at real time as a live call
  sends them, on one pinned worker, for each interim setting: finals only, and with interims
  (sphinx: every 0.5 s of speech; whisper: every 2 s and every 1 s). Real time matters for
  whisper: its interim decodes run only while no audio is queued, so a worker fed faster than
  real time skips them;
* **latency** (``latency``): ``--latency-streams`` streams (default 20: ten copies of the
  demo call, starts staggered) fed at real time to one worker per core, default settings.
  For each reference turn, the time from feeding its last frame to receiving the last final
  that covers it;
* **memory** (``memory``): one worker holding 1, 10 and 40 sessions at once, each fed the
  demo call's agent track as fast as it goes: the worker's resident set while they run
  (sampled every 0.1 s), next to its resident set idle and its peak since it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRAME_MS = 20
# (engine, interim setting, label): the settings compared for CPU per stream.
CONFIGS = [
    ("sphinx", None, "finals only"),
    ("sphinx", 0.5, "interims every 0.5 s"),
    ("whisper", None, "finals only"),
    ("whisper", 2.0, "interims every 2 s"),
    ("whisper", 1.0, "interims every 1 s"),
]
DEFAULT_INTERIMS = {"sphinx": 0.5, "whisper": 2.0}


@dataclass
class Stream:
    name: str
    group: str  # demo, clean, phone
    pcm: bytes
    rate: int
    said: tuple[tuple[float, float, str], ...]  # (start, end, text) in seconds

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsite.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghij")
    import django

    django.setup()


def demo_streams() -> list[Stream]:
    from simulator import DEMO_AUDIO_DIR

    turns: dict[str, list[tuple[float, float, str]]] = {}
    for line in (DEMO_AUDIO_DIR / "transcript.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            speaker, start, end, text = line.split("\t", 3)
            turns.setdefault(speaker, []).append((float(start), float(end), text))
    streams = []
    for speaker, said in turns.items():
        with wave.open(str(DEMO_AUDIO_DIR / f"{speaker}.wav")) as wav:
            pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
        streams.append(Stream(f"demo {speaker}", "demo", pcm, rate, tuple(said)))
    return streams


def corpus_streams() -> list[Stream]:
    from bench.speech_corpus import RATE, corpus

    return [
        Stream(clip.name, group, clip.pcm, RATE, clip.said)
        for group, clips in corpus().items()
        for clip in clips
    ]


def make_recognizer(
    engine: str, interims: float | None, workers: int, watchdog: float = 10.0
) -> Any:
    """A pool built as the server builds it, with interims as asked and no backlog bound.

    ``watchdog`` is longer for the memory runs: a pocketsphinx worker opening 40 sessions at
    once loads 40 decoders (about 90 MB each) and answers nothing meanwhile."""
    from streaming.recognizers.sphinx import SphinxRecognizer
    from streaming.recognizers.whisper import WhisperRecognizer

    if engine == "sphinx":
        return SphinxRecognizer(
            workers=workers,
            backlog_seconds=36000,
            watchdog_seconds=watchdog,
            interim_ms=10**9 if interims is None else round(interims * 1000),
        )
    recognizer = WhisperRecognizer.from_settings()
    recognizer.size = workers
    recognizer.backlog_seconds = 36000
    recognizer.interim_seconds = interims or 0.0
    recognizer.watchdog_seconds = watchdog
    return recognizer


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident set now (``VmRSS``) or at its peak (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def warm(recognizer: Any) -> list[int]:
    """Start every worker outside the timing; their pids."""
    from streaming.recognizers import SessionConfig

    sessions = [recognizer.open(SessionConfig(sample_rate=16000)) for _ in range(recognizer.size)]
    await asyncio.gather(*(s.start() for s in sessions))
    for session in sessions:
        await session.close()
        async for _ in session.results():
            pass
    return list(recognizer.worker_pids())


async def feed(recognizer: Any, stream: Stream, *, real_time: bool = False) -> dict[str, Any]:
    """Feed one stream; its finals (with arrival times) and when each frame was fed."""
    from streaming.recognizers import SessionConfig

    session = recognizer.open(SessionConfig(sample_rate=stream.rate, label=stream.name))
    await session.start()
    finals: list[tuple[float, Any]] = []
    interims = 0

    async def collect() -> None:
        nonlocal interims
        async for result in session.results():
            if result.final:
                finals.append((time.monotonic(), result))
            elif result.text:
                interims += 1

    reader = asyncio.create_task(collect())
    frame = stream.rate * FRAME_MS // 1000 * 2
    fed: list[float] = []
    started = time.monotonic()
    for number, i in enumerate(range(0, len(stream.pcm), frame)):
        if real_time:
            await asyncio.sleep(max(0.0, started + number * FRAME_MS / 1000 - time.monotonic()))
        elif number % 50 == 0:
            await asyncio.sleep(0)  # let the pipe drain, as a live call would
        await session.feed(stream.pcm[i : i + frame])
        fed.append(time.monotonic())
    await session.close()
    await reader
    return {"finals": finals, "fed": fed, "interims": interims}


def errors(stream: Stream, finals: list[tuple[float, Any]]) -> tuple[int, int]:
    from streaming.recognizers.evaluation import normalize, word_errors

    reference = normalize(" ".join(text for _, _, text in stream.said))
    hypothesis = normalize(" ".join(result.text for _, result in finals))
    return word_errors(reference, hypothesis), len(reference)


async def accuracy(streams: list[Stream], cpu: int) -> list[dict[str, Any]]:
    rows = []
    os.sched_setaffinity(0, {cpu})  # the workers started from here inherit it
    try:
        for engine, interims, label in [c for c in CONFIGS if c[1] is None]:
            recognizer = make_recognizer(engine, interims, workers=1)
            (pid,) = await warm(recognizer)
            row: dict[str, Any] = {"engine": engine, "interims": label, "groups": {}}
            for group in ("demo", "clean", "phone"):
                chosen = [s for s in streams if s.group == group]
                before = cpu_seconds(pid)
                counted = [0, 0]
                heard = []
                for stream in chosen:
                    result = await feed(recognizer, stream)
                    wrong, words = errors(stream, result["finals"])
                    counted[0] += wrong
                    counted[1] += words
                    heard.append(" ".join(r.text for _, r in result["finals"]))
                audio = sum(s.seconds for s in chosen)
                row["groups"][group] = {
                    "streams": len(chosen),
                    "audio_seconds": round(audio, 1),
                    "wer": round(counted[0] / counted[1], 4),
                    "cpu_rtf": round((cpu_seconds(pid) - before) / audio, 4),
                    "heard": heard,
                }
            await recognizer.aclose()
            rows.append(row)
            print(
                f"{engine:8} {label:22} "
                + "  ".join(
                    f"{g}: WER {v['wer']:.1%} RTF {v['cpu_rtf']:.3f}"
                    for g, v in row["groups"].items()
                ),
                flush=True,
            )
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return rows


async def cpu_per_stream(streams: list[Stream], cpu: int) -> list[dict[str, Any]]:
    demo = [s for s in streams if s.group == "demo"]
    audio = sum(s.seconds for s in demo)
    rows = []
    os.sched_setaffinity(0, {cpu})
    try:
        for engine, interims, label in CONFIGS:
            recognizer = make_recognizer(engine, interims, workers=1)
            (pid,) = await warm(recognizer)
            before = cpu_seconds(pid)
            results = await asyncio.gather(*(feed(recognizer, s, real_time=True) for s in demo))
            rtf = (cpu_seconds(pid) - before) / audio
            await recognizer.aclose()
            shown = sum(result["interims"] for result in results)
            rows.append({"engine": engine, "interims": label, "cpu_rtf": round(rtf, 4),
                         "interims_with_text": shown})  # fmt: skip
            print(f"{engine:8} {label:22} CPU RTF per stream {rtf:.3f} "
                  f"({shown} interims with text)", flush=True)  # fmt: skip
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return rows


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def latency(streams: list[Stream], count: int, engines: list[str]) -> list[dict[str, Any]]:
    demo = [s for s in streams if s.group == "demo"]
    rows = []
    for engine in engines:
        workers = os.cpu_count() or 1
        recognizer = make_recognizer(engine, DEFAULT_INTERIMS[engine], workers=workers)
        await warm(recognizer)

        async def one(index: int, recognizer: Any = recognizer) -> dict[str, Any]:
            await asyncio.sleep(index * 0.37)  # calls do not all start on the same frame
            return await feed(recognizer, demo[index % len(demo)], real_time=True)

        results = await asyncio.gather(*(one(i) for i in range(count)))
        delays = []
        missing = 0
        for index, result in enumerate(results):
            stream = demo[index % len(demo)]
            for start, end, _ in stream.said:
                covering = [
                    arrived
                    for arrived, final in result["finals"]
                    if final.offset / 1e7 < end and (final.offset + final.duration) / 1e7 > start
                ]
                last_frame = min(len(result["fed"]) - 1, int(end * 1000 / FRAME_MS))
                if covering:
                    delays.append(max(covering) - result["fed"][last_frame])
                else:
                    missing += 1
        await recognizer.aclose()
        row = {
            "engine": engine,
            "streams": count,
            "workers": workers,
            "turns": len(delays),
            "turns_without_final": missing,
            "p50": round(_percentile(delays, 0.5), 3),
            "p90": round(_percentile(delays, 0.9), 3),
            "max": round(max(delays, default=0.0), 3),
        }
        rows.append(row)
        print(
            f"{engine:8} {count} streams on {workers} workers: final after end of speech "
            f"p50 {row['p50']:.2f} s, p90 {row['p90']:.2f} s, max {row['max']:.2f} s "
            f"({missing} turns without a final)",
            flush=True,
        )
    return rows


async def memory(
    streams: list[Stream], counts: list[int], seconds: float, engines: list[str]
) -> list[dict[str, Any]]:
    agent = next(s for s in streams if s.name == "demo agent")
    clip = Stream(agent.name, "demo", agent.pcm[: int(seconds * agent.rate) * 2], agent.rate, ())
    rows = []
    for engine in engines:
        for count in counts:
            recognizer = make_recognizer(engine, DEFAULT_INTERIMS[engine], 1, watchdog=600)
            (pid,) = await warm(recognizer)
            idle = rss_mb(pid)
            running = asyncio.gather(*(feed(recognizer, clip) for _ in range(count)))
            busy = idle
            while not running.done():  # the resident set while the sessions are open
                busy = max(busy, rss_mb(pid))
                await asyncio.sleep(0.1)
            await running
            peak = rss_mb(pid, "VmHWM")
            await recognizer.aclose()
            rows.append({"engine": engine, "sessions": count, "idle_mb": round(idle),
                         "busy_mb": round(busy), "peak_mb": round(peak)})  # fmt: skip
            print(
                f"{engine:8} {count:3} sessions on one worker: RSS {busy:.0f} MB while they "
                f"run (idle {idle:.0f} MB; peak since start {peak:.0f} MB)",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="accuracy,cpu,latency,memory")
    parser.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1)
    parser.add_argument("--latency-streams", type=int, default=20)
    parser.add_argument("--memory-sessions", default="1,10,40")
    parser.add_argument("--memory-seconds", type=float, default=20.0)
    parser.add_argument("--engines", default="sphinx,whisper", help="for latency and memory")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)
    _setup_django()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    streams = demo_streams() + (corpus_streams() if "accuracy" in parts else [])
    report: dict[str, Any] = {"parts": sorted(parts)}
    if "accuracy" in parts:
        report["accuracy"] = asyncio.run(accuracy(streams, args.cpu))
    if "cpu" in parts:
        report["cpu"] = asyncio.run(cpu_per_stream(streams, args.cpu))
    if "latency" in parts:
        report["latency"] = asyncio.run(latency(streams, args.latency_streams, engines))
    if "memory" in parts:
        counts = [int(x) for x in args.memory_sessions.split(",") if x.strip()]
        report["memory"] = asyncio.run(memory(streams, counts, args.memory_seconds, engines))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
