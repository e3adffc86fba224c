"""Call history and transcript exports on PostgreSQL: list pages at 10,000 calls, and every
export format of a 2-hour call of 2,000 utterances.

A scratch PostgreSQL database is created on ``--database-url``'s server, migrated, and filled
with ``bulk_create``: N calls (default 10,000) over the last 90 days, each with 2-3
participants, a few finals with words and confidences (per-topic phrases with names, products,
places and amounts, so full-text search finds some calls and not others), analytics, and
alerts on about a quarter of them; plus one 2-hour call of 2,000 finals with words, non-ASCII
names, commas and quotes. ``VACUUM ANALYZE`` runs before anything is measured.

Django runs in this process with ``callsite.settings`` (``DEBUG`` off, the API's throttle
raised out of the way) behind ``wsgiref``'s server on a loopback port, and every request is a
real HTTP request over a new connection: the whole middleware stack, authentication,
rendering and the body's transfer are in the figures. A probe around the WSGI application
counts each request's SQL queries (``CaptureQueriesContext``) and times them.

Two viewers: Staff (sees every call; an API token, and a session for the admin and the
history page), and a team supervisor whose team's addresses are on about 10% of the calls.
Each request is repeated ``--runs`` times (``--export-runs`` for exports) after a warm-up;
reported are p50, p95 and max, and the number of queries. Targets: p95 under 200 ms for a
page of a list, under 1 s for an export::

    python -m bench.history --calls 10000 --runs 20 --export-runs 10 --json history.json

The scratch database is dropped at the end, also on an error or Ctrl-C, unless ``--keep``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import re
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.harness.db import ScratchDatabase, configure_django
from bench.harness.report import code_version, fmt_ms, header, write_json
from bench.harness.runs import interrupt
from bench.harness.seed import Dataset, Viewer, generate, make_viewers, query_value, vacuum_analyze
from bench.harness.servers import WsgiServer

LIST_TARGET_MS = 200.0
EXPORT_TARGET_MS = 1000.0
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
EXPORT_FORMATS = ("json", "csv", "txt", "srt", "vtt")
ADMIN_PAGE_SIZE = 100  # the admin's list_per_page
SEARCH_WORDS = "charged twice"  # billing calls: about 5% of them
SEARCH_PHRASE = '"tracking number"'  # delivery calls, as a quoted phrase: about 9%


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Spec:
    viewer: str
    label: str
    path: str
    kind: str  # list | export
    auth: str  # token | session

    @property
    def target_ms(self) -> float:
        return EXPORT_TARGET_MS if self.kind == "export" else LIST_TARGET_MS


@dataclass
class Result:
    viewer: str
    label: str
    path: str
    kind: str
    target_ms: float
    status: str = "error"  # ok | over | error
    error: str = ""
    http_status: int = 0
    body_bytes: int = 0
    detail: str = ""  # what the warm-up's body held (rows, lines)
    times_ms: list[float] = field(default_factory=list)  # the client's: request to last byte
    server_ms: list[float] = field(default_factory=list)  # inside the WSGI application
    db_ms: list[float] = field(default_factory=list)  # in the driver, all queries
    queries: list[int] = field(default_factory=list)
    slowest_query_ms: float = math.nan  # of the last run
    slowest_query: str = ""
    explain: str = ""

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else math.nan

    @property
    def p95_ms(self) -> float:
        if len(self.times_ms) < 2:
            return max(self.times_ms, default=math.nan)
        return statistics.quantiles(self.times_ms, n=20, method="inclusive")[-1]

    @property
    def max_ms(self) -> float:
        return max(self.times_ms, default=math.nan)

    @property
    def query_count(self) -> str:
        if not self.queries:
            return "-"
        low, high = min(self.queries), max(self.queries)
        return str(low) if low == high else f"{low}-{high}"

    def line(self) -> str:
        if self.status == "error":
            return f"  {self.viewer:10} {self.label:44} ERROR {self.error}"
        db = statistics.median(self.db_ms) if self.db_ms else math.nan
        server = statistics.median(self.server_ms) if self.server_ms else math.nan
        return (
            f"  {self.viewer:10} {self.label:44} p50 {fmt_ms(self.p50_ms):>5} p95"
            f" {fmt_ms(self.p95_ms):>5} max {fmt_ms(self.max_ms):>5} ms | server"
            f" {fmt_ms(server)} db {fmt_ms(db)} ms | {self.query_count} queries |"
            f" {self.body_bytes / 1024:.0f} KB {self.detail} -> {self.status}"
        )


def describe(spec: Spec, body: bytes) -> str:
    """A check of the warm-up's body: what the page or file holds."""
    if spec.kind == "export":
        fmt = spec.path.rsplit(".", 1)[1]
        text = body.decode("utf-8")
        if fmt == "json":
            return f"({len(json.loads(text)['lines'])} lines)"
        if fmt == "csv":
            return f"({text.count(chr(13) + chr(10)) - 1} rows)"
        if fmt in ("srt", "vtt"):
            return f"({text.count(' --> ')} cues)"
        return f"({sum(1 for line in text.splitlines() if line.startswith('['))} lines)"
    if spec.path.startswith("/api/"):
        page = json.loads(body)
        return f"({len(page['results'])} of {page['count']} calls)"
    found = re.search(rb"(\d+) results? \(<a href=\"\?\">(\d+) total", body)
    if found:  # the admin, searched
        return f"({found.group(1).decode()} of {found.group(2).decode()} calls)"
    found = re.search(rb"\d+ calls?( found)?\b", body)  # the admin's or the history page's count
    return f"({found.group(0).decode()})" if found else ""


