"""What one stream may make a worker hold: every limit the parser admits fits the columns,
and what exceeds a call's bounds is refused or capped, with a logged reason, while the rest of
the call (and every other call) goes on. Runs on both backends: SQLite enforces neither
length nor range, PostgreSQL both."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from streaming.audio.talk_writer import TalkWriter
from streaming.live.call import MAX_LIVE_SPEAKERS, SLACK_FRAMES
from streaming.live.registry import LIVE
from streaming.metrics import INGEST
from streaming.models import Call, CallState, Participant, TalkSecond, Utterance
from streaming.services import MAX_PARTICIPANTS
from streaming.units import TICKS_PER_SECOND
from tests.helpers import (
    acs_socket,
    audio_data,
    audio_metadata,
    frame_timestamp,
    page_socket,
    quiet_frame,
    transcription_data,
    transcription_metadata,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"
NEAR_A_DAY = (24 * 3600 - 60) * TICKS_PER_SECOND
LONG_PHONE = "4:+1" + "5" * 246  # 250 characters: more than a label's 200, within the id's 300


async def _until_stored(call: Call, count: int, within: float = 30) -> None:
    import asyncio

    for _ in range(int(within * 20)):
        if await Utterance.objects.filter(call=call).acount() >= count:
            return
        await asyncio.sleep(0.05)


@pytest.mark.django_db(transaction=True)
async def test_many_speakers_at_far_offsets_are_stored_but_not_followed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """400 finals from 400 speakers, near 24 h into the call: every one is stored (the
    transcript), at most 100 become participants, and the live figures follow at most 32
    speakers over the call's own length, not a day of frames each."""
    capped = INGEST.capped
    acs = acs_socket("many-speakers")
    assert (await acs.connect())[0]
    await acs.send_to(text_data=transcription_metadata("many-speakers"))
    with caplog.at_level(logging.WARNING):
        for n in range(400):
            await acs.send_to(
                text_data=transcription_data(
                    f"final {n}", offset=NEAR_A_DAY + n, duration=10_000, speaker=f"4:+1555{n:07d}"
                )
            )
        call = await Call.objects.aget(connection_id="many-speakers")
        await _until_stored(call, 400)
        live = LIVE.calls[call.pk]
        followed = {**live.audio_tracks, **live.utterance_tracks}
        assert len(followed) <= MAX_LIVE_SPEAKERS
        assert all(len(t.data) <= 64 * 50 + SLACK_FRAMES * 2 for t in followed.values())
        figures = live.figures(0.0)
        assert figures.duration < 24 * 3600 * 50  # a far offset is not the call's length
        await acs.disconnect()
    assert await Utterance.objects.filter(call=call).acount() == 400
    assert await Participant.objects.filter(call=call).acount() == MAX_PARTICIPANTS
    assert INGEST.capped > capped
    assert caplog.text.count("not added, nor any more") == 1  # said once, not 300 times
    assert caplog.text.count("live figures leave out") <= 2


@pytest.mark.django_db(transaction=True)
async def test_a_thousand_participants_cost_the_wall_kilobytes(supervisor: Any) -> None:
    """Each participant joining is a delta, and a call has at most 100 of them: the wall of a
    call whose stream names 1000 gets tens of kilobytes, not the whole list each time."""
    wall = await page_socket(supervisor)
    assert (await wall.connect())[0]
    acs = acs_socket("crowded")
    assert (await acs.connect())[0]
    for n in range(1000):
        await acs.send_to(
            text_data=transcription_data(
                "mm", offset=n * 1000, duration=1000, speaker=f"4:+1{n:010d}"
            )
        )
    await acs.disconnect()
    received = 0
    while not wall.output_queue.empty():
        message = wall.output_queue.get_nowait()
        received += len(message.get("text") or "")
    await wall.disconnect()
    assert 0 < received < 200_000


@pytest.mark.django_db(transaction=True)
async def test_audio_stamped_far_ahead_is_refused_with_a_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acs = acs_socket("far-audio")
    assert (await acs.connect())[0]
    await acs.send_to(text_data=audio_metadata())
    with caplog.at_level(logging.WARNING, logger="streaming.ingest"):
        for i in range(3):
            await acs.send_to(text_data=audio_data(quiet_frame(), index=i, speaker="8:acs:a"))
        far = frame_timestamp(0, start_ms=30 * 3600 * 1000)
        await acs.send_to(text_data=audio_data(quiet_frame(), timestamp=far, speaker="8:acs:a"))
        await acs.disconnect()
    assert "more than 24 h after the call's first audio" in caplog.text
    seconds = [s async for s in TalkSecond.objects.values_list("second", flat=True)]
    assert seconds == [0]


@pytest.mark.django_db(transaction=True)
async def test_one_bad_talk_second_costs_only_itself() -> None:
    """A bucket the database refuses (on PostgreSQL an integer out of range) is dropped and
    counted; the other calls' buckets of the same batch are stored."""
    from streaming import services
    from streaming.audio.timeline import ActivitySecond

    a = await database_sync_to_async(services.call_stream_opened)(connection_id="innocent-a")
    b = await database_sync_to_async(services.call_stream_opened)(connection_id="innocent-b")
    writer = TalkWriter()
    bucket = ActivitySecond(0, frames=50, voiced_mask=1)
    writer.add(a["id"], None, "8:acs:a", [bucket])
    writer.add(b["id"], None, "8:acs:b", [ActivitySecond(2**31 + 5, frames=50)])
    writer.add(b["id"], None, "8:acs:b", [ActivitySecond(1, frames=50)])
    await writer.flush()
    stored = {(t.call_id, t.second) async for t in TalkSecond.objects.all()}
    assert {(a["id"], 0), (b["id"], 1)} <= stored
    assert writer.written + writer.dropped == 3
    from django.db import connection

    if connection.vendor == "postgresql":  # SQLite stores any integer
        assert (writer.written, writer.dropped) == (2, 1)


@pytest.mark.django_db
def test_a_long_phone_id_keeps_its_finals_and_its_callbacks(client: Client) -> None:
    """A 250-character phone id (the parser takes up to 300) gets a participant with a label
    cut to fit, and a ParticipantsUpdated naming it is applied, not a 500."""
    from streaming import services

    call = services.call_stream_opened(connection_id="long-id")
    caption, created = services.utterance_record(
        call_id=call["id"],
        participant_raw_id=LONG_PHONE,
        text="hello",
        confidence=0.9,
        offset_ticks=0,
        duration_ticks=10_000,
        words=[],
        source="acs",
    )
    assert created
    assert caption["participant"] is not None
    assert len(caption["participant"]["label"]) <= 200
    managed = Call.objects.create(
        managed=True, callback_id=uuid.uuid4(), state=CallState.CONNECTED, caller="+15550001"
    )
    event = json.loads(
        (FIXTURES / "sdk-python-recorded_media_participants_updated.json").read_text()
    )
    event = copy.deepcopy(event if isinstance(event, list) else [event])
    event[0]["data"]["participants"][0]["identifier"]["rawId"] = LONG_PHONE
    response = client.post(
        f"/acs/callbacks/{managed.callback_id}/?token=tests-only-acs-secret-0123456789",
        data=json.dumps(event),
        content_type="application/json",
    )
    assert response.status_code in (200, 204), response.content
    assert managed.participants.filter(raw_id=LONG_PHONE).exists()
