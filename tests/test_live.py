"""End to end over real sockets: the simulator streams to a real Daphne process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from subprocess import CompletedProcess

import pytest
from django.conf import settings

from streaming.models import Call, CallState, Utterance
from streaming.simulator import DEMO_DIR, load_script, simulate_calls, stream_call
from tests.conftest import ROOT, DaphneServer

pytestmark = pytest.mark.live_server

SHORT = load_script(DEMO_DIR / "short_call.toml")


def _ended(connection_id: str, timeout: float = 10) -> bool:
    """The server ends a call when its stream closes, a moment after the client has gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Call.objects.filter(connection_id=connection_id, state=CallState.ENDED).exists():
            return True
        time.sleep(0.05)
    return False


def _texts(call: Call) -> list[str]:
    return list(call.utterances.order_by("offset_ticks").values_list("text", flat=True))


def test_concurrent_simulated_calls_are_stored_exactly(daphne_server: DaphneServer) -> None:
    """Three concurrent calls: every final stored once, with its speaker; every call ended."""
    results = asyncio.run(
        simulate_calls(
            f"{daphne_server.ws_url}/ws/acs/",
            script=SHORT,
            calls=3,
            token=settings.CALLSITE_ACS_SHARED_SECRET,
            speed=10,
            stagger=0.1,
        )
    )
    assert len(results) == 3
    expected = [turn.text for turn in SHORT.turns]
    for result in results:
        assert result.finals_sent == len(expected)
        # The server handles the last packets after the client has gone; the call ends
        # once they are done.
        assert _ended(result.call_connection_id)
        call = Call.objects.get(connection_id=result.call_connection_id)
        assert _texts(call) == expected
        roles = list(
            call.utterances.order_by("offset_ticks").values_list("participant__role", flat=True)
        )
        assert roles == ["agent", "customer", "agent"]
    assert Utterance.objects.count() == 3 * len(expected)


def test_a_replayed_call_stores_nothing_twice(daphne_server: DaphneServer) -> None:
    """ACS reconnecting and replaying the whole stream leaves one copy of each final."""
    url = f"{daphne_server.ws_url}/ws/acs/"
    for _ in range(2):
        asyncio.run(
            stream_call(
                url,
                call_connection_id="replayed-call",
                script=SHORT,
                token=settings.CALLSITE_ACS_SHARED_SECRET,
                speed=0,
                correlation_id="corr-replay",
            )
        )
        assert _ended("replayed-call")
    call = Call.objects.get(connection_id="replayed-call")
    assert _texts(call) == [turn.text for turn in SHORT.turns]


def _simulate_command(server: DaphneServer, token: str, *extra: str) -> CompletedProcess[str]:
    """Run ``manage.py simulate_call`` with the short script, as a user would."""
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "simulate_call",
            "--url",
            f"{server.ws_url}/ws/acs/",
            "--token",
            token,
            "--script",
            str(DEMO_DIR / "short_call.toml"),
            "--speed",
            "0",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )


def test_simulate_call_command_against_the_server(daphne_server: DaphneServer) -> None:
    """``manage.py simulate_call`` streams the script and reports what it sent."""
    completed = _simulate_command(
        daphne_server, settings.CALLSITE_ACS_SHARED_SECRET, "--calls", "2"
    )
    assert completed.returncode == 0, completed.stderr
    assert "done" in completed.stdout
    assert Call.objects.count() == 2
    for connection_id in Call.objects.values_list("connection_id", flat=True):
        assert connection_id is not None
        assert _ended(connection_id)
    assert Utterance.objects.count() == 2 * len(SHORT.turns)


def test_simulate_call_reports_a_refused_token(daphne_server: DaphneServer) -> None:
    """A wrong token is a clear error from the command, not a traceback."""
    completed = _simulate_command(daphne_server, "wrong-token-value")
    assert completed.returncode != 0
    assert "403" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not Call.objects.exists()