def measure(server: WsgiServer, spec: Spec, viewer: Viewer, runs: int, warmup: int) -> Result:
    result = Result(spec.viewer, spec.label, spec.path, spec.kind, spec.target_ms)
    headers = viewer.headers(spec.auth)
    try:
        for index in range(warmup + runs):
            status, body, elapsed, sample = server.get(spec.path, headers)
            result.http_status = status
            if status != 200:
                result.error = f"HTTP {status}: {body[:200]!r}"
                return result
            if index < warmup:
                result.body_bytes = len(body)
                result.detail = describe(spec, body)
                continue
            result.times_ms.append(elapsed * 1000)
            result.server_ms.append(sample.server_s * 1000)
            result.db_ms.append(sum(t for t, _ in sample.queries) * 1000)
            result.queries.append(len(sample.queries))
            if sample.queries:
                slowest, sql = max(sample.queries)
                result.slowest_query_ms, result.slowest_query = slowest * 1000, sql
    except Exception as error:  # one failed request is reported; the others go on
        result.error = f"{type(error).__name__}: {error}"
        return result
    result.status = "ok" if result.p95_ms < result.target_ms else "over"
    return result


def plan(viewers: Sequence[Viewer], long_call: int, page_size: int = 50) -> list[Spec]:
    since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    specs: list[Spec] = []
    for viewer in viewers:
        v = viewer.name
        last = max(1, min(200, math.ceil(viewer.visible / page_size)))
        admin_last = max(1, math.ceil(viewer.visible / ADMIN_PAGE_SIZE))
        specs += [
            Spec(v, "API list, page 1", "/api/calls/", "list", "token"),
            Spec(v, f"API list, page {last}", f"/api/calls/?page={last}", "list", "token"),
            Spec(
                v,
                f"API list, q={SEARCH_WORDS}",
                "/api/calls/?" + urlencode({"q": SEARCH_WORDS}),
                "list",
                "token",
            ),
            Spec(
                v,
                f"API list, q={SEARCH_PHRASE}",
                "/api/calls/?" + urlencode({"q": SEARCH_PHRASE}),
                "list",
                "token",
            ),
            Spec(
                v,
                "API list, state=ended, last 30 days",
                "/api/calls/?" + urlencode({"state": "ended", "started_after": since}),
                "list",
                "token",
            ),
            Spec(v, "admin changelist, page 1", "/admin/streaming/call/", "list", "session"),
            Spec(
                v,
                f"admin changelist, page {admin_last}",
                f"/admin/streaming/call/?p={admin_last}",
                "list",
                "session",
            ),
            Spec(
                v,
                f"admin changelist, q={SEARCH_WORDS}",
                "/admin/streaming/call/?" + urlencode({"q": SEARCH_WORDS}),
                "list",
                "session",
            ),
            Spec(v, "history page, page 1", "/history/", "list", "session"),
            Spec(
                v,
                f"history page, q={SEARCH_WORDS}",
                "/history/?" + urlencode({"q": SEARCH_WORDS}),
                "list",
                "session",
            ),
        ]
        specs += [
            Spec(
                v,
                f"transcript.{fmt} (2-hour call)",
                f"/api/calls/{long_call}/transcript.{fmt}",
                "export",
                "token",
            )
            for fmt in EXPORT_FORMATS
        ]
    return specs


