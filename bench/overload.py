"""A worker pushed past its capacity: does it shed new streams and keep the calls it holds?

**Question:** when ACS opens more calls on one worker than it can carry, does the worker
refuse the excess with a reason (503, logged, counted at ``/metrics``, ``/readyz`` not
ready) while the calls it took keep their frame lag under 100 ms? And what happens without
shedding? **Target:** p99 frame lag of the calls held under 100 ms through the rush.

One Callsite worker (``python -m callsite.server``, as ``manage.py serve`` runs it; SQLite,
in-memory layer, no recognizer) on CPU 0, the load generator on CPU 1. ``--hold`` calls
(100) stream audio at real time, a frame every 20 ms each. Then for ``--rush-seconds`` (15)
ACS tries to open ``--rush-rate`` (20) more calls a second, each streaming at real time
once taken: 300 more than the worker held, well past the ~150-175 it carries. The window
runs from the start of the rush to ``--after`` (10) seconds after its end; ``/readyz`` is
asked every half second meanwhile. Each run measures the worker with shedding at
``CALLSITE_SHED_LOOP_BUSY_PERCENT`` (``--busy``, 70) and ``CALLSITE_SHED_LOOP_LAG_MS``
(``--limit``, 50) and, right after, with shedding off (both 0), side by side.

    .venv/bin/python -m bench.overload --runs 3 --json overload.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import secrets
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.harness.clients import AUDIO_METADATA, PERIOD, CallSocket, Stamp, open_socket
from bench.harness.cpu import pin_generator
from bench.harness.db import copy_database, migrate
from bench.harness.metrics import LAG_TARGET, Snapshot, lag_between, read_metrics
from bench.harness.report import code_version, header, write_json
from bench.harness.runs import workdir
from bench.harness.servers import CALLSITE, Server

PHASES = 10  # sockets send in 10 phases 2 ms apart, so the frames of a period are spread
SHED = "callsite_ingest_streams_shed_total"


class Streams:
    """Calls' ACS sockets, each sending one frame every 20 ms; sockets join while it runs."""

    def __init__(self) -> None:
        self.phases: list[list[CallSocket]] = [[] for _ in range(PHASES)]
        self.joined = 0
        self.sent = 0
        self.stamp = Stamp()
        self.stop_at = math.inf

    def add(self, sock: CallSocket) -> None:
        self.phases[self.joined % PHASES].append(sock)
        self.joined += 1

    @property
    def sockets(self) -> list[CallSocket]:
        return [sock for phase in self.phases for sock in phase]

    async def drive(self) -> None:
        step_s = PERIOD / PHASES
        t0, step = time.monotonic(), 0
        while (now := time.monotonic()) < self.stop_at:
            due = int((now - t0) / step_s)
            if due >= step:
                stamp = self.stamp.at(time.time())
                while step <= due:
                    for sock in self.phases[step % PHASES]:
                        if sock.live:
                            sock.send_frame(0, stamp)
                            self.sent += 1
                    step += 1
            await asyncio.sleep(max(0.0, t0 + step * step_s - time.monotonic()))


@dataclass
class Run:
    mode: str  # shed | off
    run: int
    held: int = 0
    attempts: int = 0
    taken: int = 0
    refused: int = 0  # answered 503
    failed: int = 0  # no answer in time, or the connection dropped before one
    first_refusal_s: float = math.nan  # after the rush began
    shed_counted: int = 0
    refusals_logged: int = 0
    not_ready_samples: int = 0
    ready_samples: int = 0
    readyz_unanswered: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    frames_handled: int = 0
    longest_stall_ms: float = math.nan
    busy_before: float = math.nan  # the loop's busy share while it held the first calls
    lag_before_ms: float = math.nan
    dropped_by_server: int = 0
    failures: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def passes(self) -> bool:
        return not self.error and self.p99_ms < LAG_TARGET * 1000 and not self.dropped_by_server

    def line(self) -> str:
        if self.error:
            return f"{self.mode:4} run {self.run}: error: {self.error}"
        first = "-" if math.isnan(self.first_refusal_s) else f"{self.first_refusal_s:.1f} s"
        return (
            f"{self.mode:4} run {self.run}: held {self.held} (busy {self.busy_before:.0%},"
            f" {self.lag_before_ms:.0f} ms late) + tried {self.attempts}: taken"
            f" {self.taken}, refused {self.refused} (first after {first}), failed {self.failed};"
            f"  lag p50 {self.p50_ms:6.1f} p99 {self.p99_ms:7.1f} max<= {self.max_ms:6.0f} ms"
            f" ({self.frames_handled} frames);  readyz 503 {self.not_ready_samples}/"
            f"{self.not_ready_samples + self.ready_samples} (+{self.readyz_unanswered} no answer)"
            f";  shed counted {self.shed_counted}, logged {self.refusals_logged}"
            f";  longest stall {self.longest_stall_ms:.0f} ms -> {'ok' if self.passes else 'over'}"
        )


