"""Soak: Callsite in production shape for a long run, with calls and pages coming and going.

Callsite runs as ``manage.py serve --workers N`` (Daphne workers on consecutive ports) on a
scratch PostgreSQL database of its own (``callsite_soak_<pid>``, created and migrated here and
dropped at the end unless ``--keep``) and Redis with a channel prefix of its own (its keys are
deleted at the end). The worker processes are found as the children of the ``serve`` process.
This process then plays, over real sockets, for ``--minutes``:

* calls that start and end all the time: ``--calls`` slots (20), each playing one call after
  another, every call lasting a random ``--call-seconds`` (60-240 s). Call slot i's ACS socket
  goes to worker i % N. Each call carries ACS transcription on its socket (TranscriptionMetadata,
  then turns of nine Intermediates 300 ms apart and a Final, with a pause of 0.3-2 s between
  turns; each Final's text is unique); a share of the calls (``--audio-share``, 0.25) also
  streams AudioMetadata and two unmixed participants' AudioData at real time. A call ends
  after its last whole turn with a WebSocket close, as ACS ends a stream;
* ``--supervisors`` (5), each with the call wall open all the time and ``--pages`` (4) call
  pages, each on a call its wall shows as live, kept for a random ``--dwell`` (20-180 s) or
  until the call has ended and ``--grace`` (10 s) have passed, then replaced by another
  (session cookie and an allowed Origin, as in ``bench.latency``). Page slot k of supervisor j
  is on worker (j * pages + k) % N and the wall on worker j % N, so each worker holds the same
  number of sockets all along.

Every ``--interval`` (15 s) it samples each worker's RSS (``VmRSS``), open file descriptors,
threads, CPU and its sockets to PostgreSQL and Redis; the connections to the scratch database
(``pg_stat_activity``); Redis clients that are the workers' sockets (``CLIENT LIST``) and all
of the server's (``INFO clients``, other users included); live calls, ACS sockets open on the
servers, supervisor sockets, finals sent and stored, frame lag and the load's send lateness.
One line is printed per sample.

At the end the calls stop after their current turn, the pages close once their calls have
ended, and when every stream is closed and stored the check runs: every Final sent must be
stored exactly once (per call, sent texts against ``Utterance`` rows: *lost* = sent and not
stored, *doubled* = stored more than once), and, for information, call pages that stayed open
until their call ended must have received each of the call's finals (snapshot or
``caption.final``).

Verdict: the growth of each measure from the warm-up baseline to the end must stay within
``--limit`` (10%): each worker's RSS and open fds, PostgreSQL connections to the database and
the workers' Redis clients. *Baseline* is the mean of the first 3 samples taken at or after the
warm-up (``--warmup`` minutes, default the smaller of 5 and a sixth of the run), *end* the mean
of the last 3 samples before the load stops, growth = end / baseline - 1. Finals lost and
doubled must be 0, and no worker may have exited (a restarted worker's memory starts afresh).
The exit status is 0 when the verdict passes, 1 when it fails and 2 when the run could not
be judged::

    python -m bench.soak --minutes 30 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.harness.churn import CallRecord, Calls, Supervisors
from bench.harness.db import ScratchDatabase, seed_supervisor
from bench.harness.monitor import Monitor, Sample, sample_line
from bench.harness.report import fmt, fmt_ms, header, mean, write_json
from bench.harness.runs import prepare_process, workdir
from bench.harness.servers import Serve, base_env, log_problems, redis_cleanup

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BASELINE_SAMPLES = 3  # samples averaged for the baseline and for the end
SETTINGS = "minutes warmup workers calls call_seconds audio_share supervisors pages dwell grace"
SETTINGS += " interval limit seed"


# --- the check and the verdict -----------------------------------------------------------------


def check_finals(db_url: str, records: Sequence[CallRecord]) -> dict[str, Any]:
    """Sent Finals against stored utterances, per call; the calls' states (blocking)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.connection_id, u.text, count(*) FROM streaming_utterance u"
            " JOIN streaming_call c ON c.id = u.call_id GROUP BY 1, 2"
        ).fetchall()
        states = conn.execute(
            "SELECT connection_id, state FROM streaming_call WHERE connection_id IS NOT NULL"
        ).fetchall()
    stored: dict[str, Counter[str]] = {}
    for connection_id, text, n in rows:
        stored.setdefault(str(connection_id), Counter())[str(text)] = int(n)
    state_of = {str(c): str(s) for c, s in states}
    sent = lost = doubled = extra = stored_total = 0
    lost_examples: list[str] = []
    for record in records:
        mine = stored.get(record.connection_id, Counter())
        texts = Counter(record.finals)
        record.stored = sum(mine.values())
        record.lost = sum(1 for t in texts if mine[t] == 0)
        record.doubled = sum(1 for t in texts if mine[t] > 1)
        sent += len(record.finals)
        stored_total += record.stored
        lost += record.lost
        doubled += record.doubled
        extra += sum(n for t, n in mine.items() if t not in texts)
        if record.lost and len(lost_examples) < 10:
            missing = [t for t in texts if mine[t] == 0]
            lost_examples.append(
                f"{record.connection_id}: {len(missing)} lost, first {missing[0]!r}"
            )
    opened = [r for r in records if not math.isnan(r.started_s)]
    not_ended = [r.connection_id for r in opened if state_of.get(r.connection_id) != "ended"]
    unknown = [r.connection_id for r in opened if r.connection_id not in state_of]
    return {
        "sent": sent,
        "stored": stored_total,
        "lost": lost,
        "doubled": doubled,
        "unexpected": extra,  # stored texts that were never sent
        "calls_with_loss": sum(1 for r in records if r.lost),
        "lost_examples": lost_examples,
        "calls_in_db": len(state_of),
        "calls_not_ended": len(not_ended),
        "calls_not_ended_examples": not_ended[:10],
        "calls_missing_in_db": len(unknown),
    }


