"""Ingest capacity: how many real-time calls one server process keeps up with.

For each run, each number of calls C and each server (Callsite under Daphne, and the bare
``websockets`` server of ``bench/bare_server.py`` doing the same parsing and per-frame work),
a fresh server is started pinned to CPU 0 and this process, pinned to CPU 1, plays C ACS media
sockets at 50 frames a second each: one AudioMetadata (16 kHz), then 20 ms AudioData frames of
640 bytes of speech-like noise from one participant per call, whose ``timestamp`` is the time
the frame was sent. The server's frame-lag histogram (``GET /metrics``) is read before and
after a measurement window; its difference gives the p50/p99 of the lag from send to handled.

A point counts only if the generator kept to its schedule (>= 95% of the frames due in the
window were sent, p99 send lateness under 20 ms); otherwise it is marked generator-bound. The
capacity of a server is the largest C whose median p99 over the runs is under 100 ms, with
every frame handled and no socket closed by the server::

    python -m bench.ingest --calls 100,200,300,400,500,600 --seconds 20 --runs 3 \\
        --servers callsite,bare --json out.json

``--servers callsite,callsite+recording`` measures Callsite with ``CALLSITE_RECORDING=on`` beside
it, point by point (each server records into the run's folder; a point reports the bytes
written by the end of its window). ``--servers callsite,callsite@DIR,bare`` also measures
Callsite from another checkout (say a worktree of the previous commit) in the same run, point
by point beside this one: its
servers start in DIR with DIR first on ``PYTHONPATH``, on a database migrated by DIR's
``manage.py``, and the load is the same (``bare@DIR`` runs DIR's bare server likewise).

``--workers 1,2`` measures every point with 1 and then with 2 identical server processes
(interleaved, so noise affects both alike) and reports each worker count's capacity and their
ratio. N workers are N servers on N ports, worker i pinned to CPU i % cpu_count; Callsite's
share one SQLite file and Redis as the channel layer, which then serves the 1-worker points
too (``--layer``). Call i's socket goes to worker i % N, and the lag histograms of all workers
are added up. The generator keeps a core of its own (CPU N) while N < cpu_count and runs
unpinned otherwise; each point reports every worker's CPU, the generator's, Redis's, and that
of other processes on the workers' cores (``bench.harness.cpu.CpuMeter``).

Frames are written straight to the socket as pre-built WebSocket frames (masking key zero, so
masking is a no-op), and one task drives all connections on an evenly staggered schedule:
``--driver tasks`` (one sleeping task per connection) is there to compare the two.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import ROOT
from bench.harness.clients import AUDIO_METADATA, PERIOD, CallLoad
from bench.harness.cpu import generator_cpu, pin_generator, placement, profile_summary
from bench.harness.db import copy_database, migrate
from bench.harness.metrics import (
    AUDIO_FRAMES,
    LAG_TARGET,
    MAX_SEND_LATENESS,
    METRICS_LIMIT,
    MIN_SEND_RATE,
    REJECTED,
    lag_between,
    wait_until,
)
from bench.harness.report import code_version, each_worker, fmt_ms, header, workers_text, write_json
from bench.harness.runs import (
    add_load_options,
    keep,
    parse_worker_counts,
    prepare_process,
    redis_problem,
    run_load,
    tear_down,
    workdir,
)
from bench.harness.servers import ServerSpec, Workers, log_problems

PRIMING_FRAMES = 2


# --- the load generator ------------------------------------------------------------------------


class Generator(CallLoad):
    """C sockets sending one frame each every 20 ms, phases spread evenly over the period."""

    def __init__(
        self, ports: Sequence[int], calls: int, token: str, label: str, driver: str
    ) -> None:
        super().__init__(ports, calls, token, label, participants=1)
        self.driver = driver

    def prime(self, wall0: float) -> None:
        """Send each socket's first PRIMING_FRAMES frames ahead of the schedule.

        They are stamped as if sent in the periods just before the socket's first slot, so the
        scheduled frames follow on without a gap in the stream's timeline. The server does its
        once-per-stream work (Callsite: the call's audio origin, the participant row) on the
        first; a socket's frames are handled in order, so once the server has counted the
        second, the first is done.
        """
        slot = PERIOD / self.calls
        for k in range(PRIMING_FRAMES, 0, -1):
            for sock in self.sockets:
                sock.send_frame(0, self.stamp.at(wall0 + sock.index * slot - k * PERIOD))
        self.audio.sent += PRIMING_FRAMES * self.calls

    def drive(self, t0: float) -> Coroutine[Any, Any, None]:
        if self.driver == "batched":
            return self.drive_audio(t0, sent_before=PRIMING_FRAMES * self.calls)
        return self.drive_audio_tasks(t0)


# --- one point ---------------------------------------------------------------------------------


@dataclass
class Point:
    server: str
    calls: int
    run: int
    workers: int = 1  # server processes the calls were spread over
    layer: str = ""  # Callsite's channel layer: memory | redis (empty for the bare server)
    status: str = "error"  # ok | over | generator-bound | error
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    under_target: float = math.nan
    frames_handled: int = 0  # AudioData frames whose lag the server recorded in the window
    frames_sent: int = 0  # frames the generator sent in the window
    send_rate: float = math.nan  # frames sent / frames due in the window
    send_late_p99_ms: float = math.nan
    generator_cpu: float = math.nan  # share of one core used by this process in the window
    server_cpu: float = math.nan  # share of one core used by the server(s) in the window
    worker_cpu: list[float] = field(default_factory=list)  # each worker's share of one core
    core_busy: float = math.nan  # the workers' cores' busy time (any process) in the window
    others_cpu: float = math.nan  # processes not part of the benchmark on the workers' cores
    redis_cpu: float = math.nan  # a local Redis, when Callsite used it
    recorded_bytes: int = 0  # callsite+recording: what its recordings hold after the window
    primed_s: float = math.nan  # time until the server had done every stream's first frame
    lead_s: float = math.nan  # time the schedule allowed for that
    all_handled: bool = False
    unhandled: int = 0
    rejected: int = 0
    closed: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    error: str = ""
    elapsed_s: float = 0.0
    window_s: float = math.nan

    @property
    def cpu_us_per_frame(self) -> float:
        """The server processes' CPU time per frame handled in the window, in µs: what a frame
        costs, whatever else runs on the machine (processes' CPU times are exact)."""
        if not self.frames_handled or math.isnan(self.window_s):
            return math.nan
        return self.server_cpu * self.window_s / self.frames_handled * 1e6

    def line(self) -> str:
        head = f"{self.server:8} C={self.calls:<5} W={self.workers} run {self.run}:"
        if self.error:
            return f"{head} {self.error} -> {self.status}"
        each = each_worker(self.worker_cpu)
        return (
            f"{head} p50 {self.p50_ms:7.1f} ms"
            f"  p99 {self.p99_ms:7.1f} ms  max<={self.max_ms:7.0f} ms"
            f"  handled {self.frames_handled}/{self.frames_sent}"
            f"  send {self.send_rate:6.1%} late99 {self.send_late_p99_ms:4.0f} ms"
            f"  cpu srv {self.server_cpu:4.0%}{each} = {self.cpu_us_per_frame:3.0f} µs/frame"
            f" other {self.others_cpu:4.0%} gen {self.generator_cpu:4.0%}"
            + (f" redis {self.redis_cpu:4.0%}" if not math.isnan(self.redis_cpu) else "")
            + (f"  recorded {self.recorded_bytes / 1e6:.1f} MB" if self.recorded_bytes else "")
            + f"  primed {self.primed_s:3.1f}/{self.lead_s:3.1f} s"
            f"  -> {self.status}"
            + (f" ({len(self.closed)} closed)" if self.closed else "")
            + (f" ({self.unhandled} unhandled)" if self.unhandled else "")
            + (f" ({len(self.log_problems)} log problems)" if self.log_problems else "")
        )


def recorded_bytes(folder: Path, ports: Sequence[int]) -> int:
    """The bytes the servers on ``ports`` have written to their recordings so far."""
    return sum(
        f.stat().st_size
        for port in ports
        for f in (folder / f"recordings-{port}").rglob("*")
        if f.is_file()
    )


async def measure(
    spec: ServerSpec,
    workers: int,
    calls: int,
    run: int,
    args: argparse.Namespace,
    folder: Path,
    template: Path | None,
) -> Point:
    callsite = spec.kind == "callsite"
    layer = args.layer if callsite else ""
    point = Point(spec.name, calls, run, workers, layer)
    started = time.monotonic()
    generator_cpus = pin_generator(generator_cpu(workers))
    token = secrets.token_hex(4)
    prefix = f"callsite-bench-{token}"
    extra: dict[str, str] = {}
    if callsite:
        assert template is not None
        extra["DATABASE_URL"] = copy_database(template, folder, token)  # one for all workers
        extra["CALLSITE_WORKERS"] = str(workers)
        if layer == "redis":
            extra["REDIS_URL"] = args.redis_url
            extra["CALLSITE_CHANNEL_PREFIX"] = prefix
    label = f"r{run}-{spec.kind}-{calls}-w{workers}-{secrets.token_hex(3)}"
    gen = Generator([], calls, args.secret, label, args.driver)
    group: Workers | None = None
    driver: asyncio.Task[Any] | None = None
    spies: list[subprocess.Popen[bytes]] = []
    phase = "starting the servers"
    try:
        group = Workers(spec, folder, args.secret, workers, extra, entry=args.entry)
        await group.ready()
        ports = gen.ports = group.ports
        phase = "connecting"
        await gen.connect(lambda sock: [AUDIO_METADATA])
        phase = "priming"
        # time for the once-per-stream work (Callsite: three database writes per call)
        lead = max(1.0, calls * (0.015 if callsite else 0.002))
        t0 = time.monotonic() + lead
        wall0 = time.time() + lead
        gen.prime(wall0)
        driver = asyncio.create_task(gen.drive(t0))
        _, primed = await wait_until(ports, PRIMING_FRAMES * calls, t0 + 60)
        point.primed_s, point.lead_s = time.monotonic() - (t0 - lead), lead
        if not primed:
            raise RuntimeError("the server did not handle the first frames within a minute")
        phase = "warming up"
        await asyncio.sleep(max(0.0, t0 + args.warmup - time.monotonic()))
        phase = "measuring"
        profile = (args.py_spy, f"{spec.stem}-C{calls}-run{run}") if args.py_spy else None
        redis_url = args.redis_url if layer == "redis" else None
        window = await group.window(gen, args.seconds, generator_cpus, redis_url, profile, spies)
        point.recorded_bytes = recorded_bytes(folder, ports)
        # stop sending, let the server drain, then check everything arrived
        phase = "draining"
        gen.stop_at = time.monotonic()
        await driver
        total = gen.audio.sent
        final, point.all_handled = await wait_until(ports, total, time.monotonic() + args.drain)
        point.closed = gen.closed()
        for spy in spies:
            spy.wait(timeout=args.seconds + 30)
    except Exception as error:  # a point that failed is reported, the benchmark goes on
        point.error = f"{phase}: {type(error).__name__}: {error}"
        point.closed = gen.closed()[:5]
        if isinstance(error, TimeoutError) and phase not in ("starting the servers", "connecting"):
            # /metrics queues behind the frames: a server this far behind is over capacity.
            point.status = "over"
            point.error = f"{phase}: /metrics did not answer within {METRICS_LIMIT:.0f} s"
            point.p50_ms = point.p99_ms = point.max_ms = math.inf
        if group is not None:
            point.log_problems = log_problems(group.logs())
        point.elapsed_s = time.monotonic() - started
        return point
    finally:
        redis = (args.redis_url, prefix) if layer == "redis" else None
        await tear_down(gen, driver, spies, group, redis)

    lag = lag_between(window.before, window.after)
    point.p50_ms, point.p99_ms = lag.p50 * 1000, lag.p99 * 1000
    point.max_ms, point.under_target = lag.max * 1000, lag.under_target
    point.frames_handled = lag.count
    point.frames_sent = window.frames_sent
    point.window_s = window.seconds
    point.send_rate = point.frames_sent / (calls * window.seconds / PERIOD)
    point.send_late_p99_ms = gen.audio.lateness_quantile(0.99) * 1000
    vars(point).update(window.cpu.shares())
    point.unhandled = int(total - final.value(AUDIO_FRAMES))
    point.rejected = int(final.value(REJECTED))
    assert group is not None
    point.log_problems = log_problems(group.logs())
    if point.send_rate < MIN_SEND_RATE or point.send_late_p99_ms > MAX_SEND_LATENESS * 1000:
        point.status = "generator-bound"
    elif lag.p99 < LAG_TARGET and point.all_handled and not point.closed and not point.rejected:
        point.status = "ok"
    else:
        point.status = "over"
    point.elapsed_s = time.monotonic() - started
    return point


# --- the verdict -------------------------------------------------------------------------------


@dataclass
class Summary:
    server: str
    calls: int
    runs: list[Point]

    @property
    def counted(self) -> list[Point]:
        return [p for p in self.runs if p.status in ("ok", "over")]

    @property
    def p50_ms(self) -> float:
        values = [p.p50_ms for p in self.counted]
        return statistics.median(values) if values else math.nan

    @property
    def p99_ms(self) -> float:
        values = [p.p99_ms for p in self.counted]
        return statistics.median(values) if values else math.nan

    @property
    def passes(self) -> bool:
        counted = self.counted
        return (
            bool(counted)
            and self.p99_ms < LAG_TARGET * 1000
            and all(p.all_handled and not p.closed and not p.rejected for p in counted)
        )


def summarize(points: Sequence[Point]) -> dict[tuple[str, int], dict[int, Summary]]:
    """Points by (server, workers), then by C."""
    table: dict[tuple[str, int], dict[int, Summary]] = {}
    for p in points:
        rows = table.setdefault((p.server, p.workers), {})
        rows.setdefault(p.calls, Summary(p.server, p.calls, [])).runs.append(p)
    return table


def capacity(rows: dict[int, Summary]) -> int | None:
    passing = [c for c, s in rows.items() if s.passes]
    return max(passing) if passing else None


def frame_cost(points: Sequence[Point], server: str, workers: int) -> list[float]:
    """CPU µs per frame of each measured point of one server (over capacity included: the
    cost of a frame does not depend on whether the server keeps up)."""
    return [
        p.cpu_us_per_frame
        for p in points
        if p.server == server
        and p.workers == workers
        and p.status in ("ok", "over")
        and not math.isnan(p.cpu_us_per_frame)
    ]


def cost_text(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values):.0f} µs (range {min(values):.0f}-{max(values):.0f},"
        f" {len(values)} points)"
    )


def run_cell(point: Point) -> str:
    if point.status == "over" and point.error:
        return "no answer"
    return fmt_ms(point.p99_ms) if point.status in ("ok", "over") else point.status


def ratio_text(high: int | None, low: int | None, high_top: bool, low_top: bool) -> str:
    """``high / low`` of two capacities; a bound (``≥``/``≤``) when one is at the grid's top."""
    if not low or not high:
        return "-"
    if high_top and low_top:
        return f"- (both capacities at the top of the grid: {high} / {low})"
    bound = "≥ " if high_top else "≤ " if low_top else ""
    return f"{bound}{high / low:.2f} ({high} / {low} calls)"


def markdown(points: Sequence[Point], servers: Sequence[str], workers: Sequence[int] = (1,)) -> str:
    """The table of p50/p99 by C, each server's capacity and the ratios between them.

    With the one worker of old, the columns are the servers; otherwise each server has a pair
    of columns per worker count (``callsite W=2``), and the capacity of N workers is compared
    with the smallest worker count's. Each Callsite is compared with the (first) bare server,
    and the first Callsite with each other one (``callsite@DIR``).
    """
    table = summarize(points)
    single = list(workers) == [1]
    columns = [(s, n) for s in servers for n in workers]

    def name(server: str, n: int) -> str:
        return server if single else f"{server} W={n}"

    def each(n: int) -> str:
        return "" if single else f" with {workers_text(n)}"

    all_calls = sorted({p.calls for p in points})
    head = "| C |" + "".join(
        f" {name(s, n)} p50 ms | {name(s, n)} p99 ms (runs) |" for s, n in columns
    )
    lines = [head, "|---:|" + "---:|---|" * len(columns)]
    for calls in all_calls:
        cells = [str(calls)]
        for column in columns:
            row = table.get(column, {}).get(calls)
            if row is None:
                cells += ["", ""]
                continue
            runs = "/".join(run_cell(p) for p in row.runs)
            mark = "" if row.passes else " ✗"
            cells += [fmt_ms(row.p50_ms), f"**{fmt_ms(row.p99_ms)}**{mark} ({runs})"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    caps = {column: capacity(table.get(column, {})) for column in columns}
    # A capacity at the largest C measured is a lower bound: the grid stopped there.
    top = {
        column: caps[column] is not None and caps[column] == max(table.get(column, {}))
        for column in columns
    }
    for server, n in columns:
        cap = caps[server, n]
        lines.append(
            f"* capacity of {server}{each(n)}: "
            + (f"{cap} calls" if cap else "none")
            + (" (the largest C measured: it may be higher)" if top[server, n] else "")
        )
    base = workers[0]
    for server in servers:
        for n in workers[1:]:
            low, high = caps[server, base], caps[server, n]
            text = f"* {server}, {workers_text(n)} / {workers_text(base)}: "
            if not low or not high:
                missing = workers_text(n if not high else base)
                lines.append(text + f"- (no capacity for {missing})")
            else:
                lines.append(text + ratio_text(high, low, top[server, n], top[server, base]))
    callsites = [s for s in servers if s.partition("@")[0] == "callsite"]
    bare = next((s for s in servers if s.partition("@")[0] == "bare"), None)
    cost = {column: frame_cost(points, *column) for column in columns}
    for server, n in columns:
        if cost[server, n]:
            lines.append(f"* CPU per frame of {server}{each(n)}: {cost_text(cost[server, n])}")
    for n in workers:
        for server in [*callsites[1:], *([bare] if bare else [])]:
            mine, other = cost[callsites[0], n] if callsites else [], cost[server, n]
            if mine and other:
                lines.append(
                    f"* CPU per frame, {callsites[0]} / {server}{each(n)}: "
                    f"{statistics.median(mine) / statistics.median(other):.2f}"
                )
    for n in workers:
        for server in callsites:
            ours, theirs = caps[server, n], caps.get((bare or "", n))
            if ours and theirs:
                lines.append(f"* {server} / {bare}{each(n)}: {ours / theirs:.2f}")
        for server in callsites[1:]:  # the first Callsite against each other checkout's
            new, old = (callsites[0], n), (server, n)
            lines.append(
                f"* {callsites[0]} / {server}{each(n)}: "
                + ratio_text(caps[new], caps[old], top[new], top[old])
            )
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def parse_grid(text: str) -> list[int]:
    """``100,200,300`` or ``200:600:100`` (inclusive), or a mix: ``100,200:400:100``."""
    calls: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            start, stop, step = (int(x) for x in part.split(":"))
            calls.update(range(start, stop + 1, step))
        else:
            calls.add(int(part))
    return sorted(calls)


async def bench(args: argparse.Namespace) -> list[Point]:
    specs: list[ServerSpec] = args.specs
    grids = {
        "callsite": parse_grid(args.callsite_calls or args.calls),
        "bare": parse_grid(args.bare_calls or args.calls),
    }
    points: list[Point] = []
    saving = None if args.json is None else lambda points: save(args.json, points, args)
    with workdir(args.workdir) as folder:
        templates = {
            spec.root: migrate(folder, args.secret, spec.root)
            for spec in specs
            if spec.kind == "callsite"
        }
        for run in range(1, args.runs + 1):
            for calls in sorted({c for s in specs for c in grids[s.kind]}):
                for spec in specs:
                    if calls not in grids[spec.kind]:
                        continue
                    # each worker count in turn, so that noise falls on all of them alike
                    for workers in args.workers:
                        template = templates.get(spec.root)
                        point = await measure(spec, workers, calls, run, args, folder, template)
                        await keep(point, points, saving, args.pause)
    return points


def save(path: Path, points: Sequence[Point], args: argparse.Namespace) -> None:
    settings = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "runs": args.runs,
        "driver": args.driver,
        "workers": args.workers,
        "layer": args.layer,
        "redis_url": args.redis_url if args.layer == "redis" else None,
        "placement": placement(args.workers, "generator"),
        "servers": {s.name: {"root": str(s.root), "code": args.codes[s.name]} for s in args.specs},
    }
    document = {"loop": args.loop_name, "settings": settings, "points": [asdict(p) for p in points]}
    write_json(path, args.code_version, document)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", default="100,200,300,400,500,600", help="grid of C")
    parser.add_argument("--callsite-calls", help="grid for Callsite only (default --calls)")
    parser.add_argument("--bare-calls", help="grid for the bare server only (default --calls)")
    parser.add_argument(
        "--servers",
        default="callsite,bare",
        help="servers to measure, in order: callsite, bare, and callsite@DIR (bare@DIR) for"
        " Callsite (the bare server) from the checkout in DIR, e.g. another commit's worktree,"
        " to compare side by side",
    )
    add_load_options(
        parser,
        seconds=20.0,
        warmup=(5.0, "seconds before the window"),
        drain=(10.0, "max wait for stragglers"),
        pause=(1.0, "seconds between points"),
        workers="server processes per point, or a list (1,2) to measure each in turn (default 1)",
    )
    parser.add_argument(
        "--layer",
        choices=["auto", "memory", "redis"],
        default="auto",
        help="Callsite's channel layer; auto: Redis when any --workers value is above 1 (for"
        " every worker count, so they compare fairly), else in-memory",
    )
    parser.add_argument("--driver", choices=["batched", "tasks"], default="batched")
    parser.add_argument("--summarize", type=Path, nargs="+", help="summarise py-spy profiles")
    args = parser.parse_args(argv)
    if args.summarize:
        for path in args.summarize:
            print(profile_summary(path))
        return 0
    try:
        args.specs = [ServerSpec.parse(s.strip()) for s in args.servers.split(",") if s.strip()]
    except ValueError as error:
        parser.error(f"--servers: {error}")
    args.servers = [spec.name for spec in args.specs]
    if len(set(args.servers)) != len(args.servers):
        parser.error("--servers: a server is named twice")
    callsite = any(spec.kind == "callsite" for spec in args.specs)
    parse_worker_counts(parser, args)
    if args.layer == "auto":
        args.layer = "redis" if max(args.workers) > 1 else "memory"
    if args.layer == "memory" and max(args.workers) > 1 and callsite:
        parser.error(
            "--layer memory cannot join more than one worker: the in-memory channel layer"
            " lives inside one process; use --layer redis"
        )
    runner = prepare_process(args)
    args.codes = {
        spec.name: args.code_version if spec.root == ROOT else code_version(spec.root)
        for spec in args.specs
    }
    if args.layer == "redis" and callsite:
        problem = redis_problem(runner, args.redis_url)
        if problem:
            parser.error(problem)
    started = time.monotonic()
    layer = (
        f"Redis channel layer at {args.redis_url}"
        if args.layer == "redis"
        else "in-memory channel layer"
    )
    others = [f"; {s.name}: code {args.codes[s.name]}" for s in args.specs if "@" in s.name]
    print(
        header("ingest capacity", args.code_version)
        + ", "
        + placement(args.workers, f"generator ({args.loop_name}, {args.driver})")
        + (f"; callsite on the {layer}" if callsite else "")
        + "".join(others),
        flush=True,
    )

    def report(points: list[Point]) -> str:
        return markdown(points, args.servers, args.workers)

    return run_load(runner, bench(args), report, started)


if __name__ == "__main__":
    sys.exit(main())
