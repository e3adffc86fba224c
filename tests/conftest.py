"""Shared fixtures: users, and a real Daphne process serving the test database."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
from tests.servers import DaphneServer, start_server
from tests.standins.call_automation import call_automation_standin  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _close_worker_thread_connections(
    django_db_setup: Any, django_db_blocker: Any
) -> Iterator[None]:
    """Close connections that ``database_sync_to_async`` opened in asgiref's worker thread.

    They are persistent (``CONN_MAX_AGE``), and PostgreSQL refuses to drop the test database
    while any session is still attached to it.
    """
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    with django_db_blocker.unblock():
        asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture
def supervisor(db: Any) -> User:
    """A supervisor who sees every call: in the Supervisors and Staff groups (both created
    by the dashboard app after migrate). Team-scoped supervisors are in test_teams.py."""
    user = User.objects.create_user("sup", password="sup-password-123")
    user.groups.add(Group.objects.get(name=SUPERVISORS_GROUP), Group.objects.get(name=STAFF_GROUP))
    return user


def _database_url() -> str:
    """A URL for the test database that the pytest process has created."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(conf['NAME']).resolve()}"
    auth = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    return f"postgres://{auth}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"


@pytest.fixture
def daphne_factory(transactional_db: Any, tmp_path: Path) -> Iterator[Callable[..., DaphneServer]]:
    """Start server processes (``tests.servers.start_server``) against the test database.

    They share the test database, so the test must use ``transactional_db``: data a test
    creates is committed and visible to the server, and flushed afterwards. Keyword
    arguments are environment variables for the server (``CALLSITE_RECOGNIZER="sphinx"``);
    ``module="daphne"`` runs plain Daphne, as ``daphne callsite.asgi:application``;
    ``options`` are more of the server's options; ``port`` a free port chosen beforehand.
    """
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in ("", ":memory:"):
        pytest.fail("live-server tests need a file-backed SQLite test database")
    started: list[DaphneServer] = []

    def start(
        *,
        module: str = "callsite.server",
        options: tuple[str, ...] = (),
        port: int | None = None,
        **environment: str,
    ) -> DaphneServer:
        try:
            server = start_server(
                {"DATABASE_URL": _database_url(), **environment},
                log_dir=tmp_path,
                module=module,
                options=options,
                port=port,
            )
        except RuntimeError as error:
            pytest.fail(str(error))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def daphne_server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """One Daphne process with the test settings (recognizer: the scripted fake)."""
    return daphne_factory()


@pytest.fixture
def doctored_model(tmp_path: Path) -> Path:
    """A copy of the packaged model with one byte of its weights changed."""
    from streaming.recognizers.whisper import packaged_model_dir

    packaged = packaged_model_dir()
    assert packaged is not None
    copy = tmp_path / "doctored-model"
    shutil.copytree(packaged, copy)
    weights = copy / "model.bin"
    with weights.open("r+b") as data:
        data.seek(weights.stat().st_size // 2)
        byte = data.read(1)
        data.seek(-1, os.SEEK_CUR)
        data.write(bytes([byte[0] ^ 0xFF]))
    return copy


@pytest.fixture(autouse=True)
async def _fresh_channel_layer() -> Any:
    """Empty the channel layer around each test so groups and messages never leak."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    yield
    if layer is not None and hasattr(layer, "flush"):
        await layer.flush()


@pytest.fixture(autouse=True)
def _fresh_recognizer() -> Iterator[None]:
    """Each test's recognizer is built from its own settings (the instance is process-wide,
    so a test that sets CALLSITE_FAKE_RECOGNIZER's options would get an earlier test's)."""
    from streaming.recognizers import reset_recognizer

    reset_recognizer()
    yield
    reset_recognizer()


@pytest.fixture(autouse=True)
def _fresh_live_calls() -> Iterator[None]:
    """Each test's alert rules and live calls are its own (the registry is process-wide)."""
    from streaming.live.registry import LIVE

    LIVE.rules_changed()
    yield
    LIVE.calls.clear()


@dataclass
class AcsServer:
    """A server whose ACS is the Call Automation stand-in, sending callbacks back to it."""

    server: DaphneServer
    standin: Any  # tests.standins.call_automation.CallAutomationStandIn

    def session(self, user: User, password: str = "sup-password-123") -> Any:
        """A logged-in ``requests`` session that sends the CSRF token as a browser does."""
        import requests

        session = requests.Session()
        session.trust_env = False  # loopback: no proxy
        url = f"{self.server.http_url}/accounts/login/"
        session.get(url, timeout=10)
        token = session.cookies["csrftoken"]
        answer = session.post(
            url,
            data={"username": user.username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": url},
            timeout=10,
        )
        answer.raise_for_status()
        session.headers.update(
            {"X-CSRFToken": session.cookies.get("csrftoken") or "", "Accept": "application/json"}
        )
        return session


@pytest.fixture
def acs_server(
    daphne_factory: Callable[..., DaphneServer],
    call_automation_standin: Any,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> AcsServer:
    """A server answering calls and taking supervisors' actions through the stand-in, which
    POSTs each callback to it as it would happen. Bidirectional audio is on; announcements
    come from ``tmp_path/announcements``."""
    from tests.servers import free_port

    call_automation_standin.book.auto_deliver = True
    port = free_port()
    (tmp_path / "announcements").mkdir()
    server = daphne_factory(
        port=port,
        ACS_CONNECTION_STRING=call_automation_standin.connection_string,
        CALLSITE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        REQUESTS_CA_BUNDLE=call_automation_standin.ca_path,
        no_proxy="127.0.0.1,localhost",
        CALLSITE_ANSWER_CALLS="all",
        CALLSITE_MEDIA_STREAMING="1",
        CALLSITE_BIDIRECTIONAL_AUDIO="1",
        CALLSITE_ACS_CALLER_ID="+15550000000",
        CALLSITE_ANNOUNCEMENTS_DIR=str(tmp_path / "announcements"),
    )
    return AcsServer(server, call_automation_standin)
