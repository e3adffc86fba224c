"""Run N Daphne worker processes on consecutive ports and keep them running.

The production shape of Callsite on one machine: one worker per core, each
``python -m callsite.server callsite.asgi:application`` (Daphne with a graceful stop, see
callsite/server.py) on ``--host`` and ports ``--port`` .. ``--port + N - 1``,
behind a proxy that spreads sockets and requests over them with no stickiness
(``manage.py nginx_config`` writes nginx's part). The workers are identical and share
nothing but PostgreSQL and Redis, so the same command runs on every machine of a larger
deployment.

A worker that exits on its own is started again after a pause that doubles up to 30 s (and
goes back to 1 s once a worker has run for a minute). SIGTERM or SIGINT is passed on to every
worker; each stops listening, closes its sockets with 1012 (service restart), stores what its
calls still hold, and exits. Any still running after ``--grace`` seconds is killed.
Migrations and ``collectstatic`` are not run here: run them once per deployment, before the
workers start (docs/deploy.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a worker that ran this long gets a short restart pause again


@dataclass
class Worker:
    index: int
    port: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    restarts: int = field(default=0)


class Command(BaseCommand):
    help = "Run N Daphne workers on consecutive ports (one per core) and restart any that exit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workers",
            type=int,
            default=os.cpu_count() or 1,
            help="worker processes on this machine (default: one per core)",
        )
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
        )
        parser.add_argument(
            "--port", type=int, default=8001, help="first worker's port (default: %(default)s)"
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="seconds workers get to stop after SIGTERM before they are killed",
        )
        parser.add_argument(
            "--daphne-arg",
            action="append",
            default=[],
            metavar="ARG",
            help="extra argument for every daphne (repeatable), e.g. --daphne-arg=--verbosity=0",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, first = options["workers"], options["port"]
        if count < 1:
            raise CommandError("--workers must be at least 1")
        if not 0 < first <= 65535 - count + 1:
            raise CommandError(f"--port {first} leaves no room for {count} workers")
        total = max(count, settings.CALLSITE_WORKERS)
        env = {**os.environ, "CALLSITE_WORKERS": str(total)}
        # The system checks see the same settings the workers will (CALLSITE_WORKERS included).
        os.environ["CALLSITE_WORKERS"] = str(total)
        settings.CALLSITE_WORKERS = total
        call_command("check", fail_level="ERROR")
        command = [
            sys.executable,
            "-m",
            "callsite.server",
            "--proxy-headers",
            *options["daphne_arg"],
        ]
        workers = [Worker(i, first + i) for i in range(count)]
        stopping: list[int] = []

        def stop(signum: int, frame: Any) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(
            f"Starting {count} worker{'s' if count > 1 else ''} on {options['host']}:"
            f"{first}-{first + count - 1} ({total} in the deployment)"
        )
        try:
            for worker in workers:
                self._start(worker, command, options["host"], env)
            while not stopping:
                time.sleep(0.2)
                self._watch(workers, command, options["host"], env)
        finally:
            self._stop(workers, options["grace"])

    def _start(self, worker: Worker, command: list[str], host: str, env: dict[str, str]) -> None:
        worker.process = subprocess.Popen(
            [*command, "-b", host, "-p", str(worker.port), "callsite.asgi:application"],
            cwd=settings.BASE_DIR,
            env=env,
        )
        worker.started_at = time.monotonic()
        worker.restart_at = None
        self.stdout.write(
            f"worker {worker.index + 1} on port {worker.port}: pid {worker.process.pid}"
        )

    def _watch(
        self, workers: list[Worker], command: list[str], host: str, env: dict[str, str]
    ) -> None:
        now = time.monotonic()
        for worker in workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    worker.restarts += 1
                    self._start(worker, command, host, env)
                continue
            assert worker.process is not None
            code = worker.process.poll()
            if code is None:
                continue
            if now - worker.started_at >= STABLE_AFTER:
                worker.backoff = 1.0
            self.stderr.write(
                f"worker {worker.index + 1} on port {worker.port} exited with code {code};"
                f" starting it again in {worker.backoff:.0f} s"
            )
            worker.restart_at = now + worker.backoff
            worker.backoff = min(MAX_BACKOFF, worker.backoff * 2)

    def _stop(self, workers: list[Worker], grace: float) -> None:
        running = [w.process for w in workers if w.process is not None and w.process.poll() is None]
        if not running:
            return
        self.stdout.write(f"Stopping {len(running)} worker(s)...")
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"pid {process.pid} still running after {grace:.0f} s: killed")
                process.kill()
                process.wait()
        self.stdout.write("Stopped.")
