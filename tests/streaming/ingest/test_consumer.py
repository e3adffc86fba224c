"""The ACS ingest socket, driven through the real ASGI application."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from streaming import events
from streaming.events import call_group
from streaming.models import Call, CallState, TranscriptSource, Utterance
from tests.helpers import acs_socket, transcription_data, transcription_metadata

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"


async def _listen(call_connection_id: str) -> str:
    """Join the call's group with a fresh channel, as a supervisor's consumer would."""
    call = await Call.objects.aget(connection_id=call_connection_id)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(call_group(call.pk), channel)
    return channel


async def _drain(channel: str) -> list[dict]:
    """Everything delivered to ``channel`` so far (services send before they return)."""
    layer = get_channel_layer()
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), 0.3))
        except TimeoutError:
            return messages


# Sent on their own schedule (the live figures' tick) or on first sight of a participant:
# a test that reads what one packet caused reads past them.
ASIDES = frozenset({"analytics.updated", "call.participant"})


async def _next(channel: str) -> dict:
    """The next message on ``channel`` that is not an aside."""
    layer = get_channel_layer()
    while (message := await layer.receive(channel))["type"] in ASIDES:
        pass
    return message


async def _utterances(call: str) -> list[Utterance]:
    return [u async for u in Utterance.objects.filter(call__connection_id=call).order_by("pk")]


async def test_refuses_a_socket_without_token() -> None:
    """No ?token= means no connection, and no call is created."""
    communicator = acs_socket(token="")
    connected, _ = await communicator.connect()
    assert not connected
    assert not await Call.objects.aexists()


async def test_refuses_a_wrong_token() -> None:
    """A token that differs from CALLSITE_ACS_SHARED_SECRET is refused."""
    communicator = acs_socket(token="not-the-secret-at-all")
    connected, _ = await communicator.connect()
    assert not connected


async def test_without_a_secret_only_debug_accepts(settings: Any) -> None:
    """With no shared secret configured the socket is closed unless DEBUG is on."""
    settings.CALLSITE_ACS_SHARED_SECRET = ""
    settings.DEBUG = False
    connected, _ = await acs_socket(token="").connect()
    assert not connected

    settings.DEBUG = True
    communicator = acs_socket(token="")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


async def test_refuses_a_socket_without_call_id() -> None:
    """A stream that does not say which call it belongs to is refused."""
    communicator = acs_socket(via_header=False, call="")
    connected, _ = await communicator.connect()
    assert not connected


async def test_call_id_from_header_wins_over_query() -> None:
    """``x-ms-call-connection-id`` identifies the call; ``?call=`` is only a fallback."""
    communicator = acs_socket("from-header", extra_query="call=from-query")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()
    assert await Call.objects.filter(connection_id="from-header").aexists()
    assert not await Call.objects.filter(connection_id="from-query").aexists()


async def test_call_id_from_query_when_header_is_missing() -> None:
    """Without the header, ``?call=`` names the call."""
    communicator = acs_socket("only-query", via_header=False)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()
    call = await Call.objects.aget(connection_id="only-query")
    assert call.state == CallState.ENDED


async def test_transcription_stream_stores_finals_and_relays_interims() -> None:
    """Metadata sets the source; an interim is broadcast but not stored; a final is both."""
    communicator = acs_socket("call-a")
    connected, _ = await communicator.connect()
    assert connected
    channel = await _listen("call-a")

    await communicator.send_to(text_data=transcription_metadata("call-a", locale="en-GB"))
    update = await _next(channel)
    assert update["type"] == "call.updated"
    assert update["call"]["transcript_source"] == "acs"
    assert update["call"]["locale"] == "en-GB"

    await communicator.send_to(text_data=transcription_data("hello th", status="Intermediate"))
    interim = await _next(channel)
    assert interim["type"] == "caption.interim"
    assert interim["caption"]["text"] == "hello th"
    assert interim["caption"]["final"] is False
    assert interim["caption"]["participant"]["role"] == "customer"
    assert await _utterances("call-a") == []

    await communicator.send_to(text_data=transcription_data("Hello there."))
    final = await _next(channel)
    speaking = []  # the interim began the speech, the final ends it
    while final["type"] == "speaking.changed":
        speaking.append(final["speaking"]["speaking"])
        final = await _next(channel)
    assert speaking == [True, False]
    assert final["type"] == "caption.final"
    assert final["caption"]["text"] == "Hello there."
    stored = await _utterances("call-a")
    assert [u.text for u in stored] == ["Hello there."]
    assert final["caption"]["utterance_id"] == stored[0].pk
    assert stored[0].source == TranscriptSource.ACS
    assert stored[0].offset_ticks == 10_000_000
    assert stored[0].duration_ticks == 12_000_000
    await communicator.disconnect()


async def test_replayed_final_is_stored_once_and_broadcast_once() -> None:
    """The same Final packet sent twice, or again after a reconnect, is one utterance."""
    packet = transcription_data("Is everything fine.", offset=868_464_674)
    communicator = acs_socket("call-replay")
    assert (await communicator.connect())[0]
    channel = await _listen("call-replay")
    await communicator.send_to(text_data=packet)
    await communicator.send_to(text_data=packet)
    await communicator.disconnect()

    again = acs_socket("call-replay")
    assert (await again.connect())[0]
    await again.send_to(text_data=packet)
    await again.disconnect()

    assert len(await _utterances("call-replay")) == 1
    messages = await _drain(channel)
    assert [m["type"] for m in messages].count("caption.final") == 1


async def test_bad_frames_are_counted_logged_and_do_not_close_the_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage, binary noise and unknown kinds are rejected with a reason; the call goes on."""
    communicator = acs_socket("call-bad")
    assert (await communicator.connect())[0]
    with caplog.at_level(logging.WARNING, logger="streaming.ingest"):
        await communicator.send_to(text_data="{not json")
        await communicator.send_to(bytes_data=b"\xff\xfe\x00garbage")
        await communicator.send_to(text_data=json.dumps({"kind": "Nonsense", "nonsense": {}}))
        await communicator.send_to(text_data=json.dumps([1, 2, 3]))
        await communicator.send_to(text_data=transcription_data("Still here.", offset=5))
        assert await communicator.receive_nothing(timeout=0.2)
    stored = await _utterances("call-bad")
    assert [u.text for u in stored] == ["Still here."]
    rejected = [r.getMessage() for r in caplog.records if "rejected frame" in r.getMessage()]
    assert len(rejected) == 4
    assert any("Nonsense" in message for message in rejected)
    await communicator.disconnect()
    summary = [r.getMessage() for r in caplog.records if "frames rejected" in r.getMessage()]
    assert len(summary) == 1
    assert "4 of 5 frames rejected" in summary[0]


