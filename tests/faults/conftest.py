"""Fixtures of the fault tests: their own PostgreSQL and Redis, and Callsite servers on them.

The cluster is made once per run; its ``callsite_template`` database is migrated once and
holds a supervisor with a logged-in session. Each test gets a fresh database copied from it,
its own ``redis-server``, and ``python -m callsite.server`` processes (what ``manage.py
serve`` runs in production) pointed at both, so it can kill and restart any of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.disposable import (
    PostgresProcess,
    RedisProcess,
    postgres_bin_dir,
    redis_server_path,
)
from tests.servers import DaphneServer, start_server
from tests.services import require

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "callsite_template"

SUPERVISOR_SETUP = """
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
user = User.objects.create_user("sup", password="sup-password-123")
user.groups.add(Group.objects.get(name=SUPERVISORS_GROUP), Group.objects.get(name=STAFF_GROUP))
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
print("SESSION=" + session.session_key)
"""


@dataclass
class Cluster:
    pg: PostgresProcess
    session_key: str

    @property
    def cookie(self) -> str:
        return f"sessionid={self.session_key}"


def _manage(database_url: str, *args: str) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    require(postgres_bin_dir() is not None, "PostgreSQL's server binaries (initdb, pg_ctl)")
    pg = PostgresProcess()
    try:
        pg.start()
        pg.execute(f"CREATE DATABASE {TEMPLATE}")
        _manage(pg.url(TEMPLATE), "migrate", "--noinput", "-v", "0")
        out = _manage(pg.url(TEMPLATE), "shell", "-c", SUPERVISOR_SETUP)
        session_key = out.split("SESSION=", 1)[1].strip()
        yield Cluster(pg, session_key)
    finally:
        pg.destroy()


@pytest.fixture
def database(cluster: Cluster) -> Iterator[str]:
    """A fresh copy of the migrated template: its name."""
    if not cluster.pg.running():  # a test that failed while it was down
        cluster.pg.start()
    name = f"faults_{uuid.uuid4().hex[:10]}"
    cluster.pg.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield name
    if not cluster.pg.running():
        cluster.pg.start()
    cluster.pg.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    require(redis_server_path() is not None, "redis-server is installed")
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def server_factory(
    cluster: Cluster, database: str, redis: RedisProcess, tmp_path: Path
) -> Iterator[Callable[..., DaphneServer]]:
    """``python -m callsite.server`` processes on this test's database and Redis."""
    started: list[DaphneServer] = []
    prefix = f"faults-{uuid.uuid4().hex[:8]}"

    def start(**environment: str) -> DaphneServer:
        env = {
            "DATABASE_URL": cluster.pg.url(database),
            "REDIS_URL": redis.url,
            "CALLSITE_CHANNEL_PREFIX": prefix,
            **environment,
        }
        try:
            server = start_server(env, log_dir=tmp_path)
        except RuntimeError as error:
            pytest.fail(str(error))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(kill=True)


ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record what a fault test measured in ``test-artifacts/faults.jsonl`` (one JSON line per
    test: the fault, finals sent, stored, lost and doubled...), the source of the figures in
    docs/reliability.md."""

    def record(**figures: object) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        line = {"test": request.node.name, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **figures}
        with (ARTIFACTS / "faults.jsonl").open("a") as out:
            out.write(json.dumps(line) + "\n")

    return record


def metric(server: DaphneServer, name: str) -> float:
    """A counter from the server's ``/metrics`` (loopback clients need no token)."""
    import urllib.request

    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def wait_until(condition: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        time.sleep(0.1)
