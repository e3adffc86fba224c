"""The soak's samples: what ``/proc``, PostgreSQL and Redis say about Callsite's workers.

Each sample reads every worker's RSS (``VmRSS``), open file descriptors, threads, CPU and its
TCP sockets to PostgreSQL and Redis; the connections to the database (``pg_stat_activity``);
the Redis clients that are the workers' sockets (``CLIENT LIST``) and all of the server's;
the workers' ``/metrics``; and the load's own figures (calls, pages, finals, lateness).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.harness.churn import Calls, Supervisors
from bench.harness.cpu import cores_busy_seconds, process_cpu
from bench.harness.metrics import Snapshot, lag_between, read_each_metrics
from bench.harness.report import fmt_ms
from bench.harness.servers import Serve

# --- processes and their sockets, from /proc ---------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        values[key] = value.strip()
    return values


def kib(value: str) -> int:
    """``12345 kB`` -> 12345."""
    return int(value.split()[0]) if value else 0


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str  # hex state of /proc/net/tcp: 01 established, 0A listening


def tcp_sockets() -> dict[int, TcpSocket]:
    """Every TCP socket of this network namespace by inode (IPv4 and IPv6)."""
    table: dict[int, TcpSocket] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
            table[inode] = TcpSocket(
                int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state
            )
    return table


def process_sockets(pid: int, table: dict[int, TcpSocket]) -> tuple[int, list[TcpSocket]]:
    """Open fds of ``pid``, and those of them that are TCP sockets (listening ones too)."""
    names = os.listdir(f"/proc/{pid}/fd")
    found: list[TcpSocket] = []
    for name in names:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link.startswith("socket:["):
            sock = table.get(int(link[8:-1]))
            if sock is not None:
                found.append(sock)
    return len(names), found


# --- sampling ----------------------------------------------------------------------------------


@dataclass
class WorkerSample:
    pid: int
    port: int  # the port it listens on (0: not found)
    rss_kib: int
    fds: int
    threads: int
    cpu: float  # share of one core since the previous sample
    pg_sockets: int  # its TCP connections to PostgreSQL's port
    redis_sockets: int  # its TCP connections to Redis's port


@dataclass
class Sample:
    t: float  # seconds since the load began
    at: str  # UTC time
    phase: str  # idle-before | warm-up | load | drain | idle-after
    workers: list[WorkerSample]
    pg_connections: int  # pg_stat_activity rows for the scratch database (this one's left out)
    pg_states: dict[str, int]
    redis_clients: int  # CLIENT LIST entries that are the workers' sockets
    redis_clients_server: int  # INFO connected_clients: the whole Redis server, others too
    calls_live: int  # this process's ACS sockets open
    calls_started: int
    server_acs_sockets: int  # the workers' callsite_ingest_sockets, added up
    walls: int
    call_pages: int
    finals_sent: int
    finals_stored: int
    frame_lag_p99_ms: float  # since the previous sample, all workers (audio calls only)
    audio_late_p99_ms: float  # this process's send lateness since the previous sample
    caption_late_p99_ms: float
    load_cpu: float  # this process, share of one core
    machine_busy: float  # all cores, share of one core
    others_cpu: float  # machine_busy - workers - this process (Redis, PostgreSQL, others)
    loadavg: float
    worker_restarts: int

    @property
    def supervisor_sockets(self) -> int:
        return self.walls + self.call_pages


class Monitor:
    """Reads the workers, PostgreSQL and Redis; keeps every sample."""

    def __init__(
        self, serve: Serve, database_url: str, redis_url: str, pids: list[int], t0: float
    ) -> None:
        self.serve = serve
        self.database_url = database_url
        self.redis_url = redis_url
        self.redis_port = urlsplit(redis_url).port or 6379
        self.pg_port = urlsplit(database_url).port or 5432
        self.first_pids = list(pids)
        self.seen_pids = set(pids)
        self.restarts = 0
        self.t0 = t0
        self.samples: list[Sample] = []
        self.last_metrics: Snapshot | None = None
        self.conn: Any = None
        self._cpu: tuple[float, dict[int, float], float, float] | None = None
        self.server_counters: dict[str, float] = {}
        self.loadavg = math.nan

    def _pg(self) -> Any:
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.database_url, autocommit=True)
        return self.conn

    def _read_local(self) -> tuple[list[int], list[WorkerSample], int, dict[str, int], int]:
        """Workers from /proc and PostgreSQL's view (blocking: runs on a thread)."""
        pids = self.serve.worker_pids()
        new = set(pids) - self.seen_pids
        if new:
            self.restarts += len(new)
            self.seen_pids |= new
        table = tcp_sockets()
        now = time.monotonic()
        cpu_now = {pid: process_cpu(pid) for pid in pids}
        previous = self._cpu
        workers: list[WorkerSample] = []
        redis_local_ports: list[int] = []
        for pid in pids:
            try:
                status = proc_status(pid)
                fds, socks = process_sockets(pid, table)
            except OSError:
                continue  # exited between the listing and the read
            port = next(
                (
                    s.local_port
                    for s in socks
                    if s.state == "0A" and s.local_port in self.serve.ports
                ),
                0,
            )
            redis = [s for s in socks if s.remote_port == self.redis_port and s.state != "0A"]
            redis_local_ports += [s.local_port for s in redis]
            cpu = math.nan
            if previous is not None and pid in previous[1]:
                cpu = (cpu_now[pid] - previous[1][pid]) / max(now - previous[0], 1e-9)
            workers.append(
                WorkerSample(
                    pid,
                    port,
                    kib(status.get("VmRSS", "")),
                    fds,
                    int(status.get("Threads", "0") or 0),
                    cpu,
                    sum(1 for s in socks if s.remote_port == self.pg_port and s.state != "0A"),
                    len(redis),
                )
            )
        workers.sort(key=lambda w: (w.port or 65536, w.pid))
        try:
            self.loadavg = float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError):
            self.loadavg = math.nan
        self._cpu = (now, cpu_now, time.process_time(), cores_busy_seconds(None))
        conn = self._pg()
        rows = conn.execute(
            "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
        ).fetchall()
        states = {str(state): int(n) for state, n in rows}
        stored = self.stored_finals()
        return redis_local_ports, workers, sum(states.values()), states, stored

    async def _redis(self, worker_ports: list[int]) -> tuple[int, int]:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.redis_url)
        try:
            clients = await client.client_list()
            info = await client.info("clients")
        finally:
            await client.aclose()
        wanted = set(worker_ports)
        ours = 0
        for entry in clients:
            addr = str(entry.get("addr", ""))
            port = addr.rsplit(":", 1)[-1]
            if port.isdigit() and int(port) in wanted:
                ours += 1
        return ours, int(info.get("connected_clients", 0))

    async def metrics(self) -> tuple[Snapshot | None, list[Snapshot]]:
        """The workers' metrics, merged (None if one did not answer), and each that answered."""
        return await read_each_metrics(self.serve.ports, limit=10)

    def stored_finals(self) -> int:
        """Utterances stored in the database (blocking)."""
        return int(self._pg().execute("SELECT count(*) FROM streaming_utterance").fetchone()[0])

    async def sample(
        self, phase: str, calls: Calls | None, supervisors: Supervisors | None
    ) -> Sample:
        previous_cpu = self._cpu
        redis_ports, workers, pg_total, pg_states, stored = await asyncio.to_thread(
            self._read_local
        )
        ours, server_clients = await self._redis(redis_ports)
        merged, snaps = await self.metrics()
        lag = math.nan
        if merged is not None:
            if self.last_metrics is not None:
                between = lag_between(self.last_metrics, merged)
                lag = between.p99 * 1000 if between.count else math.nan
            self.last_metrics = merged
            for name in (
                "callsite_ingest_finals_lost_total",
                "callsite_ingest_internal_errors_total",
                "callsite_ingest_rejected_total",
                "callsite_ingest_db_retries_total",
                "callsite_ingest_sockets_total",
            ):
                self.server_counters[name] = merged.value(name)
        acs = int(sum(s.value("callsite_ingest_sockets") for s in snaps))
        load_cpu = busy = others = math.nan
        if previous_cpu is not None and self._cpu is not None:
            window = max(self._cpu[0] - previous_cpu[0], 1e-9)
            load_cpu = (self._cpu[2] - previous_cpu[2]) / window
            busy = (self._cpu[3] - previous_cpu[3]) / window
            worker_cpu = sum(w.cpu for w in workers if not math.isnan(w.cpu))
            others = busy - worker_cpu - load_cpu
        audio_late, caption_late = calls.take_lateness() if calls else (math.nan, math.nan)
        walls, pages = supervisors.sockets_open() if supervisors else (0, 0)
        sample = Sample(
            t=time.monotonic() - self.t0,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            phase=phase,
            workers=workers,
            pg_connections=pg_total,
            pg_states=pg_states,
            redis_clients=ours,
            redis_clients_server=server_clients,
            calls_live=len(calls.live) if calls else 0,
            calls_started=len(calls.records) if calls else 0,
            server_acs_sockets=acs,
            walls=walls,
            call_pages=pages,
            finals_sent=calls.finals_sent if calls else 0,
            finals_stored=stored,
            frame_lag_p99_ms=lag,
            audio_late_p99_ms=audio_late,
            caption_late_p99_ms=caption_late,
            load_cpu=load_cpu,
            machine_busy=busy,
            others_cpu=others,
            loadavg=self.loadavg,
            worker_restarts=self.restarts,
        )
        self.samples.append(sample)
        return sample

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()


