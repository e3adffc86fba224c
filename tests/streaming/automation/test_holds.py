"""Hold and mute from ParticipantsUpdated callbacks: timed, shown, and not dead air."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from streaming.acs.webhooks import stream_callback_id
from streaming.models import Alert, AlertRule, Call, CallAnalytics, Participant
from streaming.selectors import call_payload
from tests.helpers import (
    acs_socket,
    page_socket,
    transcription_data,
    transcription_metadata,
    wait_for_event,
)

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = "8:acs:resource_agent-7"
CUSTOMER = "4:+15555550123"


def participants_updated(
    connection_id: str, sequence: int, at: datetime, *, held: bool, muted: bool = False
) -> list[dict[str, Any]]:
    """A ParticipantsUpdated callback body as ACS sends it (an array of CloudEvents)."""
    people = [
        {"identifier": {"rawId": AGENT, "kind": "communicationUser"}, "isMuted": False},
        {
            "identifier": {"rawId": CUSTOMER, "kind": "phoneNumber"},
            "isMuted": muted,
            "isOnHold": held,
        },
    ]
    return [
        {
            "id": str(uuid.uuid4()),
            "source": f"calling/callConnections/{connection_id}",
            "type": "Microsoft.Communication.ParticipantsUpdated",
            "data": {
                "participants": people,
                "sequenceNumber": sequence,
                "callConnectionId": connection_id,
            },
            "time": at.isoformat(timespec="microseconds"),
            "specversion": "1.0",
        }
    ]


def deliver(connection_id: str, body: Any) -> Any:
    response = Client().post(
        f"/acs/callbacks/{stream_callback_id(connection_id)}/"
        f"?token={settings.CALLSITE_ACS_SHARED_SECRET}",
        data=json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()


async def test_a_hold_watched_live_raises_a_hold_alert_and_no_dead_air(supervisor: User) -> None:
    """A transcript-driven call whose customer is held for 9 s (by the callbacks' times),
    watched live: the hold alert fires while the hold goes on, the dead-air rule (4 s) does
    not, the hold shows on the page as it starts and its time is exact. (The simulator's
    20 s hold is tests/end_to_end/test_signals.py.)"""
    await AlertRule.objects.acreate(name="Dead air over 4 s", kind="dead_air", seconds=4)
    await AlertRule.objects.acreate(name="Hold over 6 s", kind="hold", seconds=6)
    ws = acs_socket("hold-call")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=transcription_metadata("hold-call"))
    await ws.send_to(text_data=transcription_data("Let me put you on hold.", speaker=AGENT))
    call = await Call.objects.aget(connection_id="hold-call")
    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call.pk}/")
    assert (await page.connect())[0]

    held_at = datetime.now(UTC)
    await database_sync_to_async(deliver)(
        "hold-call", participants_updated("hold-call", 1, held_at, held=True, muted=True)
    )
    shown = await wait_for_event(page, lambda m: m["type"] == "call.updated", within=2)
    customer = next(p for p in shown["call"]["participants"] if p["raw_id"] == CUSTOMER)
    assert customer["is_on_hold"]
    assert customer["is_muted"]
    assert customer["held_since"] == held_at.isoformat()

    alert = await wait_for_event(page, lambda m: m["type"] == "alert.fired", within=8)
    assert alert["alert"]["kind"] == "hold"
    assert alert["alert"]["speaker"] == CUSTOMER
    await asyncio.sleep(max(0.0, 9.3 - (datetime.now(UTC) - held_at).total_seconds()))
    released = held_at + timedelta(seconds=9)
    await database_sync_to_async(deliver)(
        "hold-call", participants_updated("hold-call", 2, released, held=False)
    )
    await ws.send_to(text_data=transcription_data("Thanks for holding.", offset=100_000_000))
    await ws.disconnect()
    await page.disconnect()

    person = await Participant.objects.aget(call=call, raw_id=CUSTOMER)
    assert person.hold_ms == 9_000
    assert person.longest_hold_ms == 9_000
    assert person.held_since is None
    assert person.hold_periods == [[held_at.isoformat(), released.isoformat()]]
    kinds = [a.kind async for a in Alert.objects.filter(call=call)]
    assert kinds == ["hold"]
    figures = await CallAnalytics.objects.aget(call=call)
    assert abs(figures.hold_ms - 9_000) <= 1_000  # the live timeline, to its 1 s hold reads


def test_a_hold_that_ended_past_the_rule_alerts_once_and_sums_up(db: Any) -> None:
    """Callbacks alone (no live stream): a 90 s hold fires the rule when it ends; holds add
    up and the longest is kept; a redelivery changes nothing."""
    AlertRule.objects.create(name="Hold over 60 s", kind="hold", seconds=60)
    Call.objects.create(connection_id="held-twice", callback_id=stream_callback_id("held-twice"))
    start = datetime(2025, 5, 6, 16, 0, tzinfo=UTC)
    bodies = [
        participants_updated("held-twice", 1, start, held=True),
        participants_updated("held-twice", 2, start + timedelta(seconds=90), held=False),
        participants_updated("held-twice", 3, start + timedelta(seconds=100), held=True),
        participants_updated(
            "held-twice", 4, start + timedelta(seconds=112, milliseconds=345), held=False
        ),
    ]
    for body in bodies:
        assert deliver("held-twice", body) == {"applied": 1, "duplicates": 0}
    assert deliver("held-twice", bodies[1]) == {"applied": 0, "duplicates": 1}
    person = Participant.objects.get(call__connection_id="held-twice", raw_id=CUSTOMER)
    assert (person.hold_ms, person.longest_hold_ms) == (102_345, 90_000)
    (alert,) = Alert.objects.filter(call__connection_id="held-twice")
    assert alert.kind == "hold"
    assert "on hold for more than 60 s" in alert.message


def test_the_api_and_admin_carry_hold_time(db: Any, supervisor: User) -> None:
    Call.objects.create(connection_id="api-hold", callback_id=stream_callback_id("api-hold"))
    start = datetime(2025, 5, 6, 16, 0, tzinfo=UTC)
    deliver("api-hold", participants_updated("api-hold", 1, start, held=True))
    deliver(
        "api-hold", participants_updated("api-hold", 2, start + timedelta(seconds=42), held=False)
    )
    client = Client()
    client.force_login(supervisor)
    call = Call.objects.get(connection_id="api-hold")
    detail = client.get(f"/api/calls/{call.pk}/").json()
    assert detail["hold_ms"] == 42_000
    customer = next(p for p in detail["participants"] if p["raw_id"] == CUSTOMER)
    assert (customer["hold_ms"], customer["longest_hold_ms"], customer["held_since"]) == (
        42_000,
        42_000,
        None,
    )
    listed = client.get("/api/calls/").json()["results"]
    assert [c["hold_ms"] for c in listed] == [42_000]
    admin = User.objects.create_superuser("root", password="root-password-123")
    client.force_login(admin)
    page = client.get("/admin/streaming/call/").content.decode()
    assert '<td class="field-hold_time">0:42</td>' in page


def test_mutes_are_timed_like_holds_and_reach_the_page_payload_and_the_api(
    db: Any, supervisor: User
) -> None:
    """Two mutes by the callbacks' times: summed, the longest kept, each period placed on the
    call's timeline (the page draws them there), a mute still going on left open; a mute
    during a hold leaves the hold's time alone."""
    Call.objects.create(
        connection_id="muted",
        callback_id=stream_callback_id("muted"),
        started_at=datetime(2025, 5, 6, 15, 59, 50, tzinfo=UTC),
    )
    start = datetime(2025, 5, 6, 16, 0, tzinfo=UTC)
    steps = [
        (0, False, True),
        (7.5, False, False),
        (20, True, True),
        (23.25, False, False),
        (30, False, True),
    ]
    for n, (at, held, muted) in enumerate(steps, start=1):
        when = start + timedelta(seconds=at)
        deliver("muted", participants_updated("muted", n, when, held=held, muted=muted))
    person = Participant.objects.get(call__connection_id="muted", raw_id=CUSTOMER)
    assert (person.mute_ms, person.longest_mute_ms) == (10_750, 7_500)
    assert person.muted_since == start + timedelta(seconds=30)
    assert person.hold_ms == 3_250  # held and muted from 20 s to 23.25 s: each counts it
    assert person.mute_periods[-1] == [(start + timedelta(seconds=30)).isoformat(), None]
    agent = Participant.objects.get(call__connection_id="muted", raw_id=AGENT)
    assert (agent.mute_ms, agent.mute_periods, agent.muted_since) == (0, [], None)

    payload = call_payload(Call.objects.get(connection_id="muted"))
    assert payload["timeline_origin"] == "2025-05-06T15:59:50+00:00"
    shown = next(p for p in payload["participants"] if p["raw_id"] == CUSTOMER)
    assert shown["mute_periods"] == [
        ["2025-05-06T16:00:00+00:00", "2025-05-06T16:00:07.500000+00:00"],
        ["2025-05-06T16:00:20+00:00", "2025-05-06T16:00:23.250000+00:00"],
        ["2025-05-06T16:00:30+00:00", None],
    ]
    assert shown["hold_periods"] == [
        ["2025-05-06T16:00:20+00:00", "2025-05-06T16:00:23.250000+00:00"]
    ]

    client = Client()
    client.force_login(supervisor)
    call = Call.objects.get(connection_id="muted")
    detail = client.get(f"/api/calls/{call.pk}/").json()
    customer = next(p for p in detail["participants"] if p["raw_id"] == CUSTOMER)
    assert (customer["mute_ms"], customer["longest_mute_ms"]) == (10_750, 7_500)
    assert customer["muted_since"].startswith("2025-05-06T16:00:30")
