"""What a few small packets can make a worker do: the amplification cases.

**Question:** can one ACS stream of a few hundred small packets stall a worker's event loop
or take its memory, or flood a supervisor's wall? **Target:** the loop's longest stall under
100 ms and the worker's memory under 300 MB in every case; what exceeds a call's bounds is
refused or capped with a logged reason.

Each case runs on a fresh worker (one process pinned to CPU 0, SQLite, in-memory layer, no
recognizer) with a supervisor's wall open on it. One ACS socket sends the case's packets as
fast as they go, then the worker is watched for ``--watch`` seconds (live analytics tick
every second). Meanwhile a probe asks ``/healthz`` every 20 ms: the longest answer is the
longest the loop was away. At the end: the worker's peak memory (``VmHWM``), the bytes its
wall received, and what it logged about bounds.

* ``far-speakers``: 400 finals from 400 speakers at offsets near 24 h (80 KB).
* ``participants``: 1000 finals from 1000 speakers (the participant list).
* ``far-audio``: audio frames from 200 speakers, stamped 30 h after the call's first.
* ``ordinary``: 100 finals from two speakers in the call's first 50 s, for scale.

``--servers callsite,callsite@DIR`` measures another checkout the same way, side by side
(``DIR`` a worktree of an older commit: its own schema, its own code).

    .venv/bin/python -m bench.bounds --json bounds.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness.clients import ACS_PATH, PageSocket, open_page, open_socket
from bench.harness.db import fresh_sqlite, seed_supervisor
from bench.harness.report import code_version, header, write_json
from bench.harness.runs import workdir
from bench.harness.servers import Server, ServerSpec
from bench.harness.ws import WebSocketClient
from simulator import wire
from streaming.units import TICKS_PER_SECOND

STALL_TARGET_MS = 100.0
MEMORY_TARGET_MB = 300.0
PROBE_EVERY = 0.02
BOUND_WORDS = ("participants", "live figures leave out", "more than 24 h", "refused")
NEAR_A_DAY = (24 * 3600 - 60) * TICKS_PER_SECOND
PCM = bytes(640)  # one 20 ms frame of 16 kHz silence


def far_speakers() -> list[str]:
    return [
        wire.transcription_data(
            f"final {n}", offset=NEAR_A_DAY + n, duration=10_000, participant=f"4:+1555{n:07d}"
        )
        for n in range(400)
    ]


def participants() -> list[str]:
    return [
        wire.transcription_data(
            "mm", offset=n * TICKS_PER_SECOND, duration=5_000_000, participant=f"4:+1{n:010d}"
        )
        for n in range(1000)
    ]


def far_audio() -> list[str]:
    start = datetime.now(UTC)
    frames = [wire.audio_metadata()]
    for n in range(200):
        frames.append(wire.audio_data(PCM, at=start, participant=f"8:acs:speaker-{n:04d}"))
        later = start + timedelta(hours=30, milliseconds=20 * n)
        frames.append(wire.audio_data(PCM, at=later, participant=f"8:acs:speaker-{n:04d}"))
    return frames


def ordinary() -> list[str]:
    voices = ("8:acs:agent-0001", "4:+15550001234")
    return [
        wire.transcription_data(
            f"turn {n} of an ordinary call, a sentence of about ten words",
            offset=n * TICKS_PER_SECOND // 2,  # the first 50 s: as sent, not ahead of the call
            duration=TICKS_PER_SECOND * 2 // 5,
            participant=voices[n % 2],
            confidence=0.9,
        )
        for n in range(100)
    ]


CASES: dict[str, Callable[[], list[str]]] = {
    "far-speakers": far_speakers,
    "participants": participants,
    "far-audio": far_audio,
    "ordinary": ordinary,
}


@dataclass
class Result:
    server: str
    case: str
    packets: int = 0
    packet_bytes: int = 0
    send_s: float = 0.0
    longest_stall_ms: float = 0.0
    probes: int = 0
    peak_rss_mb: float = 0.0
    wall_bytes: int = 0
    wall_messages: int = 0
    bound_lines: int = 0
    bound_samples: list[str] = field(default_factory=list)  # the first few, for the report
    problems: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def passes(self) -> bool:
        return (
            not self.error
            and self.longest_stall_ms < STALL_TARGET_MS
            and self.peak_rss_mb < MEMORY_TARGET_MB
        )

    def line(self) -> str:
        if self.error:
            return f"{self.server:28} {self.case:13} error: {self.error}"
        return (
            f"{self.server:28} {self.case:13} {self.packets:5} packets"
            f" {self.packet_bytes / 1e3:6.0f} KB in {self.send_s:4.1f} s"
            f"  longest stall {self.longest_stall_ms:7.0f} ms"
            f"  peak RSS {self.peak_rss_mb:6.0f} MB  wall {self.wall_bytes / 1e3:7.1f} KB"
            f" ({self.wall_messages} messages)  bound lines {self.bound_lines}"
            f"  -> {'ok' if self.passes else 'over'}"
        )


class Probe:
    """Asks ``/healthz`` every PROBE_EVERY seconds; keeps the longest answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.longest = 0.0
        self.count = 0

    async def ask(self) -> None:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await reader.read()
        writer.close()
        self.longest = max(self.longest, time.monotonic() - started)
        self.count += 1

    async def run(self) -> None:
        while True:
            await asyncio.wait_for(self.ask(), 60)
            await asyncio.sleep(PROBE_EVERY)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(spec: ServerSpec, case: str, args: argparse.Namespace, folder: Path) -> Result:
    result = Result(spec.name, case)
    token = secrets.token_hex(4)
    env = {
        "DATABASE_URL": fresh_sqlite(folder / f"bounds-{token}.sqlite3"),
        # one key for the session made beforehand and the server that reads it
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
    }
    cookie = await asyncio.to_thread(seed_supervisor, args.secret, env, spec.root)
    server = Server(spec, folder, args.secret, env, cpu=0)
    probe_task: asyncio.Task[None] | None = None
    acs: WebSocketClient | None = None
    try:
        await server.ready()
        wall = await open_page(PageSocket("/ws/dashboard/", server.port, cookie))
        probe = Probe(server.port)
        probe_task = asyncio.create_task(probe.run())
        packets = CASES[case]()
        result.packets = len(packets)
        result.packet_bytes = sum(len(p) for p in packets)
        acs = WebSocketClient(
            f"{ACS_PATH}?token={args.secret}",
            server.port,
            {"x-ms-call-connection-id": f"bounds-{case}-{token}"},
        )
        await open_socket(acs)
        started = time.monotonic()
        acs.send_text(wire.transcription_metadata(call_connection_id=f"bounds-{case}-{token}"))
        for n, text in enumerate(packets):
            acs.send_text(text)
            if n % 50 == 49:
                await asyncio.sleep(0)  # let the probe run
        result.send_s = time.monotonic() - started
        await asyncio.sleep(args.watch)
        await acs.close_cleanly()
        await asyncio.sleep(2)  # the call's end: the last figures, the wall's update
        if probe_task.done():
            probe_task.result()  # a failed probe: its error
        result.longest_stall_ms = probe.longest * 1000
        result.probes = probe.count
        result.peak_rss_mb = peak_rss_mb(server.pid)  # taskset execs: the same process
        result.wall_bytes = sum(wall.event_bytes.values())
        result.wall_messages = sum(wall.events.values())
        wall.close()
    except Exception as error:  # reported; the other cases go on
        result.error = f"{type(error).__name__}: {error}"
    finally:
        if probe_task is not None:
            probe_task.cancel()
            with contextlib.suppress(BaseException):
                await probe_task
        server.stop()
    log = server.log_path.read_text(errors="replace")
    bounds = [line for line in log.splitlines() if any(word in line for word in BOUND_WORDS)]
    result.bound_lines = len(bounds)
    result.bound_samples = bounds[:3]
    result.problems = [line for line in log.splitlines() if "Traceback" in line or "ERROR" in line]
    return result