@dataclass
class Growth:
    measure: str
    baseline: float
    end: float
    growth: float  # end / baseline - 1
    max: float  # largest sample after the warm-up
    limit: float
    ok: bool


def growth_of(
    measure: str, load: Sequence[Sample], read: Any, limit: float, warmup_s: float
) -> Growth:
    after = [s for s in load if s.t >= warmup_s]
    base = mean([float(read(s)) for s in after[:BASELINE_SAMPLES]])
    end = mean([float(read(s)) for s in load[-BASELINE_SAMPLES:]])
    grown = end / base - 1 if base > 0 else (0.0 if end <= 0 else math.inf)
    top = max((float(read(s)) for s in after), default=math.nan)
    return Growth(measure, base, end, grown, top, limit, grown <= limit)


def judge(
    samples: Sequence[Sample], warmup_s: float, limit: float, finals: dict[str, Any], restarts: int
) -> tuple[str, list[Growth], list[str]]:
    load = [s for s in samples if s.phase in ("warm-up", "load")]
    after = [s for s in load if s.t >= warmup_s]
    reasons: list[str] = []
    if len(after) < 2 * BASELINE_SAMPLES:
        return (
            "inconclusive",
            [],
            [
                f"only {len(after)} samples after the warm-up; {2 * BASELINE_SAMPLES} are needed"
                " (a longer run, a shorter --warmup or --interval)"
            ],
        )
    workers = min(len(s.workers) for s in after)
    growths: list[Growth] = []
    for i in range(workers):
        growths.append(
            growth_of(
                f"worker {i + 1} RSS (MiB)",
                load,
                lambda s, i=i: s.workers[i].rss_kib / 1024,
                limit,
                warmup_s,
            )
        )
    for i in range(workers):
        growths.append(
            growth_of(
                f"worker {i + 1} open fds", load, lambda s, i=i: s.workers[i].fds, limit, warmup_s
            )
        )
    growths.append(
        growth_of("PostgreSQL connections", load, lambda s: s.pg_connections, limit, warmup_s)
    )
    growths.append(
        growth_of("Redis clients (workers')", load, lambda s: s.redis_clients, limit, warmup_s)
    )
    for g in growths:
        if not g.ok:
            reasons.append(
                f"{g.measure} grew {g.growth:+.1%} ({g.baseline:.1f} -> {g.end:.1f}), over"
                f" {g.limit:.0%}"
            )
    if finals["lost"]:
        reasons.append(f"{finals['lost']} finals lost")
    if finals["doubled"]:
        reasons.append(f"{finals['doubled']} finals stored more than once")
    if restarts:
        reasons.append(f"{restarts} worker(s) exited and were started again")
    return ("fail" if reasons else "pass"), growths, reasons


