"""The supervisor socket: who may connect, the snapshot, then live deltas."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.utils import timezone

from callsite.asgi import application
from streaming import services
from streaming.acs.packets import Word
from streaming.models import Call
from tests.factories import make_call, session_cookie, team_supervisor
from tests.helpers import acs_socket, next_event, transcription_data

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def _session_cookie(user: User) -> bytes:
    return session_cookie(user).encode()


async def _dashboard(
    path: str, user: User | None, origin: bytes | None = b"http://localhost"
) -> WebsocketCommunicator:
    headers = []
    if user is not None:
        headers.append((b"cookie", await _session_cookie(user)))
    if origin is not None:
        headers.append((b"origin", origin))
    return WebsocketCommunicator(application, path, headers=headers)


@database_sync_to_async
def _call_with_caption(connection_id: str, text: str) -> int:
    call = services.call_stream_opened(connection_id=connection_id)
    services.utterance_record(
        call_id=call["id"],
        participant_raw_id="8:acs:agent-0001",
        text=text,
        confidence=0.9,
        offset_ticks=1_000,
        duration_ticks=5_000_000,
        words=[Word(text="hello", offset=1_000, duration=5_000_000)],
        source="acs",
    )
    return call["id"]


async def test_anonymous_users_are_refused() -> None:
    """Without a session the socket is closed before it is accepted."""
    communicator = await _dashboard("/ws/dashboard/", None)
    connected, _ = await communicator.connect()
    assert not connected


async def test_users_without_permission_are_refused(db: Any) -> None:
    """A logged-in user who is not a supervisor may not watch calls."""
    user = await database_sync_to_async(User.objects.create_user)("visitor", password="x-123456")
    communicator = await _dashboard("/ws/dashboard/", user)
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.parametrize("origin", [b"http://evil.example", None])
async def test_foreign_or_missing_origin_is_refused(supervisor: User, origin: bytes | None) -> None:
    """Cross-site WebSocket hijacking: only origins in ALLOWED_HOSTS may open the socket."""
    communicator = await _dashboard("/ws/dashboard/", supervisor, origin=origin)
    connected, _ = await communicator.connect()
    assert not connected


async def test_unknown_call_is_refused(supervisor: User) -> None:
    """A call page socket for a call that does not exist is closed."""
    communicator = await _dashboard("/ws/dashboard/calls/999999/", supervisor)
    connected, _ = await communicator.connect()
    assert not connected


async def test_call_wall_gets_snapshot_then_updates(supervisor: User) -> None:
    """The wall starts from the database, then follows calls as they open and close."""
    await _call_with_caption("existing-call", "Earlier words.")
    wall = await _dashboard("/ws/dashboard/", supervisor)
    assert (await wall.connect())[0]
    snapshot = await next_event(wall)
    assert snapshot["type"] == "snapshot"
    assert [c["connection_id"] for c in snapshot["calls"]] == ["existing-call"]

    acs = acs_socket("new-call")
    assert (await acs.connect())[0]
    update = await next_event(wall)
    assert update["type"] == "call.updated"
    assert update["call"]["connection_id"] == "new-call"
    assert update["call"]["state"] == "connected"
    # A call the wall had not seen: its teams follow, for the wall's team filter.
    teams = await next_event(wall)
    assert teams == {"type": "call.teams", "call_id": update["call"]["id"], "teams": []}
    await acs.disconnect()
    ended = await next_event(wall)
    assert ended["call"]["connection_id"] == "new-call"
    assert ended["call"]["state"] == "ended"
    await wall.disconnect()


@database_sync_to_async
def _triage_calls() -> tuple[int, int, int]:
    """A live call with two alerts on a team's number, a call ended a minute ago and one
    ended an hour ago."""
    now = timezone.now()
    live = make_call("triage-live", people=("4:+15550001111",), alerts=["dead_air", "keyword"])
    recent = make_call(
        "triage-recent", started=now - timedelta(minutes=3), length=timedelta(minutes=2)
    )
    old = make_call("triage-old", started=now - timedelta(hours=2), length=timedelta(hours=1))
    return live, recent, old


async def test_wall_snapshot_keeps_latest_alert_and_teams_and_drops_long_ended_calls(
    supervisor: User, settings: Any
) -> None:
    """What a reloaded wall needs comes in its snapshot: each call's latest alert (its words,
    not only a count) and teams, the teams to filter by; calls ended longer ago than
    ``CALLSITE_WALL_ENDED_SECONDS`` are left to history."""
    settings.CALLSITE_WALL_ENDED_SECONDS = 300
    await database_sync_to_async(team_supervisor)("billing", "+15550001111")
    live, recent, old = await _triage_calls()
    wall = await _dashboard("/ws/dashboard/", supervisor)
    assert (await wall.connect())[0]
    snapshot = await next_event(wall)
    await wall.disconnect()
    assert {c["id"] for c in snapshot["calls"]} == {live, recent}
    summary = snapshot["summaries"][str(live)]
    assert summary["alerts"] == 2
    assert summary["latest_alert"]["message"] == "keyword alert 1"
    assert summary["latest_alert"]["kind"] == "keyword"
    assert summary["teams"] == ["billing's team"]
    assert snapshot["summaries"][str(recent)]["latest_alert"] is None
    assert snapshot["teams"] == ["billing's team"]
    assert snapshot["ended_keep_seconds"] == 300
    assert old not in {c["id"] for c in snapshot["calls"]}


async def test_call_page_gets_captions_snapshot_then_interim_and_final(supervisor: User) -> None:
    """A call page sees stored finals first, then live interim and final captions."""
    call_id = await _call_with_caption("live-call", "Earlier words.")
    page = await _dashboard(f"/ws/dashboard/calls/{call_id}/", supervisor)
    assert (await page.connect())[0]
    snapshot = await next_event(page)
    assert snapshot["call"]["connection_id"] == "live-call"
    assert [c["text"] for c in snapshot["captions"]] == ["Earlier words."]
    assert snapshot["captions"][0]["participant"]["role"] == "agent"

    acs = acs_socket("live-call")
    assert (await acs.connect())[0]
    assert (await next_event(page))["type"] == "call.updated"

    await acs.send_to(
        text_data=transcription_data("can you", status="Intermediate", offset=20_000_000)
    )
    messages = [await next_event(page)]
    if messages[0]["type"] == "call.participant":  # a new participant joined the call
        messages.append(await next_event(page))
    interim = messages[-1]
    assert interim["type"] == "caption.interim"
    assert interim["caption"]["text"] == "can you"
    assert interim["caption"]["participant"]["raw_id"] == "4:+15555550123"

    await acs.send_to(text_data=transcription_data("Can you hear me?", offset=20_000_000))
    final = await next_event(page)
    assert final["type"] == "caption.final"
    assert final["caption"]["text"] == "Can you hear me?"
    assert final["caption"]["utterance_id"] is not None
    await acs.disconnect()
    await page.disconnect()


async def test_other_calls_captions_do_not_reach_a_call_page(supervisor: User) -> None:
    """Captions are scoped to their call's group."""
    call_id = await _call_with_caption("watched", "Hi.")
    page = await _dashboard(f"/ws/dashboard/calls/{call_id}/", supervisor)
    assert (await page.connect())[0]
    assert (await page.receive_json_from())["type"] == "snapshot"
    assert (await page.receive_json_from())["type"] == "analytics"
    acs = acs_socket("other-call")
    assert (await acs.connect())[0]
    await acs.send_to(text_data=transcription_data("Not for you."))
    assert await page.receive_nothing(timeout=0.3)
    await acs.disconnect()
    await page.disconnect()
    assert await Call.objects.acount() == 2