def sample_line(s: Sample) -> str:
    each = " ".join(
        f"w{i + 1}[rss {w.rss_kib / 1024:.1f}M fd {w.fds} thr {w.threads}"
        f" cpu {w.cpu:.0%} pg {w.pg_sockets} rd {w.redis_sockets}]"
        if not math.isnan(w.cpu)
        else f"w{i + 1}[rss {w.rss_kib / 1024:.1f}M fd {w.fds} thr {w.threads}"
        f" pg {w.pg_sockets} rd {w.redis_sockets}]"
        for i, w in enumerate(s.workers)
    )
    return (
        f"{s.t:7.0f}s {s.phase:11} {each} | pg {s.pg_connections} redis {s.redis_clients}"
        f" (server {s.redis_clients_server}) | calls {s.calls_live} (acs {s.server_acs_sockets},"
        f" started {s.calls_started}) pages {s.walls}+{s.call_pages} | finals"
        f" {s.finals_stored}/{s.finals_sent} | lag99 {fmt_ms(s.frame_lag_p99_ms)} late99"
        f" {fmt_ms(s.audio_late_p99_ms)}/{fmt_ms(s.caption_late_p99_ms)} ms | cpu load"
        f" {s.load_cpu:.0%} others {s.others_cpu:.0%} loadavg {s.loadavg:.2f}"
        + (f" | RESTARTS {s.worker_restarts}" if s.worker_restarts else "")
    )
