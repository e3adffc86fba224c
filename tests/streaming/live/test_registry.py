"""Live talk-time figures, alerts and health, through the real ingest and dashboard sockets.

Audio is sent faster than real time (the timeline follows the frames' timestamps); the
analytics tick runs on the wall clock once a second, so each test waits for a tick or two.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from callsite.asgi import application
from streaming import services
from streaming.acs.packets import Word
from streaming.events import call_group
from streaming.live.registry import analytics_from_history
from streaming.models import Alert, AlertRule, Call, CallAnalytics, Utterance
from tests.factories import session_cookie
from tests.helpers import (
    acs_socket,
    audio_data,
    audio_metadata,
    next_event,
    quiet_frame,
    tone_frame,
    transcription_data,
    wait_for_event,
)

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = "8:acs:agent-0001"
CUSTOMER = "4:+15551230000"


@database_sync_to_async
def _cookie(user: User) -> bytes:
    return session_cookie(user).encode()


async def _page(user: User, call_id: int | None, query: str = "") -> WebsocketCommunicator:
    path = "/ws/dashboard/" if call_id is None else f"/ws/dashboard/calls/{call_id}/"
    socket = WebsocketCommunicator(
        application,
        path + query,
        headers=[(b"cookie", await _cookie(user)), (b"origin", b"http://localhost")],
    )
    assert (await socket.connect())[0]
    return socket


async def _open_call(name: str) -> tuple[WebsocketCommunicator, int]:
    acs = acs_socket(name)
    assert (await acs.connect())[0]
    call = await Call.objects.aget(connection_id=name)
    return acs, call.pk


async def _stream(acs: WebsocketCommunicator, seconds: float, talking: Any, start: int = 0) -> None:
    """Two unmixed participants; ``talking(speaker, second)`` says who is loud when."""
    for i in range(start, start + int(seconds * 50)):
        for speaker in (AGENT, CUSTOMER):
            loud = talking(speaker, i / 50)
            pcm = tone_frame() if loud else quiet_frame()
            await acs.send_to(text_data=audio_data(pcm, index=i, speaker=speaker, silent=not loud))


def _speaker(analytics: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in analytics["speakers"] if s["key"] == key)


async def test_talk_time_reaches_the_call_page_live_and_is_stored(
    supervisor: User, settings: Any
) -> None:
    """Agent 0-3 s, customer 3.5-5 s, then silence: live figures, a dead-air alert, history."""
    settings.CALLSITE_RECOGNIZER = "none"
    await AlertRule.objects.acreate(name="Dead air over 2 s", kind="dead_air", seconds=2)
    acs, call_id = await _open_call("analytics-call")
    page = await _page(supervisor, call_id)
    assert (await page.receive_json_from())["type"] == "snapshot"
    first = await page.receive_json_from()
    assert first["type"] == "analytics"
    assert set(first["charts"]) == {"talk_time", "talk_ratio", "timeline"}

    await acs.send_to(text_data=audio_metadata())
    await _stream(
        acs,
        10,
        lambda who, t: (who == AGENT and t < 3) or (who == CUSTOMER and 3.5 <= t < 5),
    )

    # The figures go as far as the audio heard, seconds still being filled included.
    update = await wait_for_event(
        page,
        lambda m: m["type"] == "analytics.updated" and m["analytics"]["duration_ms"] >= 10_000,
    )
    live = update["analytics"]
    assert live["source"] == "audio"
    assert _speaker(live, AGENT)["talk_ms"] == 3000
    assert _speaker(live, CUSTOMER)["talk_ms"] == 1500
    assert _speaker(live, AGENT)["ratio"] == pytest.approx(2 / 3, abs=0.001)
    assert live["overlap_ms"] == 0
    assert live["duration_ms"] == 10_000
    assert live["current_silence_ms"] == 5000
    assert "timeline_delta" in update["charts"]

    alert = await wait_for_event(page, lambda m: m["type"] == "alert.fired")
    assert alert["alert"]["kind"] == "dead_air"
    assert alert["alert"]["at_ms"] == 7000  # silence from 5 s, past 2 s at 7 s
    assert alert["alert"]["seq"] is not None

    await acs.disconnect()
    final = await wait_for_event(
        page, lambda m: m["type"] == "analytics.updated" and m["analytics"]["final"]
    )
    assert final["analytics"]["duration_ms"] == 10_000
    stored = await CallAnalytics.objects.aget(call_id=call_id)
    assert stored.final
    assert (stored.talk_ms, stored.silence_ms, stored.duration_ms) == (4500, 5500, 10_000)
    assert stored.longest_silence_ms == 5000
    assert stored.timeline[AGENT] == [[0, 3000]]
    assert stored.timeline[CUSTOMER] == [[3500, 5000]]
    # One silence, one alert, however many ticks saw it.
    assert await Alert.objects.filter(call_id=call_id).acount() == 1
    # What is stored rebuilds the same figures.
    rebuilt = await database_sync_to_async(analytics_from_history)(call_id=call_id, final=True)
    assert rebuilt["speakers"] == stored.speakers
    await page.disconnect()


async def test_a_reconnecting_stream_continues_the_figures(supervisor: User, settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "none"
    acs, call_id = await _open_call("reconnecting-call")
    await acs.send_to(text_data=audio_metadata())
    await _stream(acs, 2, lambda who, t: who == AGENT)
    await acs.disconnect()

    again, same_id = await _open_call("reconnecting-call")
    assert same_id == call_id
    await again.send_to(text_data=audio_metadata())
    await _stream(again, 2, lambda who, t: who == CUSTOMER, start=100)
    await again.disconnect()

    stored = await CallAnalytics.objects.aget(call_id=call_id)
    assert stored.duration_ms == 4000
    talk = {s["key"]: s["talk_ms"] for s in stored.speakers}
    assert talk == {AGENT: 2000, CUSTOMER: 2000}


async def test_calls_with_only_acs_transcription_use_result_timings(supervisor: User) -> None:
    acs, call_id = await _open_call("transcription-only")
    await acs.send_to(
        text_data=transcription_data("Hello there.", offset=0, duration=20_000_000, speaker=AGENT)
    )
    await acs.send_to(text_data=transcription_data("Hi.", offset=25_000_000, duration=10_000_000))
    await acs.disconnect()
    stored = await CallAnalytics.objects.aget(call_id=call_id)
    assert stored.source == "utterances"
    ratio = {s["key"]: s["ratio"] for s in stored.speakers}
    assert ratio[AGENT] == pytest.approx(2 / 3, abs=0.001)
    words = {s["key"]: s["words"] for s in stored.speakers}
    assert words[AGENT] == 2


async def test_a_keyword_alert_fires_once_after_its_caption(supervisor: User) -> None:
    await AlertRule.objects.acreate(name="Cancel", kind="keyword", phrase="cancel my account")
    acs, call_id = await _open_call("keyword-call")
    page = await _page(supervisor, call_id)
    packet = transcription_data("I want to CANCEL my account, please.", offset=30_000_000)
    await acs.send_to(text_data=packet)
    final = await wait_for_event(page, lambda m: m["type"] == "caption.final")
    alert = await wait_for_event(page, lambda m: m["type"] == "alert.fired")
    assert alert["alert"]["seq"] == final["caption"]["seq"] + 1
    assert alert["alert"]["speaker"] == "4:+15555550123"
    assert "cancel my account" in alert["alert"]["message"]

    await acs.send_to(text_data=packet)  # a replayed packet: stored once, alerted once
    await acs.send_to(text_data=transcription_data("No cancellation.", offset=60_000_000))
    later = await wait_for_event(page, lambda m: m["type"] == "caption.final")
    assert later["caption"]["text"] == "No cancellation."
    await acs.disconnect()
    assert await Alert.objects.filter(call_id=call_id).acount() == 1
    await page.disconnect()


@database_sync_to_async
def _final(call_id: int, text: str, offset_s: int) -> int:
    caption, _ = services.utterance_record(
        call_id=call_id,
        participant_raw_id=AGENT,
        text=text,
        confidence=0.9,
        offset_ticks=offset_s * 10_000_000,
        duration_ticks=5_000_000,
        words=[Word(text=text, offset=offset_s * 10_000_000, duration=5_000_000)],
        source="acs",
    )
    assert caption["seq"] is not None
    return caption["seq"]


@database_sync_to_async
def _final_without_broadcast(call_id: int, text: str, offset_s: int) -> int:
    """A final whose channel-layer message was lost: stored, never sent."""
    call = Call.objects.get(pk=call_id)
    call.last_seq += 1
    call.save(update_fields=["last_seq"])
    Utterance.objects.create(
        call=call,
        text=text,
        offset_ticks=offset_s * 10_000_000,
        duration_ticks=5_000_000,
        source="acs",
        dedupe_key=f"lost|{offset_s}",
        seq=call.last_seq,
    )
    return call.last_seq


async def test_a_reconnecting_page_resumes_after_its_last_event_without_gaps_or_repeats(
    supervisor: User,
) -> None:
    call = await database_sync_to_async(services.call_stream_opened)(connection_id="resume")
    call_id = call["id"]
    assert [await _final(call_id, "one", 1), await _final(call_id, "two", 2)] == [1, 2]

    page = await _page(supervisor, call_id)
    snapshot = await page.receive_json_from()
    assert [c["text"] for c in snapshot["captions"]] == ["one", "two"]
    assert (snapshot["last_seq"], snapshot["resume"]) == (2, False)
    await page.disconnect()

    await _final(call_id, "three", 3)  # said while the page was away
    await _final(call_id, "four", 4)
    page = await _page(supervisor, call_id, "?after=2")
    snapshot = await page.receive_json_from()
    assert snapshot["resume"] is True
    assert [(c["seq"], c["text"]) for c in snapshot["captions"]] == [(3, "three"), (4, "four")]
    assert snapshot["last_seq"] == 4

    # A message the channel layer dropped is filled in before the next one.
    assert await _final_without_broadcast(call_id, "five", 5) == 5
    assert await _final(call_id, "six", 6) == 6
    filled = await next_event(page)
    after = await next_event(page)
    assert [(m["caption"]["seq"], m["caption"]["text"]) for m in (filled, after)] == [
        (5, "five"),
        (6, "six"),
    ]

    # A repeat of something already sent is dropped.
    layer = get_channel_layer()
    await layer.group_send(
        call_group(call_id), {"type": "caption.final", "caption": after["caption"]}
    )
    assert await page.receive_nothing(timeout=0.3)
    await page.disconnect()


async def test_the_wall_gets_health_and_flags_a_stuck_call(supervisor: User, settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "none"
    settings.CALLSITE_STUCK_SECONDS = 2
    wall = await _page(supervisor, None)
    snapshot = await wall.receive_json_from()
    assert snapshot["stuck_seconds"] == 2
    acs, call_id = await _open_call("health-call")
    await acs.send_to(text_data=audio_metadata())
    await _stream(acs, 1, lambda who, t: who == AGENT)

    def health(m: dict[str, Any]) -> dict[str, Any] | None:
        if m["type"] != "calls.health":
            return None
        return next((c for c in m["calls"] if c["call_id"] == call_id), None)

    busy = await wait_for_event(
        wall, lambda m: (h := health(m)) is not None and h["frames_per_second"] > 0
    )
    assert health(busy)["stuck"] is False  # type: ignore[index]
    stuck = await wait_for_event(
        wall, lambda m: (h := health(m)) is not None and h["stuck"], within=8
    )
    assert health(stuck)["last_packet_ms"] >= 2000  # type: ignore[index]
    await acs.disconnect()
    await wall.disconnect()