async def readiness(port: int, run: Run, until: float) -> None:
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 2.0)
            writer.close()
            if b" 503 " in answer.split(b"\r\n", 1)[0] and b"over capacity" in answer:
                run.not_ready_samples += 1
            else:
                run.ready_samples += 1
        except (TimeoutError, OSError):
            run.readyz_unanswered += 1
        await asyncio.sleep(0.5)


async def attempt(
    index: int, port: int, secret: str, streams: Streams, run: Run, rush_started: float
) -> None:
    sock = CallSocket(index, port, secret, f"overload-{run.mode}-{run.run}-{index}", 1)
    try:
        await asyncio.wait_for(open_socket(sock), 10)
    except (ConnectionError, TimeoutError, OSError) as error:
        if " 503 " in str(error):
            run.refused += 1
            if math.isnan(run.first_refusal_s):
                run.first_refusal_s = time.monotonic() - rush_started
        else:
            run.failed += 1
            if len(run.failures) < 5:
                run.failures.append(f"{type(error).__name__}: {error}")
        sock.close()
        return
    sock.send_text(AUDIO_METADATA)
    streams.add(sock)
    run.taken += 1


async def measure(mode: str, n: int, args: argparse.Namespace, folder: Path, template: Path) -> Run:
    run = Run(mode, n)
    env = {
        "DATABASE_URL": copy_database(template, folder, secrets.token_hex(4)),
        "CALLSITE_SHED_LOOP_LAG_MS": str(args.limit if mode == "shed" else 0),
        "CALLSITE_SHED_LOOP_BUSY_PERCENT": str(args.busy if mode == "shed" else 0),
    }
    server = Server(CALLSITE, folder, args.secret, env, cpu=0, entry="callsite.server")
    streams = Streams()
    driver: asyncio.Task[None] | None = None
    try:
        await server.ready()
        held = [
            CallSocket(i, server.port, args.secret, f"held-{mode}-{n}-{i}", 1)
            for i in range(args.hold)
        ]
        for sock in held:
            await open_socket(sock)
            sock.send_text(AUDIO_METADATA)
            streams.add(sock)
        run.held = len(held)
        driver = asyncio.create_task(streams.drive())
        await asyncio.sleep(args.warmup)
        before = await read_metrics(server.port)
        with contextlib.suppress(KeyError, ValueError):
            run.busy_before = before.value("callsite_event_loop_busy_ratio")
            run.lag_before_ms = before.value("callsite_event_loop_lag_seconds") * 1000
        rush_started = time.monotonic()
        end = rush_started + args.rush_seconds + args.after
        probe = asyncio.create_task(readiness(server.port, run, end))
        openings = []
        total = int(args.rush_seconds * args.rush_rate)
        for i in range(total):
            await asyncio.sleep(max(0.0, rush_started + i / args.rush_rate - time.monotonic()))
            openings.append(
                asyncio.create_task(
                    attempt(args.hold + i, server.port, args.secret, streams, run, rush_started)
                )
            )
        run.attempts = total
        await asyncio.gather(*openings)
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        await probe
        after: Snapshot = await read_metrics(server.port, limit=60)
        lag = lag_between(before, after)
        run.p50_ms, run.p99_ms, run.max_ms = lag.p50 * 1000, lag.p99 * 1000, lag.max * 1000
        run.frames_handled = lag.count
        run.shed_counted = int(after.value(SHED))
        with contextlib.suppress(KeyError, ValueError):
            run.longest_stall_ms = after.value("callsite_event_loop_longest_stall_seconds") * 1000
        run.dropped_by_server = sum(1 for s in streams.sockets if s.closed_by_server)
    except Exception as error:  # reported; the next run goes on
        run.error = f"{type(error).__name__}: {error}"
    finally:
        streams.stop_at = time.monotonic()
        if driver is not None:
            driver.cancel()
            with contextlib.suppress(BaseException):
                await driver
        for sock in streams.sockets:
            sock.close()
        server.stop()
    log = server.log_path.read_text(errors="replace")
    run.refusals_logged = log.count("refused (503)")
    return run