def markdown(results: Sequence[Result]) -> str:
    rows = [
        "| case | server | packets (KB) | longest stall | peak RSS | wall received | bound lines |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.error:
            rows.append(f"| {r.case} | {r.server} | error: {r.error} | | | | |")
            continue
        stall = f"{r.longest_stall_ms:,.0f} ms" + ("" if r.longest_stall_ms < 100 else " ✗")
        rss = f"{r.peak_rss_mb:,.0f} MB" + ("" if r.peak_rss_mb < 300 else " ✗")
        rows.append(
            f"| {r.case} | {r.server} | {r.packets} ({r.packet_bytes / 1e3:.0f}) | {stall} "
            f"| {rss} | {r.wall_bytes / 1e3:,.1f} KB in {r.wall_messages} | {r.bound_lines} |"
        )
    return "\n".join(rows)


async def bench(args: argparse.Namespace, folder: Path) -> list[Result]:
    results = []
    for case in args.cases:
        for spec in args.servers:
            result = await measure(spec, case, args, folder)
            print(result.line(), flush=True)
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bounds", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--servers", default="callsite", help="callsite, callsite@DIR, ...")
    parser.add_argument("--watch", type=float, default=8.0, help="seconds after sending")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, help="keep databases and server logs here")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    try:
        args.servers = [ServerSpec.parse(s) for s in args.servers.split(",")]
    except ValueError as error:
        parser.error(str(error))
    args.secret = secrets.token_urlsafe(24)
    code = code_version()
    print(header("amplification bounds", code), flush=True)
    with workdir(args.workdir, "bench-bounds-") as folder:
        results = asyncio.run(bench(args, folder))
    print()
    print(markdown(results))
    if args.json:
        write_json(args.json, code, {"results": [asdict(r) for r in results]})
    return 0 if all(r.passes for r in results if r.server == "callsite") else 1


if __name__ == "__main__":
    raise SystemExit(main())