def explain(result: Result) -> None:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the result's slowest query, in this thread."""
    from django.db import connection

    sql = result.slowest_query.strip()
    if not sql.upper().startswith("SELECT"):
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            result.explain = "\n".join(str(row[0]) for row in cursor.fetchall())
    except Exception as error:
        result.explain = f"EXPLAIN failed: {type(error).__name__}: {error}"


# --- report ------------------------------------------------------------------------------------


def markdown(results: Sequence[Result], viewers: Sequence[Viewer], dataset: Dataset) -> str:
    lines = [
        "| viewer | request | queries | p50 ms | p95 ms | max ms | DB ms (p50) | size |"
        " target p95 | |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.status == "error":
            lines.append(f"| {r.viewer} | {r.label} | | | | | | | | error: {r.error[:80]} |")
            continue
        db = statistics.median(r.db_ms) if r.db_ms else math.nan
        size = f"{r.body_bytes / 1024:.0f} KB" if r.body_bytes >= 1024 else f"{r.body_bytes} B"
        mark = "ok" if r.status == "ok" else "**over**"
        lines.append(
            f"| {r.viewer} | {r.label} {r.detail} | {r.query_count} | {fmt_ms(r.p50_ms)}"
            f" | **{fmt_ms(r.p95_ms)}** | {fmt_ms(r.max_ms)} | {fmt_ms(db)} | {size}"
            f" | {r.target_ms:.0f} | {mark} |"
        )
    lines.append("")
    for viewer in viewers:
        lines.append(f"* {viewer.name}: {viewer.description}, {viewer.visible} calls")
    lines.append(
        f"* data: {dataset.calls} calls, {dataset.participants} participants,"
        f" {dataset.utterances} finals, {dataset.alerts} alerts, {dataset.analytics} analytics"
        f" rows; database {dataset.database_size} (finals with their indexes"
        f" {dataset.utterance_table_size}); generated in {dataset.generate_s:.0f} s,"
        f" VACUUM ANALYZE {dataset.vacuum_s:.0f} s"
    )
    lists = [r for r in results if r.kind == "list" and r.status != "error"]
    exports = [r for r in results if r.kind == "export" and r.status != "error"]
    errors = [r for r in results if r.status == "error"]
    for name, group, target in (
        ("list pages", lists, LIST_TARGET_MS),
        ("exports", exports, EXPORT_TARGET_MS),
    ):
        met = bool(group) and all(r.status == "ok" for r in group)
        worst = max((r.p95_ms for r in group), default=math.nan)
        lines.append(
            f"* target p95 < {target:.0f} ms for {name}: {'met' if met else 'not met'}"
            f" (slowest p95 {fmt_ms(worst)} ms)"
        )
    if errors:
        lines.append(f"* {len(errors)} requests failed")
    return "\n".join(lines)


def server_info() -> dict[str, str]:
    from django.db import connection

    info = {}
    with connection.cursor() as cursor:
        for name in ("server_version", "shared_buffers", "work_mem", "effective_cache_size"):
            info[name] = query_value(cursor, f"SHOW {name}")
    return info


def save(
    path: Path,
    args: argparse.Namespace,
    dataset: Dataset,
    viewers: Iterable[Viewer],
    results: Sequence[Result],
) -> None:
    document = {
        "versions": args.versions,
        "settings": {
            k: getattr(args, k)
            for k in ("calls", "utterances", "per_call", "runs", "export_runs", "warmup", "seed")
        },
        "data": asdict(dataset),
        "viewers": [
            {"name": v.name, "description": v.description, "visible": v.visible} for v in viewers
        ],
        "results": [
            {**asdict(r), "p50_ms": r.p50_ms, "p95_ms": r.p95_ms, "max_ms": r.max_ms}
            for r in results
        ],
    }
    write_json(path, args.code_version, document)


# --- main --------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    import django
    import psycopg
    import rest_framework

    return {
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "djangorestframework": rest_framework.VERSION,
        "psycopg": psycopg.__version__,
    }


def run(args: argparse.Namespace, db: ScratchDatabase) -> int:
    from django.core.management import call_command

    print(f"creating database {db.name} on {urlsplit(args.database_url).netloc}", flush=True)
    db.create()
    # the API's per-user rate raised so the repetitions are not throttled (the throttle's work
    # per request is the same whatever the rate); plain HTTP: no redirect to https://
    configure_django(db.url, CALLSITE_API_RATE="1000000/min", CALLSITE_HTTPS="0")
    args.versions = {**versions(), **server_info()}
    call_command("migrate", interactive=False, verbosity=0)
    v = args.versions
    print(
        f"  PostgreSQL {v['server_version']} (shared_buffers {v['shared_buffers']}, work_mem"
        f" {v['work_mem']}), Django {v['django']}, DRF {v['djangorestframework']}, psycopg"
        f" {v['psycopg']}, Python {v['python']}",
        flush=True,
    )
    print(
        f"generating {args.calls} calls (about {args.per_call} finals each) and one 2-hour call"
        f" of {args.utterances} finals",
        flush=True,
    )
    dataset = Dataset()
    generate(args, dataset)
    print(
        f"  {dataset.calls} calls, {dataset.participants} participants, {dataset.utterances}"
        f" finals, {dataset.alerts} alerts in {dataset.generate_s:.0f} s; VACUUM ANALYZE...",
        flush=True,
    )
    vacuum_analyze(dataset)
    print(
        f"  database {dataset.database_size}, finals {dataset.utterance_table_size}"
        f" ({dataset.vacuum_s:.0f} s)",
        flush=True,
    )
    viewers = make_viewers(dataset)
    gc.collect()
    gc.freeze()  # as callsite/asgi.py does with what is loaded at start-up
    server = WsgiServer()
    results: list[Result] = []
    try:
        by_name = {v.name: v for v in viewers}
        specs = plan(viewers, dataset.long_call)
        print(
            f"measuring {len(specs)} requests at http://127.0.0.1:{server.port}/"
            f" ({args.runs} runs per list page, {args.export_runs} per export, after"
            f" {args.warmup} warm-up)",
            flush=True,
        )
        for spec in specs:
            runs = args.export_runs if spec.kind == "export" else args.runs
            result = measure(server, spec, by_name[spec.viewer], runs, args.warmup)
            results.append(result)
            print(result.line(), flush=True)
            if args.json is not None:
                save(args.json, args, dataset, viewers, results)
    finally:
        server.stop()
    for result in results:
        if result.status == "over" or (args.explain and result.status == "ok"):
            explain(result)
            if result.explain:
                print(
                    f"\nslowest query of {result.viewer} / {result.label}"
                    f" ({fmt_ms(result.slowest_query_ms)} ms):\n{result.slowest_query}\n"
                    f"{result.explain}"
                )
    if args.json is not None:
        save(args.json, args, dataset, viewers, results)
    print()
    print(markdown(results, viewers, dataset))
    return 0 if all(r.status == "ok" for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=10_000, help="calls in the history")
    parser.add_argument(
        "--utterances", type=int, default=2000, help="finals of the 2-hour call that is exported"
    )
    parser.add_argument(
        "--per-call", type=int, default=10, help="finals of the other calls, on average"
    )
    parser.add_argument("--runs", type=int, default=20, help="measured requests per list page")
    parser.add_argument("--export-runs", type=int, default=10, help="measured requests per export")
    parser.add_argument("--warmup", type=int, default=1, help="requests before each measurement")
    parser.add_argument("--seed", type=int, default=1, help="of the generated data")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_SERVER_URL,
        help="PostgreSQL server to create the scratch database on (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN ANALYZE of every request's slowest query (always done for misses)",
    )
    parser.add_argument("--json", type=Path, help="write raw results here")
    args = parser.parse_args(argv)
    if urlsplit(args.database_url).scheme not in ("postgres", "postgresql"):
        parser.error("--database-url must be a postgres:// URL")
    if args.calls < 10 or args.utterances < 1 or args.per_call < 2 or args.runs < 1:
        parser.error("--calls >= 10, --utterances >= 1, --per-call >= 2 and --runs >= 1")
    args.code_version = code_version()
    signal.signal(signal.SIGTERM, interrupt)  # drop the scratch database, as on Ctrl-C
    started = time.monotonic()
    print(
        header("call history and exports", args.code_version) + f", {args.calls} calls + one of"
        f" {args.utterances} finals, {args.runs} runs per list page, {args.export_runs} per"
        " export; real HTTP to Django's WSGI application in this process (wsgiref)",
        flush=True,
    )
    name = f"callsite_bench_history_{secrets.token_hex(4)}"
    db = ScratchDatabase(args.database_url, name, query=False)
    code = db.run_then_drop(lambda: run(args, db), keep=args.keep)
    print(f"\n({time.monotonic() - started:.0f} s)")
    return code


if __name__ == "__main__":
    sys.exit(main())