@pytest.mark.parametrize("revoke", ["logout", "deactivated", "no longer a supervisor"])
async def test_an_open_page_closes_once_its_user_loses_access(
    supervisor: User, settings: Any, revoke: str
) -> None:
    """A page open for hours outlives a logout, a deactivation, a change of groups: the
    socket checks again before it relays anything and closes with 4403."""
    from django.contrib.sessions.models import Session

    from dashboard.consumers.base import ACCESS_REVOKED

    settings.CALLSITE_DASHBOARD_RECHECK_SECONDS = 0  # check before every message
    call_id = await _call_with_caption("revoked-call", "Earlier words.")
    page = await _dashboard(f"/ws/dashboard/calls/{call_id}/", supervisor)
    assert (await page.connect())[0]
    assert (await next_event(page))["type"] == "snapshot"
    acs = acs_socket("revoked-call")
    assert (await acs.connect())[0]
    await acs.send_to(text_data=transcription_data("still allowed", status="Intermediate"))
    while (event := await next_event(page))["type"] != "caption.interim":
        pass
    assert event["caption"]["text"] == "still allowed"

    def take_access_away() -> None:
        if revoke == "logout":
            Session.objects.all().delete()
        elif revoke == "deactivated":
            User.objects.filter(pk=supervisor.pk).update(is_active=False)
        else:
            supervisor.groups.clear()

    await database_sync_to_async(take_access_away)()
    await acs.send_to(text_data=transcription_data("not for you", status="Intermediate"))
    closed = await page.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": ACCESS_REVOKED}
    await acs.disconnect()
