"""Caption latency: from an ACS packet's arrival at Callsite to the supervisor's socket.

Each run starts one Daphne process pinned to CPU 0 on the Redis channel layer, with a fresh
migrated database (SQLite, or a scratch PostgreSQL database with ``--database-url``) that
holds a supervisor and a logged-in session. This process, pinned to CPU 1, then plays:

* C ACS sockets (``/ws/acs/``), one per call. Each carries two unmixed participants at real
  time (AudioMetadata, then a 640-byte 16 kHz AudioData frame per participant every 20 ms: the
  talking one's speech-like noise, the other's marked silent) and, on the same socket,
  TranscriptionMetadata and TranscriptionData: an Intermediate result every 300 ms while a
  participant talks, a Final every 3 s, speakers taking turns. Each result's text starts with
  a tag naming its call, turn and step, so the caption can be matched to the packet that
  carried it; the send time of every packet is kept (``time.time()``).
* S supervisors, each with the call wall (``/ws/dashboard/``) and K call pages
  (``/ws/dashboard/calls/<id>/``) open, with the session cookie and an allowed Origin; every
  call is watched by S * K / C pages.

Latency is the time a page received a ``caption.interim`` or ``caption.final`` minus the time
its packet was sent, for each caption sent in the measurement window and each page watching
its call. Captions still missing after the drain are reported as lost. Other event types are
counted and otherwise ignored. A run counts only if this process kept to its schedule (p99
send lateness under 20 ms; otherwise it is marked generator-bound) and processes that are not
part of the benchmark used at most 10% of each server core (otherwise it is marked noisy)::

    python -m bench.latency --calls 100 --supervisors 20 --seconds 30 --runs 3 --json out.json

``--workers 1,2`` runs Callsite as 1 and then as 2 identical Daphne processes in each run
(interleaved, so noise affects both alike), sharing the database and Redis: worker i on its
own port, pinned to CPU i % cpu_count; call i's ACS socket on worker i % N; supervisor j's
wall and call pages on worker (j + 1) % N. With 2 workers and the default split (supervisor j
watches calls jK .. jK+K-1) half of the call pages watch a call whose socket is on the other
worker; the run reports how many. (Callsite's Redis layers send every group message through
Redis, to a page on the same worker too.) The metrics of all workers are added up. This
process keeps a core of its own (CPU N) while N < cpu_count and runs unpinned otherwise; CPU
use is reported per worker, for this process, Redis, and other processes on the workers'
cores (``bench.harness.cpu.CpuMeter``).

``--layer redis`` is Callsite's default Redis layer (channels-redis's pub/sub layer);
``--layer redis-list`` (channels-redis's inbox-per-process layer, ``CALLSITE_REDIS_LAYER=list``)
and ``--layer memory`` (the in-process layer, one worker only) run the same load for
comparison, and ``--no-audio`` leaves the audio out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.harness.clients import (
    CONNECT_LIMIT,
    PERIOD,
    CaptionLoad,
    PageSocket,
    open_page,
    open_pages,
)
from bench.harness.cpu import generator_cpu, pin_generator, placement
from bench.harness.db import ScratchDatabase, fresh_sqlite, seed_supervisor
from bench.harness.metrics import (
    AUDIO_FRAMES,
    MAX_SEND_LATENESS,
    MIN_SEND_RATE,
    REJECTED,
    Quantiles,
    lag_between,
)
from bench.harness.report import each_worker, fmt_ms, header, median, workers_text, write_json
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
from bench.harness.servers import CALLSITE, Workers, log_problems, redis_inbox

LATENCY_TARGET = 0.100
TREND_SLICE = 5.0  # seconds of send time per point of a run's latency trend
MAX_NOISE = 0.10  # share of each worker's core other processes may use in a counted run


@dataclass
class Run:
    run: int
    calls: int
    supervisors: int
    watchers: int  # call pages per call
    layer: str
    database: str
    workers: int = 1  # Daphne processes sharing the database and Redis
    audio: bool = True
    status: str = "error"  # ok | over | generator-bound | noisy | error
    interim: Quantiles = field(default_factory=Quantiles)
    final: Quantiles = field(default_factory=Quantiles)
    all: Quantiles = field(default_factory=Quantiles)
    expected_interim: int = 0  # deliveries due: packets sent in the window * watchers
    expected_final: int = 0
    lost_interim: int = 0
    lost_final: int = 0
    duplicates: int = 0
    misrouted: int = 0  # a caption on a page of another call
    events: dict[str, int] = field(default_factory=dict)  # page messages by type
    event_bytes: dict[str, int] = field(default_factory=dict)  # and their bytes
    audio_lag_p50_ms: float = math.nan  # server's frame lag histogram, window only
    audio_lag_p99_ms: float = math.nan
    frames_sent: int = 0  # in the window
    frames_handled: int = 0
    unhandled: int = 0  # frames sent in the whole run and never handled by the end
    rejected: int = 0
    audio_send_rate: float = math.nan
    audio_late_p99_ms: float = math.nan
    caption_late_p99_ms: float = math.nan
    server_cpu: float = math.nan  # all workers together, share of one core
    worker_cpu: list[float] = field(default_factory=list)  # each worker's
    core_busy: float = math.nan  # the workers' cores, any process
    others_cpu: float = math.nan  # processes not part of the benchmark on the workers' cores
    generator_cpu: float = math.nan
    redis_cpu: float = math.nan
    connect_s: float = math.nan  # time to open every supervisor page
    pages_opened: int = 0  # supervisor pages (walls and call pages) open, of pages_wanted
    pages_wanted: int = 0
    cross_pages: int = 0  # call pages on another worker than their call's ACS socket
    # --layer redis-list: messages waiting in the server's inbox at the window's end
    inbox: int = -1
    # p50 of the captions sent in each 5 s of the window: flat when the server keeps up
    trend_p50_ms: list[float] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    error: str = ""
    elapsed_s: float = 0.0

    @property
    def lost(self) -> int:
        return self.lost_interim + self.lost_final

    @property
    def name(self) -> str:
        return f"run {self.run} W={self.workers}"

    def line(self) -> str:
        if self.error:
            return f"{self.name}: {self.error} -> {self.status}"

        def q(name: str, stats: Quantiles) -> str:
            return (
                f"{name} p50 {fmt_ms(stats.p50_ms)} p90 {fmt_ms(stats.p90_ms)}"
                f" p99 {fmt_ms(stats.p99_ms)} max {fmt_ms(stats.max_ms)} ms"
            )

        each = each_worker(self.worker_cpu)
        return (
            f"{self.name}: {q('interim', self.interim)} ({self.interim.count}"
            f"/{self.expected_interim}) | {q('final', self.final)} ({self.final.count}"
            f"/{self.expected_final}) | all p99 {fmt_ms(self.all.p99_ms)} ms"
            f" | audio lag p99 {fmt_ms(self.audio_lag_p99_ms)} ms,"
            f" handled {self.frames_handled}/{self.frames_sent}"
            f" | send late99 audio {self.audio_late_p99_ms:.0f} captions"
            f" {self.caption_late_p99_ms:.0f} ms"
            f" | cpu srv {self.server_cpu:.0%}{each} other {self.others_cpu:.0%}"
            f" gen {self.generator_cpu:.0%} redis {self.redis_cpu:.0%}"
            f" | p50 per {TREND_SLICE:.0f} s: {' '.join(fmt_ms(v) for v in self.trend_p50_ms)} ms"
            f" -> {self.status}"
            + (f" ({self.lost} lost)" if self.lost else "")
            + (f" ({self.duplicates} duplicates)" if self.duplicates else "")
            + (f" ({len(self.closed)} closed)" if self.closed else "")
            + (f" ({len(self.log_problems)} log problems)" if self.log_problems else "")
        )


def watched_calls(supervisor: int, calls: int, per_supervisor: int) -> list[int]:
    """Supervisor j watches calls j*K .. j*K+K-1, wrapping: each call gets S*K/C watchers."""
    return [(supervisor * per_supervisor + k) % calls for k in range(min(per_supervisor, calls))]


async def measure(run: int, workers: int, args: argparse.Namespace, folder: Path) -> Run:
    calls, supervisors, per = args.calls, args.supervisors, args.calls_per_supervisor
    database = "postgresql" if args.database_url else "sqlite"
    result = Run(run, calls, supervisors, supervisors * per // calls, args.layer, database)
    result.workers = workers
    result.audio = not args.no_audio
    started = time.monotonic()
    generator_cpus = pin_generator(generator_cpu(workers))
    prefix = f"callsite-bench-{secrets.token_hex(4)}"
    scratch = None
    if args.database_url:
        scratch = ScratchDatabase(args.database_url, f"callsite_bench_{secrets.token_hex(4)}")
        url = scratch.url
    else:
        url = fresh_sqlite(folder / f"latency-run{run}-w{workers}.sqlite3")
    extra = {
        "DATABASE_URL": url,  # the same database for every worker
        "CALLSITE_CHANNEL_PREFIX": prefix,
        "CALLSITE_WORKERS": str(workers),
        # one key for the session made beforehand and the servers that read it
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
    }
    if args.layer != "memory":
        extra["REDIS_URL"] = args.redis_url
    extra["CALLSITE_REDIS_LAYER"] = "list" if args.layer == "redis-list" else "pubsub"
    load = CaptionLoad(
        [], calls, args.secret, f"r{run}w{workers}-{secrets.token_hex(3)}", result.audio
    )
    pages: list[PageSocket] = []
    driver: asyncio.Task[None] | None = None
    group: Workers | None = None
    spies: list[subprocess.Popen[bytes]] = []
    phase = "preparing the database"
    try:
        if scratch is not None:
            scratch.create()
        cookie = seed_supervisor(args.secret, extra)
        phase = "starting the servers"
        group = Workers(CALLSITE, folder, args.secret, workers, extra, entry=args.entry)
        await group.ready()
        ports = load.ports = group.ports

        def page_port(supervisor: int) -> int:
            """Supervisor j's pages are on worker j + 1: with 2, the other worker's calls."""
            return ports[(supervisor + 1) % workers]

        # The first wall (supervisor 0's) opens before the calls, so it hears of every call
        # as it connects, whichever worker the call's socket is on.
        call_ids: dict[str, int] = {}

        def on_call(call: dict[str, Any]) -> None:
            if isinstance(call.get("connection_id"), str) and isinstance(call.get("id"), int):
                call_ids[call["connection_id"]] = call["id"]

        phase = "opening the first wall"
        first_wall = PageSocket("/ws/dashboard/", page_port(0), cookie, on_call=on_call)
        pages.append(first_wall)
        await open_page(first_wall)
        phase = "opening the ACS sockets"
        await load.connect(load.hello)
        t0 = time.monotonic() + 0.2
        driver = asyncio.create_task(load.drive(t0))
        phase = "waiting for the first wall to list every call"
        wanted = {sock.call_id for sock in load.sockets}
        deadline = time.monotonic() + CONNECT_LIMIT
        while not wanted <= call_ids.keys():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the wall saw {len(wanted & call_ids.keys())} of {calls} calls")
            await asyncio.sleep(0.1)

        # Then every supervisor's wall (the first has one already) and call pages.
        phase = "opening supervisor pages"
        connect0 = time.monotonic()
        new: list[PageSocket] = [
            PageSocket("/ws/dashboard/", page_port(j), cookie) for j in range(1, supervisors)
        ]
        for supervisor in range(supervisors):
            for index in watched_calls(supervisor, calls, per):
                call_id = call_ids[load.sockets[index].call_id]
                path = f"/ws/dashboard/calls/{call_id}/"
                new.append(PageSocket(path, page_port(supervisor), cookie, call=index))
        pages += new
        result.pages_wanted = len(pages)
        result.cross_pages = sum(
            1 for sock in new if sock.call is not None and sock.port != ports[sock.call % workers]
        )

        try:
            await open_pages("supervisor pages (besides the first wall)", new, ports)
        finally:
            result.pages_opened = 1 + sum(1 for sock in new if sock.ready)
        result.connect_s = time.monotonic() - connect0

        phase = "warming up"
        load.captions_from = time.monotonic() + 0.1
        await asyncio.sleep(args.warmup + 0.1)

        phase = "measuring"
        profile = (args.py_spy, f"latency-{args.layer}-C{calls}-run{run}") if args.py_spy else None
        redis_url = args.redis_url if args.layer != "memory" else None
        window = await group.window(load, args.seconds, generator_cpus, redis_url, profile, spies)
        if args.layer == "redis-list":
            result.inbox = await redis_inbox(args.redis_url, prefix)

        # The load goes on while the window's last captions arrive.
        phase = "draining"
        await asyncio.sleep(args.drain)
        load.stop_at = time.monotonic()
        await driver
        for spy in spies:
            spy.wait(timeout=30)
        await asyncio.sleep(1.0)
        final = await group.metrics()
        result.closed = load.closed() + [
            f"{p.path}: {p.closed_by_server}" for p in pages if p.closed_by_server
        ]
    except Exception as error:  # a failed run is reported; the next one goes on
        result.error = f"{phase}: {type(error).__name__}: {error}"
        if isinstance(error, subprocess.CalledProcessError):
            result.error += f" {error.stderr.strip()[-2000:]}"
        result.closed = load.closed()[:5]
        if group is not None:
            result.log_problems = log_problems(group.logs())
        result.elapsed_s = time.monotonic() - started
        return result
    finally:
        for page in pages:
            page.close()
        redis = (args.redis_url, prefix) if args.layer != "memory" else None
        await tear_down(load, driver, spies, group, redis)
        if scratch is not None:
            with contextlib.suppress(Exception):
                scratch.drop()

    assert group is not None
    lag = lag_between(window.before, window.after)
    result.audio_lag_p50_ms, result.audio_lag_p99_ms = lag.p50 * 1000, lag.p99 * 1000
    result.frames_handled, result.frames_sent = lag.count, window.frames_sent
    if load.with_audio:
        result.audio_send_rate = result.frames_sent / (2 * calls * window.seconds / PERIOD)
    result.unhandled = int(load.audio.sent - final.value(AUDIO_FRAMES))
    result.rejected = int(final.value(REJECTED))
    result.audio_late_p99_ms = load.audio.lateness_quantile(0.99) * 1000
    result.caption_late_p99_ms = load.captions.lateness_quantile(0.99) * 1000
    vars(result).update(window.cpu.shares())
    result.log_problems = log_problems(group.logs())
    tally(result, load, pages)
    late = max(result.audio_late_p99_ms, result.caption_late_p99_ms)
    if result.audio_send_rate < MIN_SEND_RATE or late > MAX_SEND_LATENESS * 1000:
        result.status = "generator-bound"
    elif result.others_cpu > MAX_NOISE * len(group.cores):
        result.status = "noisy"
    elif result.all.p99_ms < LATENCY_TARGET * 1000 and not result.lost and not result.closed:
        result.status = "ok"
    else:
        result.status = "over"
    result.elapsed_s = time.monotonic() - started
    return result


def tally(result: Run, load: CaptionLoad, pages: Sequence[PageSocket]) -> None:
    """Match every page's receipts to the packets sent; latencies and losses of the window."""
    watchers: Counter[int] = Counter(p.call for p in pages if p.call is not None)
    for sent in load.sent.values():
        if sent.counted:
            if sent.final:
                result.expected_final += watchers[sent.call]
            else:
                result.expected_interim += watchers[sent.call]
    interim: list[float] = []
    final: list[float] = []
    by_slice: dict[int, list[float]] = {}
    first = min((sent.at for sent in load.sent.values() if sent.counted), default=0.0)
    events: Counter[str] = Counter()
    event_bytes: Counter[str] = Counter()
    for page in pages:
        events.update(page.events)
        event_bytes.update(page.event_bytes)
        seen: set[str] = set()
        for tag, at in page.receipts:
            packet = load.sent.get(tag)
            if packet is None or packet.call != page.call:
                result.misrouted += 1
                continue
            if tag in seen:
                result.duplicates += 1
                continue
            seen.add(tag)
            if packet.counted:
                (final if packet.final else interim).append(at - packet.at)
                by_slice.setdefault(int((packet.at - first) // TREND_SLICE), []).append(
                    at - packet.at
                )
    result.interim, result.final = Quantiles.of(interim), Quantiles.of(final)
    result.all = Quantiles.of(interim + final)
    result.lost_interim = result.expected_interim - len(interim)
    result.lost_final = result.expected_final - len(final)
    result.events = dict(events.most_common())
    result.event_bytes = dict(event_bytes.most_common())
    result.trend_p50_ms = [
        statistics.median(by_slice[k]) * 1000 for k in sorted(by_slice) if by_slice[k]
    ]


# --- report ------------------------------------------------------------------------------------


def counted_runs(runs: Sequence[Run], workers: int) -> list[Run]:
    return [r for r in runs if r.workers == workers and r.status in ("ok", "over")]


def markdown(runs: Sequence[Run], workers: Sequence[int] = (1,)) -> str:
    """The caption table (a row group per worker count when there are several), each run's
    CPU, lag and losses, the target, and N workers' figures over the smallest count's."""
    single = list(workers) == [1]
    lines = [
        "| captions | delivered / expected | p50 ms | p90 ms | p99 ms: median (runs) | max ms |",
        "|---|---:|---:|---:|---|---:|",
    ]
    if not single:
        lines = ["| workers " + lines[0], "|---:" + lines[1]]
    for n in workers:
        counted = counted_runs(runs, n)
        for name in ("interim", "final", "all"):
            stats: list[Quantiles] = [getattr(r, name) for r in counted]
            if name == "all":
                expected = sum(r.expected_interim + r.expected_final for r in counted)
            else:
                expected = sum(getattr(r, f"expected_{name}") for r in counted)
            delivered = sum(s.count for s in stats)
            p99s = " / ".join(fmt_ms(s.p99_ms) for s in stats)
            lines.append(
                ("" if single else f"| {n} ") + f"| {name} | {delivered} / {expected}"
                f" | {fmt_ms(median([s.p50_ms for s in stats]))}"
                f" | {fmt_ms(median([s.p90_ms for s in stats]))}"
                f" | **{fmt_ms(median([s.p99_ms for s in stats]))}** ({p99s})"
                f" | {fmt_ms(max((s.max_ms for s in stats), default=math.nan))} |"
            )
    lines.append("")
    for r in runs:
        name = f"run {r.run}" if single else f"run {r.run}, {workers_text(r.workers)}"
        if r.error:
            lines.append(f"* {name}: {r.status}: {r.error}")
            continue
        if len(r.worker_cpu) > 1:
            cpu = (
                f"server CPU {r.server_cpu:.0%} ({' + '.join(f'{c:.0%}' for c in r.worker_cpu)}),"
                f" others on the workers' cores {r.others_cpu:.0%}"
            )
        else:
            cpu = f"server CPU {r.server_cpu:.0%}, others on its core {r.others_cpu:.0%}"
        lines.append(
            f"* {name}: {r.status}; {cpu}, Redis {r.redis_cpu:.0%}, load generator"
            f" {r.generator_cpu:.0%}; audio lag p50/p99 {fmt_ms(r.audio_lag_p50_ms)}"
            f"/{fmt_ms(r.audio_lag_p99_ms)} ms, frames {r.frames_handled}/{r.frames_sent}"
            f" handled; send lateness p99 {r.audio_late_p99_ms:.0f} ms (audio),"
            f" {r.caption_late_p99_ms:.0f} ms (captions); lost {r.lost}, duplicates"
            f" {r.duplicates}; pages opened in {r.connect_s:.1f} s"
            + (
                f" ({r.cross_pages} of {r.pages_wanted - r.supervisors} call pages on another"
                " worker than their call's socket);"
                if r.workers > 1
                else ";"
            )
            + (f" inbox at the window's end {r.inbox};" if r.inbox >= 0 else "")
            + " messages received:"
            f" {', '.join(f'{k} {v}' for k, v in r.events.items())}"
        )
    for n in workers:
        counted = counted_runs(runs, n)
        p99 = median([r.all.p99_ms for r in counted])
        met = counted and p99 < LATENCY_TARGET * 1000 and not any(r.lost for r in counted)
        lines.append(
            f"* target p99 < {LATENCY_TARGET * 1000:.0f} ms, nothing lost"
            + ("" if single else f", {workers_text(n)}")
            + ": "
            + ("met" if met else "not met")
        )
    base = counted_runs(runs, workers[0])
    for n in workers[1:]:
        counted = counted_runs(runs, n)
        text = f"* {workers_text(n)} / {workers_text(workers[0])}, medians of counted runs: "
        if not base or not counted:
            lines.append(text + "- (no counted runs to compare)")
            continue

        def ratio(of: Callable[[Run], float], runs_n: list[Run] = counted) -> str:
            old, new = median([of(r) for r in base]), median([of(r) for r in runs_n])
            good = math.isfinite(old) and math.isfinite(new) and old > 0
            return f"{new / old:.2f}" if good else "-"

        lines.append(
            text
            + f"p50 {ratio(lambda r: r.all.p50_ms)}, p99 {ratio(lambda r: r.all.p99_ms)}"
            + " (all captions; under 1 is faster), server CPU"
            + f" {ratio(lambda r: r.server_cpu)} ({median([r.server_cpu for r in base]):.0%}"
            + f" -> {median([r.server_cpu for r in counted]):.0%}), lost"
            + f" {sum(r.lost for r in base)} -> {sum(r.lost for r in counted)}"
        )
    return "\n".join(lines)


def save(path: Path, runs: Sequence[Run], args: argparse.Namespace) -> None:
    names = (
        "calls supervisors calls_per_supervisor seconds warmup drain runs layer no_audio workers"
    )
    document = {
        "loop": args.loop_name,
        "settings": {k: getattr(args, k) for k in names.split()},
        "placement": placement(args.workers, "load"),
        "runs": [asdict(r) for r in runs],
    }
    write_json(path, args.code_version, document)


async def bench(args: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    saving = None if args.json is None else lambda runs: save(args.json, runs, args)
    with workdir(args.workdir) as folder:
        for run in range(1, args.runs + 1):
            # each worker count in turn, so that noise falls on all of them alike
            for workers in args.workers:
                await keep(await measure(run, workers, args, folder), runs, saving, args.pause)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=100, help="concurrent calls (C)")
    parser.add_argument("--supervisors", type=int, default=20, help="supervisors (S)")
    parser.add_argument(
        "--calls-per-supervisor", type=int, default=10, help="call pages each supervisor opens"
    )
    add_load_options(
        parser,
        seconds=30.0,
        warmup=(10.0, "seconds of captions first"),
        drain=(5.0, "load after the window"),
        pause=(2.0, "seconds between runs"),
        workers="Daphne processes sharing the database and Redis, or a list (1,2) to run each in"
        " turn in every run (default 1)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgres://user@host:5432/postgres) to create a scratch"
        " database on for each run; default: a fresh SQLite file",
    )
    parser.add_argument(
        "--layer",
        choices=["redis", "redis-list", "memory"],
        default="redis",
        help="channel layer: Callsite's Redis layer (pub/sub), or for comparison channels-redis's"
        " inbox-per-process layer (CALLSITE_REDIS_LAYER=list) or the in-process layer (one"
        " worker only)",
    )
    parser.add_argument(
        "--no-audio", action="store_true", help="send transcription only (to compare)"
    )
    args = parser.parse_args(argv)
    if args.database_url and urlsplit(args.database_url).scheme not in ("postgres", "postgresql"):
        parser.error("--database-url must be a postgres:// URL")
    if min(args.calls, args.supervisors, args.calls_per_supervisor) < 1:
        parser.error("--calls, --supervisors and --calls-per-supervisor must be at least 1")
    parse_worker_counts(parser, args)
    if args.layer == "memory" and max(args.workers) > 1:
        parser.error(
            "--layer memory cannot serve more than one worker: the in-memory channel layer"
            " lives inside one process, so captions would never reach pages on another worker;"
            " use --layer redis (or redis-list)"
        )
    runner = prepare_process(args)  # SIGTERM: stop the servers and clean up, as on Ctrl-C
    if args.layer != "memory":
        problem = redis_problem(runner, args.redis_url)
        if problem:
            parser.error(problem)
    started = time.monotonic()
    print(
        header("caption latency", args.code_version)
        + f", {args.calls} calls, {args.supervisors} supervisors x"
        f" {args.calls_per_supervisor} call pages, {args.layer} layer,"
        f" {'no audio' if args.no_audio else 'audio'},"
        f" {'postgresql' if args.database_url else 'sqlite'}; "
        + placement(args.workers, f"load ({args.loop_name})"),
        flush=True,
    )
    return run_load(runner, bench(args), lambda runs: markdown(runs, args.workers), started)


if __name__ == "__main__":
    sys.exit(main())
