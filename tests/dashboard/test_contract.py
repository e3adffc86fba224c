"""The browser contract: every message a page can receive is typed, built to its type, and
handled by the socket of every group it is sent to (Zulip's ``test_events`` habit)."""

from __future__ import annotations

import asyncio
import json
import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from callsite.asgi import application
from dashboard import messages
from dashboard.consumers import CallPageConsumer, WallConsumer
from dashboard.selectors import wall_summaries
from streaming import events, selectors, services
from streaming.acs.packets import Word
from streaming.live.registry import analytics_from_history
from streaming.models import AlertRule
from streaming.sentiment import Judgement
from tests.contract import conforms
from tests.factories import session_cookie
from tests.helpers import (
    acs_socket,
    audio_data,
    audio_metadata,
    tone_frame,
    transcription_data,
    transcription_metadata,
)

pytestmark = pytest.mark.django_db(transaction=True)

GROUP_CONSUMERS = {"call": CallPageConsumer, "overview": WallConsumer}
PAGE_CONTRACTS = {"call": messages.CALL_PAGE_MESSAGES, "overview": messages.WALL_MESSAGES}
BROWSER_ONLY = {"snapshot", "analytics", "call.teams"}


def _event_type(event_class: type) -> str:
    (literal,) = typing.get_args(typing.get_type_hints(event_class)["type"])
    return str(literal)


def test_every_event_is_handled_by_the_sockets_of_its_groups() -> None:
    for event_class, groups in events.EVENT_GROUPS.items():
        kind = _event_type(event_class)
        for group in groups:
            consumer = GROUP_CONSUMERS[group]
            handler = getattr(consumer, get_handler_name({"type": kind}), None)
            assert callable(handler), f"{consumer.__name__} has no handler for {kind}"


def test_each_page_contract_is_its_groups_events_and_its_own_messages() -> None:
    for group, contract in PAGE_CONTRACTS.items():
        sent = {_event_type(c) for c, groups in events.EVENT_GROUPS.items() if group in groups}
        assert set(contract) - BROWSER_ONLY == sent, group
        for kind, message_type in contract.items():
            assert _event_type(message_type) == kind


