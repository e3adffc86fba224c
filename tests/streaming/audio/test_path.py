"""ACS audio through the real ingest consumer to talk buckets, events and utterances.

The scripted ``fake`` recognizer (tests' default) turns each loud stretch of a stream into one
utterance, so what gets stored is known exactly; the pocketsphinx backend has its own tests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from channels.layers import get_channel_layer

from streaming.events import call_group
from streaming.models import Call, CallEvent, TalkSecond, TranscriptSource, Utterance
from streaming.recognizers import reset_recognizer
from streaming.recognizers.fake import FakeRecognizer
from streaming.units import FRAME_TICKS, TICKS_PER_SECOND
from tests.helpers import (
    acs_socket,
    audio_data,
    audio_metadata,
    quiet_frame,
    tone_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = "8:acs:agent-0001"
CUSTOMER = "4:+15551230000"


@pytest.fixture
def fake() -> Any:
    recognizer = FakeRecognizer(options={"script": "hello there|how can I help"})
    reset_recognizer(recognizer, "fake")
    yield recognizer
    reset_recognizer()


async def _utterances(call: str) -> list[Utterance]:
    return [
        u
        async for u in Utterance.objects.filter(call__connection_id=call)
        .select_related("participant")
        .order_by("offset_ticks", "pk")
    ]


async def _send_dialogue(communicator: Any, rate: int = 16000) -> None:
    """Agent talks 0-1 s, customer 1.2-2.2 s; both streams send a frame every 20 ms."""
    for i in range(150):
        agent_loud = i < 50
        customer_loud = 60 <= i < 110
        for speaker, loud in ((AGENT, agent_loud), (CUSTOMER, customer_loud)):
            pcm = tone_frame(rate) if loud else quiet_frame(rate)
            await communicator.send_to(
                text_data=audio_data(pcm, index=i, speaker=speaker, silent=not loud)
            )


async def test_unmixed_audio_becomes_utterances_of_the_right_speakers(fake: Any) -> None:
    communicator = acs_socket("audio-1")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_metadata())
    await _send_dialogue(communicator)
    await communicator.disconnect()

    utterances = await _utterances("audio-1")
    assert [(u.participant and u.participant.raw_id, u.text) for u in utterances] == [
        (AGENT, "hello there"),
        (CUSTOMER, "hello there"),
    ]
    agent, customer = utterances
    assert (agent.offset_ticks, agent.duration_ticks) == (0, TICKS_PER_SECOND)
    assert (customer.offset_ticks, customer.duration_ticks) == (60 * FRAME_TICKS, TICKS_PER_SECOND)
    assert agent.source == TranscriptSource.RECOGNIZER
    assert agent.confidence == pytest.approx(0.9)
    assert [w["text"] for w in agent.words] == ["hello", "there"]
    assert agent.words[0]["confidence"] == pytest.approx(0.9)
    call = await Call.objects.aget(connection_id="audio-1")
    assert call.transcript_source == TranscriptSource.RECOGNIZER
    assert call.sample_rate == 16000
    assert call.audio_origin is not None


async def test_talk_time_is_counted_per_participant_per_second(fake: Any) -> None:
    communicator = acs_socket("audio-2")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_metadata())
    await _send_dialogue(communicator)
    await communicator.disconnect()

    rows = [
        (t.stream, t.second, t.frames, t.voiced_frames)
        async for t in TalkSecond.objects.filter(call__connection_id="audio-2").order_by(
            "stream", "second"
        )
    ]
    # 150 frames = 3 s per stream; agent loud in frames 0-49, customer in 60-109.
    assert rows == [
        (CUSTOMER, 0, 50, 0),
        (CUSTOMER, 1, 50, 40),
        (CUSTOMER, 2, 50, 10),
        (AGENT, 0, 50, 50),
        (AGENT, 1, 50, 0),
        (AGENT, 2, 50, 0),
    ]
    second_one = await TalkSecond.objects.aget(
        call__connection_id="audio-2", stream=CUSTOMER, second=1
    )
    assert second_one.voiced_mask == ((1 << 50) - 1) & ~((1 << 10) - 1)
    assert second_one.participant_id is not None


async def test_interim_results_reach_the_call_group(fake: Any) -> None:
    communicator = acs_socket("audio-3")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_metadata())
    await communicator.send_to(text_data=audio_data(tone_frame(), index=0, speaker=AGENT))
    call = await Call.objects.aget(connection_id="audio-3")
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(call_group(call.pk), channel)
    for i in range(1, 40):
        await communicator.send_to(text_data=audio_data(tone_frame(), index=i, speaker=AGENT))
    for i in range(40, 60):
        await communicator.send_to(text_data=audio_data(quiet_frame(), index=i, speaker=AGENT))
    await communicator.disconnect()
    kinds = []
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), 0.5)
        except TimeoutError:
            break
        kinds.append(message["type"])
        if message["type"] == "caption.interim":
            assert message["caption"]["participant"]["raw_id"] == AGENT
            assert message["caption"]["final"] is False
    assert "caption.interim" in kinds
    assert "caption.final" in kinds
    assert kinds.index("caption.interim") < kinds.index("caption.final")


async def test_mixed_audio_is_one_stream_with_diarized_speakers(fake: Any) -> None:
    communicator = acs_socket("audio-mixed")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_metadata(24000))
    for i in range(80):
        pcm = tone_frame(24000) if i < 30 else quiet_frame(24000)
        await communicator.send_to(text_data=audio_data(pcm, index=i))
    await communicator.disconnect()
    (utterance,) = await _utterances("audio-mixed")
    assert utterance.text == "hello there"
    assert utterance.duration_ticks == 30 * FRAME_TICKS
    # The fake labels mixed-audio speakers as a diarizing service would.
    assert utterance.participant is not None
    assert utterance.participant.raw_id == "speaker:Guest-1"
    rows = [t async for t in TalkSecond.objects.filter(call__connection_id="audio-mixed")]
    assert {t.stream for t in rows} == {""}
    assert sum(t.frames for t in rows) == 80


async def test_audio_before_metadata_and_bad_formats_are_rejected(
    fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "streaming")
    communicator = acs_socket("audio-4")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_data(tone_frame(), index=0, speaker=AGENT))
    await communicator.send_to(text_data=audio_metadata(8000))
    await communicator.send_to(text_data=audio_data(tone_frame(), index=1, speaker=AGENT))
    await communicator.send_to(text_data=audio_metadata(16000, channels=2))
    await communicator.send_to(text_data=audio_metadata(16000, encoding="opus"))
    await communicator.send_to(text_data=audio_metadata())
    await communicator.send_to(text_data=audio_data(b"\x01\x02\x03", index=2, speaker=AGENT))
    await communicator.send_to(text_data=audio_data(tone_frame(), index=3, speaker=AGENT))
    # The socket is still open and usable.
    assert await communicator.receive_nothing(0.1)
    await communicator.disconnect()
    (summary,) = [r.getMessage() for r in caplog.records if "frames rejected" in r.getMessage()]
    assert "6 of 8 frames rejected" in summary
    assert "'AudioData before a usable AudioMetadata': 2" in summary
    assert "unsupported sample rate 8000" in summary
    assert "unsupported channel count 2" in summary
    assert "unsupported audio encoding 'OPUS'" in summary
    assert "non-empty, even number of bytes" in summary
    assert await TalkSecond.objects.filter(call__connection_id="audio-4").acount() == 1


async def test_format_change_mid_call_restarts_sessions_and_keeps_the_timeline(
    fake: Any,
) -> None:
    communicator = acs_socket("audio-5")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_metadata(16000))
    for i in range(40):
        pcm = tone_frame(16000) if i < 20 else quiet_frame(16000)
        await communicator.send_to(text_data=audio_data(pcm, index=i, speaker=AGENT))
    await communicator.send_to(text_data=audio_metadata(24000))
    for i in range(40, 80):
        pcm = tone_frame(24000) if i < 60 else quiet_frame(24000)
        await communicator.send_to(text_data=audio_data(pcm, index=i, speaker=AGENT))
    await communicator.disconnect()
    utterances = await _utterances("audio-5")
    assert [(u.offset_ticks, u.duration_ticks) for u in utterances] == [
        (0, 20 * FRAME_TICKS),
        (40 * FRAME_TICKS, 20 * FRAME_TICKS),
    ]
    assert len(fake.opened) == 2
    assert [s.config.sample_rate for s in fake.opened] == [16000, 24000]
    call = await Call.objects.aget(connection_id="audio-5")
    assert call.sample_rate == 16000  # the rate the call's audio started with


async def test_gaps_are_recorded_and_keep_results_on_the_call_timeline(fake: Any) -> None:
    communicator = acs_socket("audio-6")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_metadata())
    for i in range(20):
        await communicator.send_to(text_data=audio_data(quiet_frame(), index=i, speaker=AGENT))
    # Five seconds of audio never arrive; then the agent speaks for 0.6 s.
    for i in range(270, 330):
        pcm = tone_frame() if i < 300 else quiet_frame()
        await communicator.send_to(text_data=audio_data(pcm, index=i, speaker=AGENT))
    await communicator.disconnect()
    (utterance,) = await _utterances("audio-6")
    assert utterance.offset_ticks == 270 * FRAME_TICKS
    assert utterance.duration_ticks == 30 * FRAME_TICKS
    gaps = [e async for e in CallEvent.objects.filter(call__connection_id="audio-6")]
    assert [(g.type, g.data["start_ticks"], g.data["end_ticks"]) for g in gaps] == [
        ("audio.gap", 20 * FRAME_TICKS, 270 * FRAME_TICKS)
    ]


async def test_replayed_frames_are_dropped(fake: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "streaming")
    communicator = acs_socket("audio-7")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=audio_metadata())
    frames = [
        audio_data(tone_frame() if i < 20 else quiet_frame(), index=i, speaker=AGENT)
        for i in range(40)
    ]
    for frame in frames[:30]:
        await communicator.send_to(text_data=frame)
    for frame in frames[10:40]:  # frames 10-29 again, as after a reconnect, then the rest
        await communicator.send_to(text_data=frame)
    await communicator.disconnect()
    (utterance,) = await _utterances("audio-7")
    assert (utterance.offset_ticks, utterance.duration_ticks) == (0, 20 * FRAME_TICKS)
    rows = [t async for t in TalkSecond.objects.filter(call__connection_id="audio-7")]
    assert sum(t.frames for t in rows) == 40
    assert "'late frame': 20" in caplog.text


async def test_a_reconnected_stream_continues_the_call_timeline(fake: Any) -> None:
    first = acs_socket("audio-8")
    assert (await first.connect())[0]
    await first.send_to(text_data=audio_metadata())
    for i in range(30):
        pcm = tone_frame() if i < 15 else quiet_frame()
        await first.send_to(text_data=audio_data(pcm, index=i, speaker=AGENT))
    await first.disconnect()
    second = acs_socket("audio-8")
    assert (await second.connect())[0]
    await second.send_to(text_data=audio_metadata())
    for i in range(100, 130):
        pcm = tone_frame() if i < 115 else quiet_frame()
        await second.send_to(text_data=audio_data(pcm, index=i, speaker=AGENT))
    await second.disconnect()
    assert [u.offset_ticks for u in await _utterances("audio-8")] == [0, 100 * FRAME_TICKS]


async def test_dtmf_is_stored_once_as_call_events(fake: Any) -> None:
    import json

    communicator = acs_socket("audio-9")
    assert (await communicator.connect())[0]
    tone = {
        "kind": "DtmfData",
        "dtmfData": {
            "data": "5",
            "timestamp": "2024-11-15T19:16:13.000Z",
            "participantRawID": CUSTOMER,
        },
    }
    for _ in range(2):  # a replay must not store the tone twice
        await communicator.send_to(text_data=json.dumps(tone))
    await communicator.send_to(
        text_data=json.dumps({"kind": "DtmfData", "dtmfData": {"data": "#"}})
    )
    await communicator.disconnect()
    events = [e async for e in CallEvent.objects.filter(type="DtmfData").order_by("pk")]
    # Masked by default (CALLSITE_DTMF_DIGITS=mask): the fact, who and when are kept.
    assert [(e.data["tone"], e.data["participant"]) for e in events] == [
        ("•", CUSTOMER),
        ("•", None),
    ]
    assert events[0].time is not None
    assert events[0].time.isoformat() == "2024-11-15T19:16:13+00:00"


async def _until_gaps(count: int, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while await CallEvent.objects.filter(type="recognition.gap").acount() < count:
        assert asyncio.get_running_loop().time() < deadline, f"gap {count} never marked"
        await asyncio.sleep(0.02)


async def test_a_failing_recognizer_is_restarted_and_the_gap_marked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "streaming")
    recognizer = FakeRecognizer(options={"fail_after": "1"})
    reset_recognizer(recognizer, "fake")
    try:
        communicator = acs_socket("audio-10")
        assert (await communicator.connect())[0]
        await communicator.send_to(text_data=audio_metadata())
        for burst in range(3):  # three utterances, each session fails after its first
            for i in range(40):
                index = burst * 40 + i
                pcm = tone_frame() if i < 20 else quiet_frame()
                await communicator.send_to(text_data=audio_data(pcm, index=index, speaker=AGENT))
            # ACS paces frames in real time, so the failure is noticed before the next
            # utterance: wait until its gap is marked (on a busy machine that takes longer).
            await _until_gaps(burst + 1)
        await communicator.disconnect()
    finally:
        reset_recognizer()
    utterances = await _utterances("audio-10")
    assert [u.offset_ticks for u in utterances] == [0, 40 * FRAME_TICKS, 80 * FRAME_TICKS]
    assert len(recognizer.opened) == 4  # the first, then one after each failure
    gaps = [e async for e in CallEvent.objects.filter(type="recognition.gap")]
    assert len(gaps) == 3
    assert all("scripted failure" in g.result_message for g in gaps)
    assert "restarting" in caplog.text
    call = await Call.objects.aget(connection_id="audio-10")
    assert call.state == "ended"


async def test_recognizer_none_only_counts_talk_time(settings: Any) -> None:
    settings.CALLSITE_RECOGNIZER = "none"
    reset_recognizer()
    try:
        communicator = acs_socket("audio-11")
        assert (await communicator.connect())[0]
        await communicator.send_to(text_data=audio_metadata())
        await _send_dialogue(communicator)
        await communicator.disconnect()
    finally:
        reset_recognizer()
    assert await Utterance.objects.acount() == 0
    assert await TalkSecond.objects.filter(call__connection_id="audio-11").acount() == 6
    call = await Call.objects.aget(connection_id="audio-11")
    assert call.transcript_source == TranscriptSource.NONE


async def test_a_reconnect_that_replays_audio_already_received_stores_nothing_twice(
    fake: Any,
) -> None:
    frames = [
        audio_data(tone_frame() if i % 50 < 20 else quiet_frame(), index=i, speaker=AGENT)
        for i in range(150)
    ]
    first = acs_socket("audio-12")
    assert (await first.connect())[0]
    await first.send_to(text_data=audio_metadata())
    for frame in frames[:50]:  # one full second, with one utterance (frames 0-19)
        await first.send_to(text_data=frame)
    await first.disconnect()
    second = acs_socket("audio-12")
    assert (await second.connect())[0]
    await second.send_to(text_data=audio_metadata())
    for frame in frames[10:]:  # ACS replays from frame 10
        await second.send_to(text_data=frame)
    await second.disconnect()
    utterances = await _utterances("audio-12")
    assert [u.offset_ticks for u in utterances] == [0, 50 * FRAME_TICKS, 100 * FRAME_TICKS]
    # Talk time is not counted twice either: 150 frames in all.
    rows = [t async for t in TalkSecond.objects.filter(call__connection_id="audio-12")]
    assert sum(t.frames for t in rows) == 150
