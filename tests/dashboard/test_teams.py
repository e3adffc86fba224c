"""Teams: a supervisor sees their teams' calls; Staff see all. One rule, every entrance."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client

from callsite.asgi import application
from dashboard.models import Team, canonical_address
from dashboard.permissions import visible_calls
from streaming import events, services
from tests.factories import make_call, session_cookie, team_supervisor
from tests.helpers import next_event, wait_for_event

TEAM_LINE = "+15551230000"
OTHER_LINE = "+15559990000"


@pytest.mark.parametrize(
    ("typed", "raw_id", "number"),
    [
        ("+1 555 123-0000", "4:+15551230000", "+15551230000"),
        ("4:+15551230000", "4:+15551230000", "+15551230000"),
        ("8:acs:resource_user-1", "8:acs:resource_user-1", ""),
        (" 28:orgid:abc ", "28:orgid:abc", ""),
    ],
)
def test_addresses_are_stored_in_one_form(typed: str, raw_id: str, number: str) -> None:
    assert canonical_address(typed) == (raw_id, number)


@pytest.mark.parametrize("typed", ["+", "support line", "5551230000"])
def test_malformed_addresses_are_refused(typed: str) -> None:
    with pytest.raises(ValidationError):
        canonical_address(typed)


def _call(connection_id: str, *, participant: str | None = None, caller: str = "") -> int:
    return make_call(connection_id, people=[participant] if participant else [], caller=caller)


@pytest.mark.django_db
def test_a_supervisor_sees_the_calls_of_their_teams_only(supervisor: User) -> None:
    mine = _call("mine", participant=f"4:{TEAM_LINE}")
    rang_us = _call("rang-us", caller=TEAM_LINE)
    by_user = _call("by-acs-user", participant="8:acs:resource_agent-7")
    theirs = _call("theirs", participant=f"4:{OTHER_LINE}")
    nobody = _call("nobody")
    dana = team_supervisor("dana", TEAM_LINE, "8:acs:resource_agent-7")
    assert set(visible_calls(dana).values_list("pk", flat=True)) == {mine, rang_us, by_user}
    # Staff (the shared fixture) see all; a user who may not watch calls sees none.
    assert visible_calls(supervisor).count() == 5
    outsider = User.objects.create_user("outsider", password="x-123456-pass")
    assert not visible_calls(outsider).exists()
    assert {theirs, nobody}.isdisjoint(visible_calls(dana).values_list("pk", flat=True))


@pytest.mark.django_db
def test_another_teams_call_page_is_not_found() -> None:
    mine = _call("mine", participant=f"4:{TEAM_LINE}")
    theirs = _call("theirs", participant=f"4:{OTHER_LINE}")
    client = Client()
    client.force_login(team_supervisor("dana", TEAM_LINE))
    assert client.get(f"/calls/{mine}/").status_code == 200
    assert client.get(f"/calls/{theirs}/").status_code == 404


async def _socket(user: User, path: str) -> WebsocketCommunicator:
    cookie = await database_sync_to_async(session_cookie)(user)
    return WebsocketCommunicator(
        application, path, headers=[(b"cookie", cookie.encode()), (b"origin", b"http://localhost")]
    )


@pytest.mark.django_db(transaction=True)
async def test_the_wall_socket_shows_and_relays_only_the_teams_calls() -> None:
    mine = await database_sync_to_async(_call)("mine", participant=f"4:{TEAM_LINE}")
    theirs = await database_sync_to_async(_call)("theirs", participant=f"4:{OTHER_LINE}")
    dana = await database_sync_to_async(team_supervisor)("dana", TEAM_LINE)

    page = await _socket(dana, f"/ws/dashboard/calls/{theirs}/")
    assert not (await page.connect())[0]

    wall = await _socket(dana, "/ws/dashboard/")
    assert (await wall.connect())[0]
    snapshot = await wall.receive_json_from()
    assert [c["connection_id"] for c in snapshot["calls"]] == ["mine"]

    layer = get_channel_layer()
    health = events.calls_health(
        [
            {
                "call_id": call_id,
                "frames_per_second": 100.0,
                "last_packet_ms": 5,
                "caption_lag_ms": None,
                "current_silence_ms": 0,
                "stuck": False,
                "talk": [],
                "alerts": 0,
                "sentiment": {"latest": None, "trend": []},
            }
            for call_id in (theirs, mine)
        ]
    )
    await layer.group_send(events.OVERVIEW_GROUP, health)
    relayed = await wall.receive_json_from()
    assert [row["call_id"] for row in relayed["calls"]] == [mine]

    # Another team's call changing is not relayed; a call our line joins becomes visible.
    await database_sync_to_async(services.call_stream_closed)(call_id=theirs)
    assert await wall.receive_nothing(timeout=0.3)
    joined = await database_sync_to_async(_call)("joined")
    await database_sync_to_async(services.participant_ensure)(
        call_id=joined, raw_id=f"4:{TEAM_LINE}"
    )
    relayed_ids: list[int] = []

    def has_our_line(message: dict[str, Any]) -> bool:
        if message["type"] == "call.teams":  # the wall's team filter learns the call's teams
            assert message["call_id"] != theirs
            return False
        relayed_ids.append(message["call"]["id"])
        return any(p["raw_id"] == f"4:{TEAM_LINE}" for p in message["call"]["participants"])

    await wait_for_event(wall, has_our_line, within=5)
    assert set(relayed_ids) == {joined}
    await wall.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_supervisor_taken_off_a_team_stops_getting_its_calls_on_an_open_wall(
    settings: Any,
) -> None:
    """The wall works out again which calls its user may see when it re-checks access."""
    settings.CALLSITE_DASHBOARD_RECHECK_SECONDS = 1
    mine = await database_sync_to_async(_call)("mine", participant=f"4:{TEAM_LINE}")
    dana = await database_sync_to_async(team_supervisor)("dana", TEAM_LINE)
    wall = await _socket(dana, "/ws/dashboard/")
    assert (await wall.connect())[0]
    assert [c["id"] for c in (await wall.receive_json_from())["calls"]] == [mine]
    await database_sync_to_async(services.call_stream_opened)(connection_id="mine")
    assert (await next_event(wall))["call"]["id"] == mine  # relayed while on the team

    await Team.objects.filter(members=dana).adelete()
    await asyncio.sleep(1.1)
    await database_sync_to_async(services.call_stream_opened)(connection_id="mine")
    assert await wall.receive_nothing(timeout=0.5)
    await wall.disconnect()
