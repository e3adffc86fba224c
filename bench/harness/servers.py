"""Servers under test: Callsite's Daphne workers, ``manage.py serve``, the bare server, and
Django's WSGI application in this process; their environment, ports and logs; and Redis.

Callsite (and the bare server) run from this checkout, or from another one
(``ServerSpec.parse("callsite@DIR")``): the processes then start in that directory with it
first on ``PYTHONPATH``, so they import that checkout's code even though this virtualenv has
the project installed in editable mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bench.harness import ROOT
from bench.harness.clients import CallLoad
from bench.harness.cpu import (
    CpuMeter,
    CpuUse,
    start_py_spies,
    start_ticks,
    stat_fields,
    worker_cpu,
)
from bench.harness.metrics import Snapshot, read_all_metrics, read_metrics

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
STOP_LIMIT = 60.0  # seconds `serve` may take to stop its workers before it is killed
PROBLEM_WORDS = ("WARNING", "ERROR", "CRITICAL", "Traceback")

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
T = TypeVar("T")


# --- environment and ports ---------------------------------------------------------------------


def base_env(secret: str, root: Path = ROOT) -> dict[str, str]:
    """The servers' environment: this one without Callsite's settings, then the benchmark's.

    ``root`` (the checkout whose code runs) goes first on ``PYTHONPATH``.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CALLSITE_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="callsite.settings",
        DJANGO_SECRET_KEY="bench-" + secrets.token_urlsafe(32),
        CALLSITE_ACS_SHARED_SECRET=secret,
        CALLSITE_RECOGNIZER="none",
        CALLSITE_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` different free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def consecutive_ports(count: int) -> int:
    """A first port such that it and the next ``count - 1`` are free on 127.0.0.1."""
    for _ in range(100):
        first = free_port()
        if first + count > 65535:
            continue
        probes: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first
    raise RuntimeError(f"found no {count} consecutive free ports")


def log_problems(
    logs: Sequence[tuple[str, Path]], limit: int | None = 20, after: str | None = None
) -> list[str]:
    """Warnings, errors and tracebacks in the servers' logs, prefixed with the worker's name.

    With ``after``, each log is read from its first line that starts with it.
    """
    found: list[str] = []
    for name, path in logs:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        if after is not None:
            lines = lines[next((i for i, line in enumerate(lines) if line.startswith(after)), 0) :]
        found += [
            f"{name}: {line}" if name else line
            for line in lines
            if any(word in line for word in PROBLEM_WORDS)
        ]
    return found if limit is None else found[:limit]


# --- Daphne workers and the bare server --------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """A server to measure: ``callsite`` or ``bare`` from this checkout, or either from the
    checkout in DIR (``callsite@DIR``, ``bare@DIR``)."""

    name: str
    kind: str  # callsite | bare
    root: Path = ROOT  # the checkout whose code runs
    # Callsite's settings for this server: ``callsite+recording`` records every call.
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def stem(self) -> str:
        """A file name for the server: ``callsite``, or ``callsite@<DIR's last part>``."""
        kind = self.name.partition("@")[0]
        return kind if self.root == ROOT else f"{kind}@{self.root.name}"

    @classmethod
    def parse(cls, text: str) -> ServerSpec:
        server, _, where = text.partition("@")
        kind, _, option = server.partition("+")
        if kind not in ("callsite", "bare") or ("@" in text and not where):
            raise ValueError(
                f"unknown server {text!r} (callsite, callsite+recording, bare, callsite@DIR, "
                "bare@DIR)"
            )
        if option and (kind, option) not in OPTIONS:
            raise ValueError(f"unknown server option {text!r} (callsite+recording)")
        environment = OPTIONS.get((kind, option), ())
        if not where:
            return cls(text, kind, environment=environment)
        root = Path(where).expanduser().resolve()
        if not (root / "manage.py").is_file() or not (root / "callsite").is_dir():
            raise ValueError(f"{where}: not a Callsite checkout (no manage.py and callsite/)")
        if kind == "bare" and not (root / "bench" / "bare_server.py").is_file():
            raise ValueError(f"{where}: has no bench/bare_server.py")
        return cls(text, kind, root, environment)


OPTIONS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("callsite", "recording"): (("CALLSITE_RECORDING", "on"),),
}
CALLSITE = ServerSpec("callsite", "callsite")
BARE = ServerSpec("bare", "bare")


@dataclass
class Window:
    """A measurement window: its length, the metrics at both ends, the CPU, frames sent."""

    seconds: float
    before: Snapshot
    after: Snapshot
    cpu: CpuUse
    frames_sent: int


_LIVE: set[Server] = set()  # servers started and not yet stopped


class Server:
    """One fresh server process pinned to one CPU, output to a log in ``workdir``.

    ``extra_env`` is applied last, over the benchmark's environment; for Callsite it names
    the database (``DATABASE_URL``). ``entry`` runs Callsite under plain ``daphne`` or under
    ``callsite.server`` (what ``manage.py serve`` runs: drain, WebSocket limits, shedding).
    """

    def __init__(
        self,
        spec: ServerSpec,
        workdir: Path,
        secret: str,
        extra_env: Mapping[str, str] | None = None,
        *,
        cpu: int = 0,
        port: int | None = None,
        entry: str = "daphne",
    ) -> None:
        self.kind = spec.kind
        self.cpu = cpu
        self.port = port or free_port()
        self.log_path = workdir / f"{spec.stem}-{self.port}.log"
        env = base_env(secret, spec.root)
        if spec.kind == "callsite":
            listen = ["-b", "127.0.0.1", "-p", str(self.port), "callsite.asgi:application"]
            if entry == "callsite.server":
                command = [sys.executable, "-m", "callsite.server", *listen]
            else:
                command = [str(Path(sys.executable).with_name("daphne")), *listen]
        else:
            command = [sys.executable, "-m", "bench.bare_server", "--port", str(self.port)]
        env.update(spec.environment)
        if env.get("CALLSITE_RECORDING") == "on":  # each server its own, in the run's folder
            env["CALLSITE_RECORDINGS_DIR"] = str(workdir / f"recordings-{self.port}")
        env.update(extra_env or {})
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), *command],
            cwd=spec.root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C reaches us, not it
        )
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self, within: float = 60.0) -> Snapshot:
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early; see {self.log_path}")
            try:
                return await read_metrics(self.port, limit=5)
            except (TimeoutError, OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Kill the server (its whole process group) and wait for it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()
        _LIVE.discard(self)


def stop_servers() -> None:
    """Kill every server still running (after an error or an interrupt)."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


class Workers:
    """N identical server processes with the same environment, worker i on CPU i % CPUS.

    For Callsite, ``extra_env`` names the one database they share (``DATABASE_URL``) and, with
    more than one, the Redis channel layer that joins them (``REDIS_URL``).
    """

    def __init__(
        self,
        spec: ServerSpec,
        workdir: Path,
        secret: str,
        count: int,
        extra_env: Mapping[str, str] | None = None,
        *,
        entry: str = "daphne",
    ) -> None:
        self.kind = spec.kind
        self.servers: list[Server] = []
        env = dict(extra_env or {})
        if entry == "callsite.server":
            # The load benchmarks find where the lag passes its limit: nothing is shed.
            env.update(CALLSITE_SHED_LOOP_BUSY_PERCENT="0", CALLSITE_SHED_LOOP_LAG_MS="0")
        try:
            for i, port in enumerate(free_ports(count)):
                self.servers.append(
                    Server(spec, workdir, secret, env, cpu=worker_cpu(i), port=port, entry=entry)
                )
        except BaseException:
            self.stop()
            raise

    @property
    def count(self) -> int:
        return len(self.servers)

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers]

    @property
    def cores(self) -> set[int]:
        return {s.cpu for s in self.servers}

    async def ready(self) -> None:
        await asyncio.gather(*(s.ready() for s in self.servers))

    async def metrics(self, limit: float | None = None) -> Snapshot:
        return await read_all_metrics(self.ports, limit)

    async def window(
        self,
        load: CallLoad,
        seconds: float,
        generator_cpus: set[int],
        redis_url: str | None,
        profile: tuple[Path, str] | None,
        spies: list[subprocess.Popen[bytes]],
    ) -> Window:
        """Measure ``seconds`` of the load: the workers' metrics before and after, the CPU
        (with a local Redis's when ``redis_url`` is given) and what the load sent, while it
        counts its send lateness. ``profile`` (folder, stem): py-spy profiles of the window,
        added to ``spies``."""
        if profile is not None:
            spies += start_py_spies(self.pids, seconds, *profile)
        redis = await redis_pid(redis_url) if redis_url is not None else None
        before = await self.metrics()
        meter = CpuMeter(self.pids, self.cores, generator_cpus, redis)
        started = time.monotonic()
        sent = load.audio.sent
        load.measuring = True
        await asyncio.sleep(seconds)
        load.measuring = False
        sent = load.audio.sent - sent
        length = time.monotonic() - started
        cpu = meter.stop()
        return Window(length, before, await self.metrics(), cpu, sent)

    def logs(self) -> list[tuple[str, Path]]:
        """(name, log file) of each worker; the name is empty with one worker."""
        if self.count == 1:
            return [("", self.servers[0].log_path)]
        return [(f"worker {i}", s.log_path) for i, s in enumerate(self.servers)]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


# --- Callsite as `manage.py serve` -------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The child processes of ``pid``: from /proc/<pid>/task/*/children, else a /proc scan."""
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.update(int(x) for x in text.split())
        return sorted(found)
    except (OSError, ValueError):
        found.clear()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(stat_fields(int(entry))[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.add(int(entry))
    return sorted(found)


class Serve:
    """``manage.py serve --workers N`` in a process group of its own, output to ``log_path``."""

    def __init__(self, workers: int, env: dict[str, str], log_path: Path) -> None:
        self.workers = workers
        first = consecutive_ports(workers)
        self.ports = [first + i for i in range(workers)]
        self.log_path = log_path
        self.started = time.monotonic()
        command = ["manage.py", "serve", "--workers", str(workers), "--host", "127.0.0.1"]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *command, "--port", str(first)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches this process, not the servers
            )
        self.stop_seconds = float("nan")
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The workers: children of the serve process, oldest first."""
        return sorted(children(self.pid), key=lambda pid: (start_ticks(pid), pid))

    async def ready(self, within: float = 120.0) -> list[int]:
        """Wait until every worker answers ``/metrics``; the workers' pids."""
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"manage.py serve exited with code {self.process.returncode}; see"
                    f" {self.log_path}"
                )
            try:
                await asyncio.gather(*(read_metrics(p, limit=5) for p in self.ports))
                pids = self.worker_pids()
                if len(pids) == self.workers:
                    return pids
            except (TimeoutError, OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not answer within {within:.0f} s")
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM (serve stops its workers, which drain); killed after STOP_LIMIT."""
        if self.process.poll() is not None:
            self.exit_code = self.process.returncode
            return
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.exit_code = None
        self.stop_seconds = time.monotonic() - began
        # a worker left behind (serve killed) goes with the process group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


# --- Django's WSGI application in this process -------------------------------------------------


class QueryTimer:
    """An ``execute_wrapper``: the time of each query in the driver (sent, run, fetched)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.times.append(time.perf_counter() - started)


@dataclass
class RequestSample:
    """What the probe saw of one request, in the server's thread."""

    server_s: float
    queries: list[tuple[float, str]]  # (seconds in the driver, SQL as executed)


class Probe:
    """Wraps the WSGI application: counts and times each request's queries.

    It runs in the server's thread, so it sees that thread's database connection: the one the
    request uses. The response comes back rendered, so every query is inside the call.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.samples: queue.SimpleQueue[RequestSample] = queue.SimpleQueue()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        timer = QueryTimer()
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
            response = self.app(environ, start_response)
        elapsed = time.perf_counter() - started
        sqls = [str(q["sql"]) for q in captured.captured_queries]
        self.samples.put(RequestSample(elapsed, list(zip(timer.times, sqls, strict=False))))
        return response


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class WsgiServer:
    """Django's WSGI application on a loopback port, served by ``wsgiref`` in a thread."""

    def __init__(self) -> None:
        from django.core.wsgi import get_wsgi_application

        self.probe = Probe(get_wsgi_application())
        self.httpd: WSGIServer = make_server("127.0.0.1", 0, self.probe, handler_class=QuietHandler)
        self.port = int(self.httpd.server_port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="wsgi", daemon=True)
        self.thread.start()

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes, float, RequestSample]:
        """One GET over a new connection: status, body, seconds until the body was read."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
        finally:
            conn.close()
        return response.status, body, elapsed, self.probe.samples.get(timeout=30)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


# --- Redis -------------------------------------------------------------------------------------


async def redis_pid(url: str) -> int | None:
    """Redis's process id when it runs on this machine (its CPU use is then reported)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        server = await client.info("server")
    finally:
        await client.aclose()
    local = (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")
    return int(server["process_id"]) if local else None


async def redis_cleanup(url: str, prefix: str) -> int:
    """Delete the run's keys (its channel prefix) from Redis; returns how many there were."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    deleted = 0
    try:
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            deleted += int(await client.delete(key))
    finally:
        await client.aclose()
    return deleted


async def redis_inbox(url: str, prefix: str) -> int:
    """Messages waiting in the server's inbox (the list layer's per-process sorted set)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    waiting = 0
    try:
        async for key in client.scan_iter(match=prefix + "specific.*", count=1000):
            if not key.endswith(b"$inflight"):
                waiting += int(await client.zcard(key))
    finally:
        await client.aclose()
    return waiting