def markdown(runs: Sequence[Run]) -> str:
    rows = [
        "| shedding | run | taken | refused 503 (first after) | failed"
        " | p99 lag of the calls held (p50) | `/readyz` 503 | counted / logged |",
        "|---|---:|---:|---|---:|---|---:|---|",
    ]
    for r in runs:
        if r.error:
            rows.append(f"| {r.mode} | {r.run} | error: {r.error} | | | | | |")
            continue
        first = "" if math.isnan(r.first_refusal_s) else f" ({r.first_refusal_s:.1f} s)"
        samples = r.not_ready_samples + r.ready_samples + r.readyz_unanswered
        p99 = "∞" if math.isinf(r.p99_ms) else f"{r.p99_ms:,.0f} ms"
        rows.append(
            f"| {'on' if r.mode == 'shed' else 'off'} | {r.run} | {r.taken} | {r.refused}{first}"
            f" | {r.failed} | **{p99}**{'' if r.passes else ' ✗'} ({r.p50_ms:,.1f} ms)"
            f" | {r.not_ready_samples} of {samples}"
            f" | {r.shed_counted} / {r.refusals_logged} |"
        )
    for mode in ("shed", "off"):
        p99s = [r.p99_ms for r in runs if r.mode == mode and not r.error]
        if p99s:
            rows.append(
                f"\nmedian p99, shedding {'on' if mode == 'shed' else 'off'}: "
                f"{statistics.median(p99s):,.0f} ms"
            )
    return "\n".join(rows)


async def bench(args: argparse.Namespace, folder: Path) -> list[Run]:
    template = migrate(folder, args.secret)
    pin_generator(1)
    runs: list[Run] = []
    for n in range(1, args.runs + 1):
        for mode in ("shed", "off"):
            run = await measure(mode, n, args, folder, template)
            print(run.line(), flush=True)
            runs.append(run)
            if args.json:
                write_json(args.json, args.code, {"runs": [asdict(r) for r in runs]})
            await asyncio.sleep(args.pause)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.overload", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--hold", type=int, default=100, help="calls streaming before the rush")
    parser.add_argument("--rush-rate", type=float, default=20.0, help="calls tried a second")
    parser.add_argument("--rush-seconds", type=float, default=15.0)
    parser.add_argument("--after", type=float, default=10.0, help="seconds after the rush")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=50, help="CALLSITE_SHED_LOOP_LAG_MS")
    parser.add_argument("--busy", type=int, default=70, help="CALLSITE_SHED_LOOP_BUSY_PERCENT")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pause", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, help="keep databases and server logs here")
    args = parser.parse_args(argv)
    args.secret = secrets.token_urlsafe(24)
    args.code = code_version()
    print(f"{header('overload', args.code)}; worker on CPU 0, generator on CPU 1", flush=True)
    with workdir(args.workdir, "bench-overload-") as folder:
        runs = asyncio.run(bench(args, folder))
    print()
    print(markdown(runs))
    return 0 if all(r.passes for r in runs if r.mode == "shed") else 1


if __name__ == "__main__":
    raise SystemExit(main())