async def test_binary_json_frames_are_accepted() -> None:
    """ACS may send UTF-8 JSON in binary frames; they are parsed like text frames."""
    communicator = acs_socket("call-binary")
    assert (await communicator.connect())[0]
    await communicator.send_to(bytes_data=transcription_data("Binary frame.").encode())
    await communicator.disconnect()
    assert [u.text for u in await _utterances("call-binary")] == ["Binary frame."]


async def test_recorded_sdk_packets_are_stored_exactly() -> None:
    """The SDKs' sample packets go through the socket with their ticks and words intact."""
    communicator = acs_socket("call-fixtures")
    assert (await communicator.connect())[0]
    for name in (
        "sdk-python_transcription_metadata.json",
        "sdk-python_transcription_data_final.json",
        "sdk-js_transcription_data_final_sentiment_language.json",
        "docs_transcription_data_final_absolute_offset.json",
    ):
        await communicator.send_to(text_data=(FIXTURES / name).read_text())
    await communicator.disconnect()
    stored = {u.text: u for u in await _utterances("call-fixtures")}
    assert set(stored) == {"Is everything fine.", "Hello everyone.", "Testing transcription."}
    fine = stored["Is everything fine."]
    assert fine.offset_ticks == 868464674
    assert fine.duration_ticks == 11600000
    assert [w["text"] for w in fine.words] == ["is", "everything", "fine"]
    assert stored["Testing transcription."].offset_ticks == 2516998782481234400
    call = await Call.objects.aget(connection_id="call-fixtures")
    assert call.transcript_source == TranscriptSource.ACS


async def test_disconnect_ends_the_call_and_reconnect_resumes_it() -> None:
    """Closing the stream ends the call; ACS reconnecting the same call brings it back."""
    communicator = acs_socket("call-life")
    assert (await communicator.connect())[0]
    assert (await Call.objects.aget(connection_id="call-life")).state == CallState.CONNECTED
    await communicator.disconnect()
    ended = await Call.objects.aget(connection_id="call-life")
    assert ended.state == CallState.ENDED
    assert ended.ended_at is not None

    again = acs_socket("call-life")
    assert (await again.connect())[0]
    resumed = await Call.objects.aget(connection_id="call-life")
    assert resumed.state == CallState.CONNECTED
    assert resumed.ended_at is None
    assert resumed.started_at == ended.started_at
    await again.disconnect()
    assert await database_sync_to_async(Call.objects.count)() == 1


async def test_rejection_counts_stay_bounded_under_hostile_input() -> None:
    """Thousands of distinct bad values are counted by kind, not one entry per value."""
    from streaming.ingest.frames import MAX_REJECT_CATEGORIES, FramePolicy

    policy = FramePolicy("call hostile")
    for n in range(2000):
        policy.reject(f"transcriptionData.offset must be a non-negative integer, got '{n}'")
        policy.reject(f"unknown kind 'K{n}'")
    assert len(policy.rejected) <= MAX_REJECT_CATEGORIES
    assert policy.rejected["transcriptionData.offset must be a non-negative integer"] == 2000
    assert sum(policy.rejected.values()) == 4000


async def test_no_database_thread_waits_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events committed in a database thread are sent from the loop after it returns.

    A thread that climbed back into the loop (``async_to_sync``) would wait for ever once
    the loop stopped, and a stopping server, which joins its threads, would never exit.
    """
    climbed: list[str] = []
    real = events.async_to_sync

    def recording(function: Any) -> Any:
        climbed.append(getattr(function, "__name__", repr(function)))
        return real(function)

    monkeypatch.setattr(events, "async_to_sync", recording)
    socket = acs_socket("loop-call")
    assert (await socket.connect())[0]
    await socket.send_to(text_data=transcription_metadata("loop-call"))
    channel = await _listen("loop-call")
    for n in range(3):
        await socket.send_to(
            text_data=transcription_data(
                f"phrase {n}", offset=n * 10_000_000, speaker=f"4:+1555{n}"
            )
        )
    await socket.disconnect()
    delivered = await _drain(channel)
    assert [m["caption"]["text"] for m in delivered if m["type"] == "caption.final"] == [
        "phrase 0",
        "phrase 1",
        "phrase 2",
    ]
    assert any(m["type"] == "call.updated" for m in delivered)
    assert climbed == [], "a database thread sent an event through the event loop"
