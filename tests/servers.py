"""Callsite server processes for the tests: one way to start them, for every suite.

The live, browser, scale-out and fault tests all run ``python -m callsite.server`` (what
``manage.py serve`` runs in production), or plain ``daphne``, as a subprocess on a free
loopback port with an environment of their own, and read its output when something fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "callsite.asgi:application"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (``manage.py serve`` takes a
    first port and the ones after it)."""
    for _ in range(50):
        first = free_port()
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


def wait_listening(
    port: int, process: subprocess.Popen[bytes], log: Path, within: float = 30
) -> None:
    """Wait until something listens on ``port``; fail with ``log`` if ``process`` exits."""
    deadline = time.monotonic() + within
    while not listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listened on {port} in {within:.0f} s:\n{log.read_text()}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


class DaphneServer:
    """One server process on a loopback port, serving this checkout."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.process = process
        self.log = log
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (it drains) or SIGKILL, then wait; a server that will not stop is killed."""
        if self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    environment: Mapping[str, str],
    *,
    log_dir: Path,
    module: str = "callsite.server",
    options: Sequence[str] = (),
    within: float = 30,
    port: int | None = None,
) -> DaphneServer:
    """Start a server with the test settings and ``environment``; return once it listens.

    ``module`` is ``callsite.server`` (Daphne with Callsite's drain and limits) or ``daphne``;
    ``options`` are more of their command-line options (``--proxy-headers`` behind nginx).
    ``port`` is a free port chosen beforehand, when the environment must name it.
    Raises ``RuntimeError`` with the server's output if it exits or does not listen in time.
    """
    port = port or free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONUNBUFFERED": "1",
        # These servers share two cores with browsers and the test runner: a loop running
        # 50 ms late there is the suite's doing, not a full worker, and some tests stream
        # flat out. Shedding is tested at its own limits (tests/callsite/test_overload.py).
        "CALLSITE_SHED_LOOP_LAG_MS": "250",
        "CALLSITE_SHED_LOOP_BUSY_PERCENT": "0",
        **environment,
    }
    log = log_dir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                *options,
                APPLICATION,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = DaphneServer(port, process, log)
    try:
        wait_listening(port, process, log, within)
    except RuntimeError as error:
        process.kill()
        raise RuntimeError(f"{module} {error}") from None
    return server


class Stalls:
    """Stop (SIGSTOP) and continue a process in a loop, in a thread, while in the block: its
    event loop runs late, as a worker's does when it holds more calls than it can carry."""

    def __init__(self, pid: int, stopped: float = 0.3, running: float = 0.03) -> None:
        self.pid, self.stopped, self.running = pid, stopped, running
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            os.kill(self.pid, signal.SIGSTOP)
            time.sleep(self.stopped)
            os.kill(self.pid, signal.SIGCONT)
            time.sleep(self.running)

    def __enter__(self) -> Stalls:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        os.kill(self.pid, signal.SIGCONT)


class CallbackRecorder:
    """An HTTP server on 127.0.0.1 that takes Call Automation callbacks and keeps their JSON
    bodies (for a simulator playing to a WebSocket stand-in that cannot take them)."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        self.bodies: list[Any] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.bodies.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"applied": 1, "duplicates": 0}')

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/acs/callbacks/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
