"""Alert triage through the real entry points: the page's POST, the call page's and the
wall's sockets. Two supervisors watching see a third's acknowledgement within a second."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from streaming.models import Alert, AlertState
from tests import factories
from tests.factories import AGENT, user_in
from tests.helpers import page_socket, wait_for_event

LINE = "+15551230000"


def _call_with_alert(name: str = "triaged-call", line: str = LINE) -> tuple[int, int]:
    call_id = factories.make_call(name, people=[AGENT, f"4:{line}"], alerts=1)
    return call_id, Alert.objects.get(call_id=call_id).pk


def _post(user: User, alert_id: int, step: str, **data: str) -> Any:
    client = Client()
    client.force_login(user)
    return client.post(f"/alerts/{alert_id}/{step}/", data, headers={"accept": "application/json"})


@pytest.mark.django_db(transaction=True)
async def test_two_supervisors_see_a_third_acknowledge_within_a_second() -> None:
    def setup() -> tuple[User, User, User, int, int]:
        watchers = [factories.team_supervisor(name, LINE) for name in ("ann", "bob")]
        acting = factories.team_supervisor("cleo", LINE)
        acting.first_name, acting.last_name = "Cleo", "Marsh"
        acting.save()
        return watchers[0], watchers[1], acting, *_call_with_alert()

    ann, bob, cleo, call_id, alert_id = await database_sync_to_async(setup)()
    wall = await page_socket(ann)
    page = await page_socket(bob, f"/ws/dashboard/calls/{call_id}/")
    for socket in (wall, page):
        connected, _ = await socket.connect()
        assert connected
    snapshot = await wait_for_event(wall, lambda m: m["type"] == "snapshot")
    unresolved = snapshot["summaries"][str(call_id)]["unresolved"]
    assert [(a["id"], a["state"]) for a in unresolved] == [(alert_id, "open")]
    snapshot = await wait_for_event(page, lambda m: m["type"] == "snapshot")
    assert [(a["id"], a["state"]) for a in snapshot["alerts"]] == [(alert_id, "open")]

    started = time.monotonic()
    response = await database_sync_to_async(_post)(
        cleo, alert_id, "acknowledge", note="Calling the customer back"
    )
    assert response.status_code == 200, response.content
    assert response.json()["alert"]["state"] == "acknowledged"

    def updated(message: dict[str, Any]) -> bool:
        return message["type"] == "alert.updated" and message["alert"]["id"] == alert_id

    seen = await asyncio.gather(
        wait_for_event(wall, updated, within=1), wait_for_event(page, updated, within=1)
    )
    assert time.monotonic() - started < 1
    for message in seen:
        alert = message["alert"]
        assert alert["state"] == "acknowledged"
        assert alert["acknowledged_by"] == "Cleo Marsh"
        assert alert["acknowledged_at"] is not None
        assert alert["note"] == "Calling the customer back"
    await wall.disconnect()
    await page.disconnect()

    stored = await database_sync_to_async(Alert.objects.get)(pk=alert_id)
    assert stored.state == AlertState.ACKNOWLEDGED
    assert stored.acknowledged_by_id == cleo.pk


@pytest.mark.django_db(transaction=True)
async def test_a_reconnecting_call_page_gets_the_new_state_of_older_alerts() -> None:
    def setup() -> tuple[User, int, int]:
        return factories.team_supervisor("dan", LINE), *_call_with_alert()

    dan, call_id, alert_id = await database_sync_to_async(setup)()
    seq = await database_sync_to_async(lambda: Alert.objects.get(pk=alert_id).seq)()
    await database_sync_to_async(_post)(dan, alert_id, "resolve")
    page = await page_socket(dan, f"/ws/dashboard/calls/{call_id}/?after={seq}")
    assert (await page.connect())[0]
    snapshot = await wait_for_event(page, lambda m: m["type"] == "snapshot")
    assert snapshot["resume"] is True
    assert [(a["id"], a["state"], a["resolved_by"]) for a in snapshot["alerts"]] == [
        (alert_id, "resolved", "dan")
    ]
    await page.disconnect()


def test_steps_move_an_alert_through_its_states(db: Any) -> None:
    eve = factories.team_supervisor("eve", LINE)
    _call_id, alert_id = _call_with_alert()
    answer = _post(eve, alert_id, "acknowledge").json()["alert"]
    assert (answer["state"], answer["acknowledged_by"], answer["note"]) == (
        "acknowledged",
        "eve",
        "",
    )
    answer = _post(eve, alert_id, "resolve", note="Refund issued").json()["alert"]
    assert (answer["state"], answer["resolved_by"], answer["acknowledged_by"]) == (
        "resolved",
        "eve",
        "eve",
    )
    assert answer["note"] == "Refund issued"
    refused = _post(eve, alert_id, "resolve")
    assert refused.status_code == 400
    assert "resolved" in refused.json()["error"]
    answer = _post(eve, alert_id, "reopen").json()["alert"]
    assert answer["state"] == "open"
    assert answer["acknowledged_by"] is None
    assert answer["resolved_by"] is None
    assert answer["note"] == "Refund issued"  # the note stays; a later step may replace it


def test_bad_input_is_refused_and_changes_nothing(db: Any) -> None:
    fay = factories.team_supervisor("fay", LINE)
    _call_id, alert_id = _call_with_alert()
    too_long = _post(fay, alert_id, "acknowledge", note="x" * 501)
    assert too_long.status_code == 400
    assert "at most 500" in too_long.json()["error"]
    assert _post(fay, alert_id, "snooze").status_code == 404
    assert _post(fay, 999_999, "acknowledge").status_code == 404
    client = Client()
    client.force_login(fay)
    assert client.get(f"/alerts/{alert_id}/acknowledge/").status_code == 405
    alert = Alert.objects.get(pk=alert_id)
    assert (alert.state, alert.note, alert.acknowledged_by_id) == ("open", "", None)


def test_another_teams_alert_is_absent_and_anonymous_users_log_in(db: Any) -> None:
    _call_id, alert_id = _call_with_alert()
    stranger = factories.team_supervisor("gus", "+15559990000")
    assert _post(stranger, alert_id, "acknowledge").status_code == 404
    visitor = user_in("hal")  # logged in, not a supervisor
    assert _post(visitor, alert_id, "acknowledge").status_code == 403
    anonymous = Client().post(f"/alerts/{alert_id}/acknowledge/")
    assert anonymous.status_code == 302
    assert "/accounts/login/" in anonymous["Location"]
    assert Alert.objects.get(pk=alert_id).state == "open"


def test_without_javascript_the_form_redirects_to_the_call(db: Any) -> None:
    ivy = factories.team_supervisor("ivy", LINE)
    call_id, alert_id = _call_with_alert()
    client = Client()
    client.force_login(ivy)
    response = client.post(f"/alerts/{alert_id}/acknowledge/", {"note": "On it"})
    assert response.status_code == 302
    assert response["Location"] == f"/calls/{call_id}/"
    assert Alert.objects.get(pk=alert_id).note == "On it"