# --- the report --------------------------------------------------------------------------------


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| measure | baseline (after warm-up) | end | growth | max after warm-up | limit |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for g in summary["growth"]:
        lines.append(
            f"| {g['measure']} | {fmt(g['baseline'])} | {fmt(g['end'])}"
            f" | {g['growth']:+.1%} | {fmt(g['max'])}"
            f" | ≤ {g['limit']:.0%}: {'ok' if g['ok'] else '**over**'} |"
        )
    f = summary["finals"]
    c = summary["calls"]
    p = summary["pages"]
    idle = summary["idle"]
    st = summary["settings"]
    lines += [
        "",
        "| calls played | with audio | peak live | finals sent | stored | lost | doubled"
        " | unexpected |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['played']} | {c['audio']} | {c['peak_live']} | {f['sent']} | {f['stored']}"
        f" | **{f['lost']}** | **{f['doubled']}** | {f['unexpected']} |",
        "",
        f"* verdict: **{summary['verdict']}**"
        + (": " + "; ".join(summary["reasons"]) if summary["reasons"] else ""),
        f"* load: {st['calls']} call slots (calls of {st['call_seconds'][0]:.0f}"
        f"-{st['call_seconds'][1]:.0f} s, {st['audio_share']:.0%} with audio),"
        f" {st['supervisors']} supervisors x (wall + {st['pages']} call pages),"
        f" {st['workers']} workers;"
        f" {summary['minutes_run']:.1f} min of load, warm-up {summary['warmup_minutes']:.1f} min,"
        f" {len(summary['samples_load'])} samples under load",
        f"* calls: {c['failed_to_open']} did not open, {c['closed_by_server']} closed by the"
        f" server, {f['calls_not_ended']} not `ended` in the database after the drain;"
        f" drain took {summary['drain_s']:.1f} s",
        f"* call pages: {p['opened']} opened, {p['whole_call']} open until their call ended:"
        f" finals missing on those {p['missing']} of {p['expected']}, duplicates"
        f" {p['duplicates']}, misrouted {p['misrouted']}; {p['closed_by_server']} closed by the"
        f" server; {p['open_failures']} failed to open; walls reopened {p['walls_reopened']}",
        "* idle, before the load -> after it: fds "
        + ", ".join(
            f"worker {i + 1} {b} -> {a}"
            for i, (b, a) in enumerate(zip(idle["fds_before"], idle["fds_after"], strict=False))
        )
        + f"; PostgreSQL connections {idle['pg_before']} -> {idle['pg_after']}; Redis clients"
        f" {idle['redis_before']} -> {idle['redis_after']}; RSS "
        + ", ".join(
            f"worker {i + 1} {b:.1f} -> {a:.1f} MiB"
            for i, (b, a) in enumerate(
                zip(idle["rss_mib_before"], idle["rss_mib_after"], strict=False)
            )
        ),
        f"* server: {summary['server']['log_problems']} warnings/errors in the log,"
        f" finals_lost {summary['server'].get('callsite_ingest_finals_lost_total', 0):.0f},"
        f" internal errors {summary['server'].get('callsite_ingest_internal_errors_total', 0):.0f},"
        f" rejected frames {summary['server'].get('callsite_ingest_rejected_total', 0):.0f},"
        f" database retries {summary['server'].get('callsite_ingest_db_retries_total', 0):.0f};"
        f" serve stopped in {summary['server']['stop_s']:.1f} s (exit"
        f" {summary['server']['exit_code']})",
        f"* load generator: send lateness p99 {summary['load']['audio_late_p99_ms']:.0f} ms"
        f" (audio), {summary['load']['caption_late_p99_ms']:.0f} ms (transcription); frame lag"
        f" p99 per sample, max {fmt_ms(summary['load']['frame_lag_p99_max_ms'])} ms; other"
        f" processes' CPU per sample {summary['load']['others_cpu_median']:.0%} median,"
        f" {summary['load']['others_cpu_max']:.0%} max (share of one core)",
    ]
    return "\n".join(lines)


