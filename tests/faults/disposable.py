"""Redis and PostgreSQL servers of the tests' own, to kill and restart at will.

Each runs from the Debian binaries (``redis-server``; ``initdb``/``pg_ctl`` under
``/usr/lib/postgresql/<version>/bin``) on a free loopback port with its data in a temporary
folder, so the fault tests never touch the machine's shared servers. PostgreSQL refuses to
run as root: as root its commands run as the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.servers import free_port


def wait_for_port(port: int, *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                message = f"{what} did not listen on {port} within {within:.0f} s"
                raise RuntimeError(message) from None
            time.sleep(0.05)


def redis_server_path() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries installed (``initdb`` and ``pg_ctl``)."""

    def version(path: str) -> int:
        name = Path(path).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class RedisProcess:
    """``redis-server`` on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        binary = redis_server_path()
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--logfile", str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.port, within=10, what="redis-server")

    def kill(self) -> None:
        """Die at once, as a crashed or restarted Redis does: every connection drops."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()


class PostgresProcess:
    """A PostgreSQL cluster made with ``initdb`` in a temporary folder, on a free port."""

    def __init__(self) -> None:
        bindir = postgres_bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL's server binaries are not installed (initdb, pg_ctl)")
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        # Under /tmp rather than pytest's folder: the postgres user must be able to reach it.
        self.home = Path(tempfile.mkdtemp(prefix="callsite-pg-"))
        self.data = self.home / "data"
        self.logfile = self.home / "postgres.log"
        self.port = free_port()
        if self.as_root:
            shutil.chown(self.home, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            output = result.stderr or result.stdout
            raise RuntimeError(f"{tool} failed ({result.returncode}): {output}")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.home}"
            " -c fsync=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (a clean restart); ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, *, mode: str = "fast", down_for: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def running(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def execute(self, sql: str, database: str = "postgres") -> None:
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)

    def query(self, sql: str, database: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url(database)) as conn:
            return list(conn.execute(sql).fetchall())

    def destroy(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
