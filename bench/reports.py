"""Agent and team reports on PostgreSQL at 10,000 calls: the API, the page and the CSV.

The same scratch database and data as ``bench.history`` (N calls over the last 90 days, 20
teams of 10 agents, analytics, alerts, sentiments), with every agent of the seed entered in
the agent directory (``dashboard.models.Agent``, one address each, in its team). Then, for
Staff (every call) and a team supervisor (about 10% of them), over the last 7, 30 and 90
days: ``/api/reports/agents/``, the ``/reports/`` page and ``/reports/agents.csv``, each a
real HTTP request to Django's WSGI application in this process, repeated ``--runs`` times
after a warm-up. Reported: p50, p95 and max, and the number of queries. Target: p95 under
300 ms::

    python -m bench.reports --calls 10000 --runs 20 --json reports.json

The scratch database is dropped at the end, also on an error or Ctrl-C, unless ``--keep``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import secrets
import signal
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.harness.db import ScratchDatabase, configure_django
from bench.harness.report import code_version, fmt_ms, header
from bench.harness.runs import interrupt
from bench.harness.seed import Dataset, Viewer, generate, make_viewers, vacuum_analyze
from bench.harness.servers import WsgiServer

TARGET_MS = 300.0
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass
class ReportSpec:
    viewer: str
    label: str
    path: str
    kind: str
    auth: str  # token | session


@dataclass
class Result:
    viewer: str
    label: str
    status: str = "error"  # ok | over | error
    error: str = ""
    detail: str = ""
    times_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    db_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)

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
        low, high = min(self.queries, default=0), max(self.queries, default=0)
        return str(low) if low == high else f"{low}-{high}"

    def line(self) -> str:
        if self.status == "error":
            return f"  {self.viewer:10} {self.label:28} ERROR {self.error}"
        db = statistics.median(self.db_ms) if self.db_ms else math.nan
        server = statistics.median(self.server_ms) if self.server_ms else math.nan
        return (
            f"  {self.viewer:10} {self.label:28} p50 {fmt_ms(self.p50_ms):>5} p95"
            f" {fmt_ms(self.p95_ms):>5} max {fmt_ms(self.max_ms):>5} ms | server"
            f" {fmt_ms(server)} db {fmt_ms(db)} ms | {self.query_count} queries"
            f" {self.detail} -> {self.status}"
        )


def describe(spec: ReportSpec, body: bytes) -> str:
    """What the warm-up's body held: agents and teams, or rows."""
    if spec.path.startswith("/api/"):
        report = json.loads(body)
        return f"({len(report['agents'])} agents, {len(report['teams'])} teams)"
    if ".csv" in spec.path:
        rows = body.count(b"\n") - 1
        return f"({rows} rows)"
    return f"({body.count(b'<tr data-name=')} rows)"


def measure(server: WsgiServer, spec: ReportSpec, viewer: Viewer, runs: int, warmup: int) -> Result:
    result = Result(spec.viewer, spec.label)
    headers = viewer.headers(spec.auth)
    try:
        for index in range(warmup + runs):
            status, body, elapsed, sample = server.get(spec.path, headers)
            if status != 200:
                result.error = f"HTTP {status}: {body[:200]!r}"
                return result
            if index < warmup:
                result.detail = describe(spec, body)
                continue
            result.times_ms.append(elapsed * 1000)
            result.server_ms.append(sample.server_s * 1000)
            result.db_ms.append(sum(t for t, _ in sample.queries) * 1000)
            result.queries.append(len(sample.queries))
    except Exception as error:
        result.error = f"{type(error).__name__}: {error}"
        return result
    result.status = "ok" if result.p95_ms < TARGET_MS else "over"
    return result


def directory(dataset: Dataset) -> int:
    """Every agent of the seed in the directory, in its team; returns how many."""
    from dashboard.models import Agent, AgentAddress
    from dashboard.models import Team as TeamModel

    teams = {t.name: t for t in TeamModel.objects.all()}
    count = 0
    for team in dataset.teams:
        for n, raw_id in enumerate(team.agents):
            agent = Agent.objects.create(name=f"{team.name} agent {n + 1}", team=teams[team.name])
            AgentAddress.objects.create(agent=agent, address=raw_id)
            count += 1
    return count