def summarize(
    args: argparse.Namespace,
    monitor: Monitor,
    calls: Calls,
    supervisors: Supervisors,
    finals: dict[str, Any],
    serve: Serve,
    load_seconds: float,
    drain_s: float,
    problems: list[str],
) -> dict[str, Any]:
    samples = monitor.samples
    verdict, growths, reasons = judge(
        samples, args.warmup * 60, args.limit, finals, monitor.restarts
    )
    load = [s for s in samples if s.phase in ("warm-up", "load")]
    before = next((s for s in samples if s.phase == "idle-before"), None)
    after = next((s for s in reversed(samples) if s.phase == "idle-after"), None)
    lags = [s.frame_lag_p99_ms for s in load if not math.isnan(s.frame_lag_p99_ms)]
    others = [s.others_cpu for s in load if not math.isnan(s.others_cpu)]
    return {
        "verdict": verdict,
        "reasons": reasons,
        "settings": {k: getattr(args, k) for k in SETTINGS.split()},
        "minutes_run": load_seconds / 60,
        "warmup_minutes": args.warmup,
        "samples_load": [s.t for s in load],
        "growth": [asdict(g) for g in growths],
        "finals": finals,
        "calls": calls.summary(peak_live=max((s.calls_live for s in load), default=0)),
        "pages": supervisors.summary(),
        "idle": {
            "fds_before": [w.fds for w in before.workers] if before else [],
            "fds_after": [w.fds for w in after.workers] if after else [],
            "rss_mib_before": [w.rss_kib / 1024 for w in before.workers] if before else [],
            "rss_mib_after": [w.rss_kib / 1024 for w in after.workers] if after else [],
            "pg_before": before.pg_connections if before else None,
            "pg_after": after.pg_connections if after else None,
            "redis_before": before.redis_clients if before else None,
            "redis_after": after.redis_clients if after else None,
        },
        "server": {
            **monitor.server_counters,
            "log_problems": len(problems),
            "log_examples": problems[:20],
            "stop_s": serve.stop_seconds,
            "exit_code": serve.exit_code,
            "worker_restarts": monitor.restarts,
        },
        "load": {
            "audio_late_p99_ms": calls.audio_late_all.lateness_quantile(0.99) * 1000,
            "caption_late_p99_ms": calls.caption_late_all.lateness_quantile(0.99) * 1000,
            "frame_lag_p99_max_ms": max(lags, default=math.nan),
            "others_cpu_median": statistics.median(others) if others else math.nan,
            "others_cpu_max": max(others, default=math.nan),
        },
        "drain_s": drain_s,
    }


def save(
    path: Path,
    args: argparse.Namespace,
    monitor: Monitor | None,
    calls: Calls | None,
    supervisors: Supervisors | None,
    summary: dict[str, Any] | None,
) -> None:
    document = {
        "database": args.db_name,
        "channel_prefix": args.prefix,
        "summary": summary,
        "samples": [asdict(s) for s in monitor.samples] if monitor else [],
        "calls": [asdict(r) for r in calls.records] if calls else [],
        "pages": [asdict(p) for p in supervisors.records] if supervisors else [],
    }
    write_json(path, args.code_version, document)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Resources:
    """What the run holds, released in main() whatever happens."""

    db: ScratchDatabase | None = None
    serve: Serve | None = None
    redis_url: str = ""
    prefix: str = ""

    def release(self, keep: bool) -> list[str]:
        notes: list[str] = []
        if self.serve is not None:
            self.serve.stop()
        if self.db is not None and self.db.created and not keep:
            try:
                self.db.drop()
            except Exception as error:
                notes.append(f"could not drop {self.db.name}: {error}")
        elif self.db is not None and self.db.created:
            notes.append(f"kept the database {self.db.url}")
        if self.prefix:
            try:
                asyncio.run(redis_cleanup(self.redis_url, self.prefix))
            except Exception as error:
                notes.append(f"could not delete the Redis keys {self.prefix}*: {error}")
        return notes


