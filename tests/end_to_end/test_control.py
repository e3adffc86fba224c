"""Calls Callsite joins, and announcements it plays, over real sockets.

A real server takes a supervisor's request over HTTP (session, CSRF), asks the Call
Automation stand-in through the SDK, and gets the stand-in's callbacks over HTTP; the
simulator then plays ACS's part on the WebSocket URL ACS was given.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from django.contrib.auth.models import Permission, User

from simulator import DEMO_DIR, audio_script_from_wavs, load_script, stream_call
from simulator.wire import OUTBOUND_AUDIO, OUTBOUND_STOP, read_outbound
from streaming.models import ActionStatus, Call, CallState, ControlAction, Utterance
from tests.conftest import AcsServer

pytestmark = pytest.mark.live_server

CUSTOMER = "4:+15555550123"
AGENT = "8:acs:6d889502-3d7a-41a8-befa-d21fd80e8767_00000027-4651-bfa5-2c8a-084822002c21"


def _wait(what: str, check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def _token(url: str) -> str:
    """The secret in the URL ACS was given (the simulator sets its own ``?token=``)."""
    return parse_qs(urlsplit(url).query)["token"][0]


@pytest.fixture
def boss(supervisor: User) -> User:
    supervisor.user_permissions.add(
        *Permission.objects.filter(codename__in=["control_call", "place_calls"])
    )
    return supervisor


def _connect_room(acs_server: AcsServer, boss: User, room_id: str) -> tuple[Call, str]:
    """Ask for the room call as a supervisor does; the call once connected, and the
    WebSocket URL ACS was told to stream to."""
    acs_server.standin.call_connection_id = f"room-{room_id}"
    acs_server.standin.book.first_participants = [CUSTOMER, AGENT]
    session = acs_server.session(boss)
    answer = session.post(
        f"{acs_server.server.http_url}/calls/new/room/", data={"room_id": room_id}, timeout=20
    )
    assert answer.status_code == 200, answer.text
    call_id = answer.json()["call_id"]
    (connect,) = [r for r in acs_server.standin.requests if r.route == "connect"]
    assert connect.body["callLocator"] == {"roomId": room_id, "kind": "roomCallLocator"}
    call = _wait(
        "CallConnected and ParticipantsUpdated",
        lambda: Call.objects.filter(
            pk=call_id, state=CallState.CONNECTED, participants__raw_id=AGENT
        ).first(),
    )
    return call, connect.body["mediaStreamingOptions"]["transportUrl"]


def test_a_room_call_streams_into_callsite_and_is_transcribed(
    acs_server: AcsServer, boss: User
) -> None:
    """Connected by room id, the call streams to the URL ACS was given and its finals are
    stored on it, as for an answered call."""
    call, transport_url = _connect_room(acs_server, boss, "99466898241024408")
    assert transport_url.startswith(f"{acs_server.server.ws_url}/ws/acs/?token=")
    assert call.participants.count() == 2
    script = load_script(DEMO_DIR / "short_call.toml")
    result = asyncio.run(
        stream_call(
            transport_url,
            call_connection_id=str(call.connection_id),
            script=script,
            token=_token(transport_url),
            speed=0,
        )
    )
    assert result.finals_sent == len(script.turns)
    stored = _wait(
        "the finals stored",
        lambda: Utterance.objects.filter(call=call).count() == len(script.turns),
    )
    assert stored
    texts = list(
        Utterance.objects.filter(call=call).order_by("offset_ticks").values_list("text", flat=True)
    )
    assert texts == [turn.text for turn in script.turns]
    call.refresh_from_db()
    assert (call.origin, call.room_id, call.managed) == ("room", "99466898241024408", True)
    assert call.bidirectional


def _wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def test_an_announcement_arrives_as_outbound_frames_and_stop_audio_stops_it(
    acs_server: AcsServer, boss: User, tmp_path: Path
) -> None:
    """Over the bidirectional media socket the simulator reads well-formed AudioData frames
    of the stream's format (640 bytes of 16 kHz PCM every 20 ms): the chime whole, then a
    long notice until the supervisor stops it, after which only StopAudio comes."""
    notice = _wav(tmp_path / "announcements" / "recorded-notice.wav", 8.0)
    call, transport_url = _connect_room(acs_server, boss, "room-with-a-notice")
    customer = _wav(tmp_path / "customer.wav", 9.0)
    script = audio_script_from_wavs([customer], raw_ids=[CUSTOMER])
    received: list[tuple[float, str, bytes | None]] = []

    def on_message(message: str | bytes) -> None:
        kind, pcm = read_outbound(message)  # raises on a malformed frame
        received.append((time.monotonic(), kind, pcm))

    session = acs_server.session(boss)
    actions_url = f"{acs_server.server.http_url}/calls/{call.pk}/actions"

    async def run() -> None:
        streaming = asyncio.create_task(
            stream_call(
                transport_url,
                call_connection_id=str(call.connection_id),
                script=script,
                token=_token(transport_url),
                speed=1.0,
                on_message=on_message,
            )
        )
        await asyncio.sleep(1.0)  # AudioMetadata is in: the socket listens for announcements
        page = await asyncio.to_thread(
            session.get, f"{acs_server.server.http_url}/calls/{call.pk}/"
        )
        assert 'name="clip"' in page.text
        assert "recorded-notice" in page.text
        chime = await asyncio.to_thread(
            session.post, f"{actions_url}/announce/", data={"clip": "chime"}, timeout=10
        )
        assert chime.status_code == 200, chime.text
        await asyncio.sleep(2.0)  # the chime is 1.2 s
        long = await asyncio.to_thread(
            session.post, f"{actions_url}/announce/", data={"clip": "recorded-notice"}, timeout=10
        )
        assert long.status_code == 200, long.text
        await asyncio.sleep(1.0)
        stop = await asyncio.to_thread(
            session.post, f"{actions_url}/stop-announcement/", data={}, timeout=10
        )
        assert stop.status_code == 200, stop.text
        await asyncio.sleep(1.0)
        streaming.cancel()

    asyncio.run(run())
    frames = [pcm for _, kind, pcm in received if kind == OUTBOUND_AUDIO]
    assert frames
    assert all(pcm is not None and len(pcm) == 640 for pcm in frames)
    stops = [i for i, (_, kind, _) in enumerate(received) if kind == OUTBOUND_STOP]
    assert len(stops) == 1
    assert all(kind == OUTBOUND_STOP for _, kind, _ in received[stops[0] :]), "audio after stop"
    # The chime (60 frames) and about a second of the notice, not its eight.
    assert 60 + 25 <= len(frames) <= 60 + 100
    first = received[0][0]
    chime_end = received[59][0]
    assert 0.9 <= chime_end - first <= 2.5, "frames come at real-time pace"
    announcements = {
        a.request["clip"]: a.status
        for a in ControlAction.objects.filter(call=call, action="announce")
    }
    assert announcements == {
        "chime": ActionStatus.SUCCEEDED,
        "recorded-notice": ActionStatus.CANCELLED,
    }
    assert notice.exists()