def plan(viewers: Sequence[Viewer]) -> list[ReportSpec]:
    specs: list[ReportSpec] = []
    now = datetime.now(UTC)
    for viewer in viewers:
        for days in (7, 30, 90):
            query = urlencode({"started_after": (now - timedelta(days=days)).date().isoformat()})
            specs += [
                ReportSpec(
                    viewer.name,
                    f"API report, {days} days",
                    f"/api/reports/agents/?{query}",
                    "report",
                    "token",
                ),
                ReportSpec(
                    viewer.name,
                    f"report page, {days} days",
                    f"/reports/?{query}",
                    "report",
                    "session",
                ),
                ReportSpec(
                    viewer.name,
                    f"report CSV, {days} days",
                    f"/reports/agents.csv?{query}",
                    "report",
                    "session",
                ),
            ]
    return specs


def run(args: argparse.Namespace, db: ScratchDatabase) -> int:
    from django.core.management import call_command

    print(f"creating database {db.name} on {urlsplit(args.database_url).netloc}", flush=True)
    db.create()
    configure_django(db.url, CALLSITE_API_RATE="1000000/min", CALLSITE_HTTPS="0")
    call_command("migrate", interactive=False, verbosity=0)
    dataset = Dataset()
    generate(args, dataset)
    print(
        f"  {dataset.calls} calls, {dataset.participants} participants, {dataset.utterances}"
        f" finals, {dataset.alerts} alerts in {dataset.generate_s:.0f} s",
        flush=True,
    )
    viewers = make_viewers(dataset)
    agents = directory(dataset)
    vacuum_analyze(dataset)
    print(f"  {agents} agents in the directory; database {dataset.database_size}", flush=True)
    gc.collect()
    gc.freeze()
    server = WsgiServer()
    results: list[Result] = []
    try:
        by_name = {v.name: v for v in viewers}
        for spec in plan(viewers):
            result = measure(server, spec, by_name[spec.viewer], args.runs, args.warmup)
            results.append(result)
            print(result.line(), flush=True)
    finally:
        server.stop()
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "calls": dataset.calls,
                    "agents": agents,
                    "results": [
                        asdict(r) | {"p50_ms": r.p50_ms, "p95_ms": r.p95_ms} for r in results
                    ],
                },
                indent=2,
                default=str,
            )
        )
    print()
    print("| viewer | request | p50 ms | p95 ms | max ms | queries | result |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r.viewer} | {r.label} | {fmt_ms(r.p50_ms)} | {fmt_ms(r.p95_ms)} |"
            f" {fmt_ms(r.max_ms)} | {r.query_count} | {r.status} |"
        )
    return 0 if all(r.status == "ok" for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reports", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=10_000, help="calls in the history")
    parser.add_argument("--per-call", type=int, default=10, help="finals per call, on average")
    parser.add_argument("--utterances", type=int, default=10, help="finals of the seed's long call")
    parser.add_argument("--runs", type=int, default=20, help="measured requests per report")
    parser.add_argument("--warmup", type=int, default=1, help="requests before each measurement")
    parser.add_argument("--seed", type=int, default=1, help="of the generated data")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_SERVER_URL,
        help="PostgreSQL server for the scratch database",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--json", type=Path, help="write raw results here")
    args = parser.parse_args(argv)
    if urlsplit(args.database_url).scheme not in ("postgres", "postgresql"):
        parser.error("--database-url must be a postgres:// URL")
    args.code_version = code_version()
    signal.signal(signal.SIGTERM, interrupt)
    print(
        header("agent and team reports", args.code_version)
        + f", {args.calls} calls, {args.runs} runs each",
        flush=True,
    )
    db = ScratchDatabase(
        args.database_url, f"callsite_bench_reports_{secrets.token_hex(4)}", query=False
    )
    return db.run_then_drop(lambda: run(args, db), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