async def soak(args: argparse.Namespace, held: Resources, folder: Path) -> dict[str, Any]:
    db = held.db = ScratchDatabase(args.database_url, f"callsite_soak_{os.getpid()}")
    args.db_name = db.name
    extra = {
        "DATABASE_URL": db.url,
        "REDIS_URL": args.redis_url,
        "CALLSITE_CHANNEL_PREFIX": args.prefix,
        "CALLSITE_REDIS_LAYER": "pubsub",
        "DJANGO_SECRET_KEY": "soak-" + secrets.token_urlsafe(32),
    }
    held.redis_url, held.prefix = args.redis_url, args.prefix
    print(f"creating and migrating {db.name}...", flush=True)
    await asyncio.to_thread(db.create)
    cookie = await asyncio.to_thread(seed_supervisor, args.secret, extra)
    env = base_env(args.secret)
    env.update(extra)
    serve = held.serve = Serve(args.workers, env, folder / "serve.log")
    pids = await serve.ready()
    print(
        f"serve pid {serve.pid}: workers {', '.join(map(str, pids))} on ports"
        f" {', '.join(map(str, serve.ports))}",
        flush=True,
    )
    t0 = time.monotonic()
    monitor = Monitor(serve, db.url, args.redis_url, pids, t0)
    calls = Calls(args, serve.ports, args.label)
    supervisors = Supervisors(args, serve.ports, cookie, calls)
    first = await monitor.sample("idle-before", None, None)
    print(sample_line(first), flush=True)

    tasks: list[asyncio.Task[None]] = []
    sampler: asyncio.Task[None] | None = None
    phase = "warm-up"
    summary: dict[str, Any] | None = None

    async def sampling() -> None:
        n = 1
        while True:
            await asyncio.sleep(max(0.0, t0 + n * args.interval - time.monotonic()))
            n += 1
            current = phase
            if current in ("warm-up", "load"):
                current = "warm-up" if time.monotonic() - t0 < args.warmup * 60 else "load"
            try:
                s = await monitor.sample(current, calls, supervisors)
            except Exception as error:  # a failed read is reported; the run goes on
                print(f"sample failed: {type(error).__name__}: {error}", flush=True)
                continue
            print(sample_line(s), flush=True)
            if args.json is not None:
                save(args.json, args, monitor, calls, supervisors, None)

    try:
        calls.t0 = t0
        tasks += [asyncio.create_task(calls.run_slot(i)) for i in range(args.calls)]
        tasks += [asyncio.create_task(supervisors.run(j)) for j in range(args.supervisors)]
        sampler = asyncio.create_task(sampling())
        await asyncio.sleep(args.minutes * 60)
        load_seconds = time.monotonic() - t0

        # Stop: every call ends after its current turn; pages stay until their call ended.
        phase = "drain"
        print("stopping: calls end after their current turn...", flush=True)
        calls.stopping = True
        supervisors.stopping = True
        drain0 = time.monotonic()
        await asyncio.gather(*tasks[: args.calls], return_exceptions=True)
        sent = calls.finals_sent
        stored = -1
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            merged, snaps = await monitor.metrics()
            open_acs = sum(s.value("callsite_ingest_sockets") for s in snaps)
            stored = await asyncio.to_thread(monitor.stored_finals)
            if merged is not None and open_acs == 0 and stored >= sent:
                break
            await asyncio.sleep(1.0)
        drain_s = time.monotonic() - drain0
        print(f"drained in {drain_s:.1f} s: {stored} of {sent} finals stored", flush=True)
        # pages close once their call ended + grace; then the walls
        await asyncio.sleep(args.grace + 2)
        supervisors.closing = True
        supervisors.closed.set()
        await asyncio.gather(*tasks[args.calls :], return_exceptions=True)
        sampler.cancel()
        with contextlib.suppress(BaseException):
            await sampler
        await asyncio.sleep(3.0)  # the servers see the last sockets go
        last = await monitor.sample("idle-after", calls, supervisors)
        print(sample_line(last), flush=True)

        finals = await asyncio.to_thread(check_finals, db.url, calls.records)
        monitor.close()
        # what the workers logged under load; the stop's own drain messages come after
        # (from the workers' start: the system checks' warnings before it are left out, the
        # scratch setup uses the shared secret)
        problems = log_problems([("", serve.log_path)], limit=None, after="Starting ")
        await asyncio.to_thread(serve.stop)
        summary = summarize(
            args, monitor, calls, supervisors, finals, serve, load_seconds, drain_s, problems
        )
        return summary
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        if sampler is not None and not sampler.done():
            sampler.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        calls.abort()
        supervisors.close()
        monitor.close()
        if args.json is not None:
            save(args.json, args, monitor, calls, supervisors, summary)


