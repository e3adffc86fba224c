"""SIGTERM ends a server that has carried calls, within its drain time.

A database thread that sends a live event back into a stopped event loop once kept plain
``daphne callsite.asgi:application`` from ever exiting (streaming/db.py says why it cannot
now). Each test loads the server with concurrent transcription calls, an audio call through
the recognizer and a supervisor's page, then stops it mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from simulator import DEMO_DIR
from streaming.models import Call, Utterance
from tests.callsite.test_demo import _alive, _descendants
from tests.conftest import ROOT, DaphneServer, _database_url
from tests.factories import session_cookie
from tests.servers import consecutive_free_ports, wait_listening
from tests.services import REDIS_TEST_URL

pytestmark = pytest.mark.live_server

TRANSCRIPT = DEMO_DIR / "billing_call.toml"
AUDIO = DEMO_DIR / "audio" / "two_speaker_call.toml"


def _load(url: str, cookie: str) -> tuple[list[subprocess.Popen[bytes]], threading.Event]:
    """Calls (simulator processes) and a supervisor's page (a thread) against ``url``."""
    running = threading.Event()

    async def page() -> None:
        with contextlib.suppress(ConnectionClosed, OSError):  # the server stops under it
            async with connect(
                f"{url.replace('http', 'ws')}/ws/dashboard/",
                additional_headers={"Cookie": cookie},
                origin="http://localhost",  # type: ignore[arg-type]
                proxy=None,
            ) as wall:
                async for _message in wall:
                    running.set()

    threading.Thread(target=asyncio.run, args=(page(),), daemon=True).start()
    acs = f"{url.replace('http', 'ws')}/ws/acs/"
    simulators = [
        subprocess.Popen(
            [
                *(sys.executable, "manage.py", "simulate_call", "--url", acs, "--repeat", "0"),
                *("--script", str(script), "--calls", str(calls), "--speed", speed),
            ],
            cwd=ROOT,
            env={**os.environ, "CALLSITE_ACS_SHARED_SECRET": settings.CALLSITE_ACS_SHARED_SECRET},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for script, calls, speed in ((TRANSCRIPT, 6, "4"), (AUDIO, 2, "1"))
    ]
    return simulators, running


def _carrying_calls(within: float = 30) -> None:
    """Wait until the server has stored finals of the load, so it is mid-call when stopped."""
    deadline = time.monotonic() + within
    while Utterance.objects.count() < 6:
        assert time.monotonic() < deadline, "the server never carried the calls"
        time.sleep(0.1)


def _stops_within(
    process: subprocess.Popen[bytes],
    seconds: float,
    log: Callable[[], str],
    simulators: list[subprocess.Popen[bytes]],
) -> int:
    """Cut the calls (their streams are being finished as the signal lands), then SIGTERM."""
    for simulator in simulators:
        simulator.kill()
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {seconds:.0f} s after SIGTERM:\n{log()[-3000:]}")
    assert time.monotonic() - started <= seconds
    return code


def test_plain_daphne_exits_after_sigterm_mid_call(
    daphne_factory: Callable[..., DaphneServer], supervisor: User
) -> None:
    """``daphne callsite.asgi:application`` (no drain of its own) exits promptly on SIGTERM."""
    server = daphne_factory(module="daphne", CALLSITE_RECOGNIZER="fake")
    simulators, page_live = _load(server.http_url, session_cookie(supervisor))
    _carrying_calls()
    assert page_live.wait(10)
    _stops_within(server.process, 15, server.output, simulators)
    assert "Traceback" not in server.output()


def test_manage_py_serve_drains_and_exits_after_sigterm_mid_call(
    transactional_db: Any, supervisor: User, tmp_path: Path
) -> None:
    """``manage.py serve``: every worker drains and exits within the drain time; the finals
    sent before the stop are stored, once."""
    redis = bool(os.environ.get("REDIS_URL"))
    workers = 2 if redis else 1  # more than one worker needs Redis (a system check says so)
    port = consecutive_free_ports(workers)
    drain = 5
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "CALLSITE_DRAIN_SECONDS": str(drain),
        "CALLSITE_RECOGNIZER": "fake",
        "PYTHONUNBUFFERED": "1",
    }
    if redis:
        env["REDIS_URL"] = REDIS_TEST_URL
        env["CALLSITE_CHANNEL_PREFIX"] = f"test-stop-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [
                *(sys.executable, "manage.py", "serve", "--workers", str(workers)),
                *("--port", str(port), "--grace", str(drain + 5)),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, serve, log)
        family = _descendants(serve.pid)
        simulators, page_live = _load(f"http://127.0.0.1:{port}", session_cookie(supervisor))
        _carrying_calls()
        assert page_live.wait(10)
        code = _stops_within(serve, drain + 5, log.read_text, simulators)
        assert code == 0, log.read_text()
        assert not [pid for pid in family if _alive(pid)], "workers outlived serve"
        assert "drain: every connection finished" in log.read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    # What was stored before the stop is stored once: no phrase twice on any call.
    for call in Call.objects.all():
        texts = list(call.utterances.values_list("text", flat=True))
        assert len(texts) == len(set(texts)), texts
