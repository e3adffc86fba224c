"""End to end over real sockets: the simulator streams to a real Daphne process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from subprocess import CompletedProcess

import pytest
from django.conf import settings

from simulator import (
    DEMO_DIR,
    Script,
    Speaker,
    Turn,
    load_script,
    plan_packets,
    simulate_calls,
    stream_call,
)
from streaming.models import Call, CallState, Utterance
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


# Two long, gapless turns (about 6.5 s and 6 s of speech), then a real 8 s silence.
LONG_TURNS = Script(
    title="Long turns",
    locale="en-US",
    speakers=(Speaker("agent", "8:acs:agent-long"), Speaker("customer", "4:+15551239999")),
    turns=(
        Turn(
            "agent",
            "Thank you for calling, let me explain the three options on your account, starting "
            "with the monthly plan and then the yearly plan",
            pause=0.6,
            wpm=200,
        ),
        Turn(
            "customer",
            "I see, and does the yearly plan include the international calls I make every "
            "week to my family abroad",
            pause=0.6,
            wpm=190,
        ),
        Turn("agent", "Yes it does.", pause=8.0, wpm=180),
    ),
)


def test_speech_in_progress_is_talk_and_only_real_silence_is_dead_air(
    daphne_server: DaphneServer,
) -> None:
    """Turns longer than the dead-air limit raise no alert while they are spoken (their
    interim results are talk); the 8 s silence raises one, and silence is counted right."""
    from streaming.models import Alert, AlertRule, CallAnalytics

    AlertRule.objects.filter(kind="dead_air").delete()
    AlertRule.objects.create(name="Dead air over 5 s", kind="dead_air", seconds=5)
    plan = plan_packets(LONG_TURNS, call_connection_id="long-turns", correlation_id="c")
    finals = [json.loads(p.payload)["transcriptionData"] for p in plan if p.final]
    speech_ms = sum(f["duration"] for f in finals) / 10_000
    # The silence starts where the second turn's speech ends.
    quiet_from_ms = (finals[1]["offset"] + finals[1]["duration"]) / 10_000
    assert all(f["duration"] > 5 * 10_000_000 for f in finals[:2])
    asyncio.run(
        stream_call(
            f"{daphne_server.ws_url}/ws/acs/",
            call_connection_id="long-turns",
            script=LONG_TURNS,
            token=settings.CALLSITE_ACS_SHARED_SECRET,
            speed=1,
        )
    )
    assert _ended("long-turns")
    call = Call.objects.get(connection_id="long-turns")
    deadline = time.monotonic() + 10
    while not CallAnalytics.objects.filter(call=call, final=True).exists():
        assert time.monotonic() < deadline, "the final figures were never stored"
        time.sleep(0.1)
    alerts = list(Alert.objects.filter(call=call, kind="dead_air"))
    assert len(alerts) == 1, [(a.at_ms, a.message) for a in alerts]
    # Fired 5 s into the real silence, not during a turn.
    assert abs(alerts[0].at_ms - (quiet_from_ms + 5000)) <= 600, alerts[0].at_ms
    figures = CallAnalytics.objects.get(call=call)
    assert call.ended_at is not None
    assert call.started_at is not None
    assert figures.duration_ms == pytest.approx(
        (call.ended_at - call.started_at).total_seconds() * 1000, abs=20
    )
    # Silence is the call less its speech (pauses under the bridging limit aside).
    assert figures.silence_ms >= 8000
    assert figures.silence_ms == pytest.approx(figures.duration_ms - speech_ms, abs=1500)