def _sample_call() -> int:
    """A call with participants, a final, an alert and stored figures."""
    call = services.call_stream_opened(connection_id="contract-call")
    services.participant_ensure(call_id=call["id"], raw_id="8:acs:agent-1")
    services.utterance_record(
        call_id=call["id"],
        participant_raw_id="4:+15551230000",
        text="I want to cancel my account",
        confidence=0.9,
        offset_ticks=10_000_000,
        duration_ticks=20_000_000,
        words=[Word("cancel", 12_000_000, 3_000_000, 0.8)],
        source="acs",
        sentiment=Judgement("negative", None, "acs"),
        language="en-US",
    )
    services.call_tone_record(
        call_id=call["id"],
        tone="7",
        participant_raw_id="4:+15551230000",
        at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    services.alert_record(
        call_id=call["id"],
        rule_id=None,
        kind="keyword",
        message="cancel",
        at_ms=1000,
        episode="e1",
        participant_raw_id="4:+15551230000",
    )
    analytics = analytics_from_history(call_id=call["id"], final=False)
    services.call_analytics_store([analytics])
    return call["id"]


def _built() -> list[tuple[str, Any, Any]]:
    """(builder, its output, its declared return type) for every builder of the contract."""
    call_id = _sample_call()
    call = selectors.call_get(call_id=call_id)
    assert call is not None
    [caption] = selectors.call_captions(call_id=call_id)
    [alert] = selectors.call_alerts(call_id=call_id)
    [tone] = selectors.call_tones(call_id=call_id)
    analytics = selectors.stored_analytics(call_id=call_id)
    assert analytics is not None
    health: events.HealthPayload = {
        "call_id": call_id,
        "frames_per_second": 50.0,
        "last_packet_ms": 20,
        "caption_lag_ms": None,
        "current_silence_ms": 0,
        "stuck": False,
        "talk": [],
        "alerts": 1,
        "sentiment": {"latest": None, "trend": []},
    }
    summaries = wall_summaries(call_ids=[call_id])
    outputs = {
        events.call_updated: events.call_updated(call),
        events.call_participant: events.call_participant(call_id, call["participants"][0]),
        events.caption_interim: events.caption_interim({**caption, "final": False}),
        events.caption_final: events.caption_final(caption),
        events.analytics_updated: events.analytics_updated(analytics),
        events.alert_fired: events.alert_fired(alert),
        events.dtmf_tone: events.dtmf_tone(tone),
        events.speaking_changed: events.speaking_changed(
            {
                "call_id": call_id,
                "key": "4:+15551230000",
                "label": "+15551230000",
                "role": "customer",
                "speaking": True,
                "at_ms": 1200,
            }
        ),
        events.calls_health: events.calls_health([health]),
        events.analytics_empty: events.analytics_empty(call_id),
        messages.wall_snapshot: messages.wall_snapshot([call], summaries, 10, teams=["Billing"]),
        messages.call_teams: messages.call_teams(call_id, ["Billing"]),
        messages.call_snapshot: messages.call_snapshot(
            call=call,
            captions=[caption],
            alerts=[alert],
            tones=[tone],
            last_seq=3,
            resume=False,
            low_confidence=0.6,
        ),
        messages.analytics_whole: messages.analytics_whole(analytics),
        messages.analytics_update: messages.analytics_update(analytics),
    }
    return [
        (builder.__name__, output, typing.get_type_hints(builder)["return"])
        for builder, output in outputs.items()
    ]


def test_every_builder_makes_its_type() -> None:
    for name, output, declared in _built():
        assert conforms(output, declared) == [], name
        # What the browser gets after JSON conforms too.
        assert conforms(json.loads(json.dumps(output)), declared, json=True) == [], name


def test_a_tampered_message_is_caught() -> None:
    """The checker itself: a missing key, a wrong type and an unknown key are each reported."""
    _name, output, declared = next(b for b in _built() if b[0] == "caption_final")
    broken = json.loads(json.dumps(output))
    del broken["caption"]["seq"]
    broken["caption"]["confidence"] = "high"
    broken["caption"]["extra"] = 1
    problems = conforms(broken, declared, json=True)
    assert any("lacks ['seq']" in p for p in problems)
    assert any("confidence" in p for p in problems)
    assert any("unknown ['extra']" in p for p in problems)


@database_sync_to_async
def _cookie(user: User) -> bytes:
    return session_cookie(user).encode()


async def _page(cookie: bytes, path: str) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(
        application, path, headers=[(b"cookie", cookie), (b"origin", b"http://localhost")]
    )
    assert (await socket.connect())[0]
    return socket


async def _until_seen(
    socket: WebsocketCommunicator, kinds: set[str], within: float = 10
) -> list[dict[str, Any]]:
    """What the socket sent until each of ``kinds`` came (read without cancelling it)."""
    received: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not kinds <= {m["type"] for m in received} and loop.time() < deadline:
        try:
            sent = socket.output_queue.get_nowait()
        except asyncio.QueueEmpty:
            await asyncio.sleep(0.05)
            continue
        if sent["type"] == "websocket.send":
            received.append(json.loads(sent["text"]))
    return received


async def test_what_pages_receive_during_a_call_is_in_their_contract(supervisor: User) -> None:
    """A call with ACS transcription and audio, a keyword alert, live figures and health:
    every message the wall and the call page get is of a contract type, and conforms."""
    await AlertRule.objects.acreate(name="Cancel", kind="keyword", phrase="cancel")
    cookie = await _cookie(supervisor)
    wall = await _page(cookie, "/ws/dashboard/")
    acs = acs_socket("contract-live")
    assert (await acs.connect())[0]
    await acs.send_to(text_data=transcription_metadata("contract-live"))
    call = await database_sync_to_async(selectors.call_list)()
    page = await _page(cookie, f"/ws/dashboard/calls/{call[0]['id']}/")
    await acs.send_to(text_data=transcription_data("I want to", status="Intermediate"))
    await acs.send_to(text_data=transcription_data("I want to cancel my account"))
    await acs.send_to(text_data=audio_metadata())
    for i in range(60):
        await acs.send_to(text_data=audio_data(tone_frame(), index=i, speaker="8:acs:agent-1"))
    # The call takes every road: snapshot, figures drawn whole and live, both captions, the
    # alert and state changes; the wall sees the call, its alert and its health.
    call_kinds = {
        *("snapshot", "analytics", "analytics.updated", "caption.interim", "caption.final"),
        *("alert.fired", "call.participant"),
    }
    wall_kinds = {"snapshot", "call.updated", "call.participant", "alert.fired", "calls.health"}
    received = {
        "call": await _until_seen(page, call_kinds),
        "overview": await _until_seen(wall, wall_kinds),
    }
    await acs.disconnect()
    await page.disconnect()
    await wall.disconnect()
    for group, got in received.items():
        contract = PAGE_CONTRACTS[group]
        kinds = {m["type"] for m in got}
        assert kinds <= set(contract), (group, kinds - set(contract))
        for message in got:
            assert conforms(message, contract[message["type"]], json=True) == [], message
    assert call_kinds <= {m["type"] for m in received["call"]}
    assert wall_kinds <= {m["type"] for m in received["overview"]}