def seconds_range(text: str) -> tuple[float, float]:
    """``60:240`` (or one number) -> (60.0, 240.0)."""
    low, _, high = text.partition(":")
    pair = (float(low), float(high or low))
    if pair[0] <= 0 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: want MIN:MAX with 0 < MIN <= MAX")
    return pair


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of load")
    parser.add_argument(
        "--warmup",
        type=float,
        help="minutes before the baseline (default: the smaller of 5 and a sixth of the run)",
    )
    parser.add_argument("--workers", type=int, default=2, help="manage.py serve --workers")
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls (call slots)")
    parser.add_argument(
        "--call-seconds",
        type=seconds_range,
        default=(60.0, 240.0),
        metavar="MIN:MAX",
        help="a call's length, drawn uniformly (default 60:240)",
    )
    parser.add_argument(
        "--audio-share", type=float, default=0.25, help="share of calls that also stream audio"
    )
    parser.add_argument("--supervisors", type=int, default=5)
    parser.add_argument("--pages", type=int, default=4, help="call pages each supervisor keeps")
    parser.add_argument(
        "--dwell",
        type=seconds_range,
        default=(20.0, 180.0),
        metavar="MIN:MAX",
        help="seconds a call page stays open unless its call ends first (default 20:180)",
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds a page stays after its call ended"
    )
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--drain", type=float, default=120.0, help="max seconds for the drain")
    parser.add_argument(
        "--limit", type=float, default=10.0, help="allowed growth after the warm-up, in %%"
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="PostgreSQL server to create the scratch database on (default %(default)s)",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="default %(default)s")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every sample and the summary here")
    parser.add_argument("--workdir", type=Path, help="keep the server log here")
    args = parser.parse_args(argv)
    if urlsplit(args.database_url).scheme not in ("postgres", "postgresql"):
        parser.error("--database-url must be a postgres:// URL")
    if min(args.workers, args.calls, args.supervisors) < 1 or args.pages < 0:
        parser.error("--workers, --calls and --supervisors must be at least 1")
    if not 0 <= args.audio_share <= 1:
        parser.error("--audio-share must be between 0 and 1")
    if args.warmup is None:
        args.warmup = min(5.0, args.minutes / 6)
    if args.warmup >= args.minutes:
        parser.error("--warmup must be shorter than --minutes")
    args.limit /= 100
    prepare_process(args)  # SIGTERM: stop the servers and clean up, as on Ctrl-C
    args.label = f"soak{os.getpid()}-{secrets.token_hex(2)}"
    args.prefix = f"callsite-soak-{os.getpid()}-{secrets.token_hex(3)}"
    args.db_name = ""
    print(
        header("soak", args.code_version) + f"; {args.minutes:g} min (warm-up {args.warmup:g} min),"
        f" {args.workers} workers, {args.calls} concurrent calls of"
        f" {args.call_seconds[0]:.0f}-{args.call_seconds[1]:.0f} s"
        f" ({args.audio_share:.0%} with audio), {args.supervisors} supervisors x (wall +"
        f" {args.pages} call pages); PostgreSQL {urlsplit(args.database_url).netloc}, Redis"
        f" {args.redis_url} (prefix {args.prefix})",
        flush=True,
    )
    held = Resources()
    summary: dict[str, Any] | None = None
    with workdir(args.workdir, prefix="soak-") as folder:
        try:
            summary = asyncio.run(soak(args, held, folder))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as error:
            print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
            if held.serve is not None:
                for line in log_problems([("", held.serve.log_path)])[:10]:
                    print(f"    server log: {line[:300]}", file=sys.stderr)
            return 2
        finally:
            for note in held.release(args.keep):
                print(note, file=sys.stderr)
    if args.json is not None:
        print(f"samples and summary: {args.json}")
    print()
    print(markdown(summary))
    return {"pass": 0, "fail": 1}.get(summary["verdict"], 2)


if __name__ == "__main__":
    sys.exit(main())
