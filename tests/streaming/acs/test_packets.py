"""The pure ACS packet parser: real samples, each protocol quirk, hostile input, and fuzzing."""

from __future__ import annotations

import array
import base64
import copy
import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming.acs.packets import (
    MAX_PACKET_BYTES,
    AudioData,
    AudioMetadata,
    DtmfData,
    Packet,
    PacketError,
    ResultStatus,
    TranscriptionData,
    TranscriptionMetadata,
    Word,
    parse_packet,
)
from streaming.units import TICKS_PER_SECOND
from tests.helpers import field_paths

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"
MAX_TICKS = 2**63 - 1
PACKET_TYPES = (AudioMetadata, AudioData, DtmfData, TranscriptionMetadata, TranscriptionData)

# What parse_packet must make of every fixture; None marks the Event Grid and callback samples,
# which are not streaming packets and must be rejected. A new file fails the test below until
# it is listed here.
EXPECTED_KINDS: dict[str, type | None] = {
    "docs_audio_data_2022_full_640_bytes.json": AudioData,
    "docs_audio_data_truncated.json": AudioData,
    "docs_audio_metadata_16k.json": AudioMetadata,
    "docs_dtmf_data.json": DtmfData,
    "docs_transcription_data_final_absolute_offset.json": TranscriptionData,
    "docs_transcription_metadata.json": TranscriptionMetadata,
    "sdk-java_audio_data.json": AudioData,
    "sdk-java_audio_metadata.json": AudioMetadata,
    "sdk-java_transcription_metadata.json": TranscriptionMetadata,
    "sdk-js_audio_data.json": AudioData,
    "sdk-js_audio_metadata_16k.json": AudioMetadata,
    "sdk-js_dtmf_data.json": DtmfData,
    "sdk-js_legacy_transcription_data_final_absolute_offset.json": TranscriptionData,
    "sdk-js_transcription_data_final.json": TranscriptionData,
    "sdk-js_transcription_data_final_sentiment_language.json": TranscriptionData,
    "sdk-js_transcription_metadata_speech_model_endpoint.json": TranscriptionMetadata,
    "sdk-python_transcription_data_final.json": TranscriptionData,
    "sdk-python_transcription_metadata.json": TranscriptionMetadata,
    "eventgrid_incoming_call_acs_user.json": None,
    "eventgrid_subscription_validation_event.json": None,
    "eventgrid_subscription_validation_response.json": None,
    "sdk-java-recorded_callback_body_call_connected.json": None,
    "sdk-java-recorded_callback_body_media_streaming_started_pcm24k.json": None,
    "sdk-java-recorded_callback_body_media_streaming_stopped_pcm24k.json": None,
    "sdk-java-recorded_callback_body_participants_updated.json": None,
    "sdk-java-recorded_callback_body_transcription_started.json": None,
    "sdk-java-recorded_callback_body_transcription_stopped.json": None,
    "sdk-java-recorded_incoming_call_data_pcm24k_test.json": None,
    "sdk-python-recorded_media_call_connected.json": None,
    "sdk-python-recorded_media_call_disconnected.json": None,
    "sdk-python-recorded_media_incoming_call_data.json": None,
    "sdk-python-recorded_media_participants_updated.json": None,
    "sdk-python-recorded_media_streaming_started.json": None,
    "sdk-python-recorded_media_streaming_stopped.json": None,
    "sdk-python-recorded_transcription_call_connected.json": None,
    "sdk-python-recorded_transcription_call_disconnected.json": None,
    "sdk-python-recorded_transcription_incoming_call_data.json": None,
    "sdk-python-recorded_transcription_participants_updated.json": None,
    "sdk-python-recorded_transcription_started.json": None,
    "sdk-python-recorded_transcription_stopped.json": None,
    "sdk-python-recorded_transcription_updated.json": None,
}
DISCOVERED = sorted(path.name for path in FIXTURES.glob("*.json"))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_fixture(name: str) -> Any:
    """Parse a fixture; typed Any so tests can reach kind-specific fields directly."""
    return parse_packet(fixture(name))


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def rejection(raw: Any) -> PacketError:
    """Parse ``raw`` (a dict is dumped to JSON first) and return the PacketError it must raise."""
    with pytest.raises(PacketError) as info:
        parse_packet(dumps(raw) if isinstance(raw, dict) else raw)
    error = info.value
    assert str(error) == error.reason
    return error


def assert_invariants(packet: Any) -> None:
    """Check the strictness contract on anything the parser accepted."""
    assert isinstance(packet, (*PACKET_TYPES, Word))
    for field in dataclasses.fields(packet):
        value = getattr(packet, field.name)
        if isinstance(value, bool):
            assert field.name == "silent"
        elif isinstance(value, int):
            assert type(value) is int
            assert 0 <= value <= MAX_TICKS
        elif isinstance(value, float):
            assert 0.0 <= value <= 1.0
        elif isinstance(value, datetime):
            assert value.tzinfo is UTC
        elif isinstance(value, tuple):
            for word in value:
                assert_invariants(word)
        elif isinstance(value, dict):
            assert field.name == "options"
            assert all(isinstance(key, str) for key in value)
        else:
            assert value is None or isinstance(value, str)
    if isinstance(packet, AudioMetadata):
        assert packet.sample_rate >= 1
        assert packet.channels >= 1


def parse_or_packet_error(raw: Any) -> None:
    """Parsing either succeeds with a packet that honours the contract or raises PacketError."""
    try:
        packet = parse_packet(raw)
    except PacketError as error:
        failure = error
    else:
        assert_invariants(packet)
        return
    assert failure.reason
    assert str(failure) == failure.reason


# Valid packets that the table tests and the fuzzers mutate.
AUDIO: dict[str, Any] = {
    "kind": "AudioData",
    "audioData": {
        "timestamp": "2024-11-15T19:16:12.925Z",
        "participantRawID": "8:acs:3d20e1de",
        "data": "AQID",
        "silent": False,
    },
}
METADATA: dict[str, Any] = {
    "kind": "AudioMetadata",
    "audioMetadata": {
        "subscriptionId": "89e8cb59",
        "encoding": "PCM",
        "sampleRate": 16000,
        "channels": 1,
        "length": 640,
    },
}
DTMF: dict[str, Any] = {"kind": "DtmfData", "dtmfData": {"data": "3"}}
TRANSCRIPTION_METADATA: dict[str, Any] = json.loads(
    fixture("sdk-js_transcription_metadata_speech_model_endpoint.json")
)
TRANSCRIPTION: dict[str, Any] = json.loads(fixture("sdk-python_transcription_data_final.json"))
# The 2022 private-preview shapes, verbatim from the .NET SDK's parser tests.
LEGACY_METADATA = (
    '{"subscriptionId": "subscriptionId","format": {"encoding": "encodingType",'
    '"sampleRate": 8,"channels": 2,"length": 100.1}}'
)
LEGACY_AUDIO = (
    '{"data": "AQIDBAU=","timestamp": "2022-08-23T11:48:05Z",'
    '"participantId": "participantId","isSilence": false}'
)
BASES: list[dict[str, Any]] = [
    AUDIO,
    METADATA,
    DTMF,
    TRANSCRIPTION_METADATA,
    TRANSCRIPTION,
    json.loads(LEGACY_METADATA),
    json.loads(LEGACY_AUDIO),
]


def changed(base: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the field at ``path`` set to ``value``."""
    result = copy.deepcopy(base)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def without(base: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    """A deep copy of ``base`` with the field at ``path`` removed."""
    result = copy.deepcopy(base)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return result


# --- The sample packets ---------------------------------------------------------------------


def test_every_fixture_file_is_classified() -> None:
    """The glob finds exactly the files listed in EXPECTED_KINDS, so none is skipped silently."""
    assert sorted(EXPECTED_KINDS) == DISCOVERED
    assert sum(kind is not None for kind in EXPECTED_KINDS.values()) == 18


@pytest.mark.parametrize("name", DISCOVERED)
def test_fixture_parses_to_its_kind_or_is_rejected(name: str) -> None:
    """Streaming samples parse to their kind, from bytes and str alike; callback bodies fail."""
    if name not in EXPECTED_KINDS:
        pytest.fail(f"{name} is not classified in EXPECTED_KINDS")
    expected = EXPECTED_KINDS[name]
    raw = fixture(name)
    if expected is None:
        reason = rejection(raw).reason
        assert "JSON object" in reason or "no kind" in reason
        return
    packet = parse_packet(raw)
    assert type(packet) is expected
    assert parse_packet(raw.decode("utf-8")) == packet
    assert_invariants(packet)


def test_python_sdk_final_transcription() -> None:
    """Ticks, words and confidence of the Python SDK sample survive exactly."""
    packet = parse_fixture("sdk-python_transcription_data_final.json")
    assert packet.text == "Is everything fine."
    assert packet.format == "display"
    assert packet.confidence == 0.8138430714607239
    assert packet.offset == 868464674
    assert packet.duration == 11600000
    assert packet.duration / TICKS_PER_SECOND == 1.16
    assert packet.participant_raw_id == "4:+910000000000"
    assert packet.result_status is ResultStatus.FINAL
    assert packet.is_final
    assert packet.sentiment is None
    assert packet.language is None
    assert [word.text for word in packet.words] == ["is", "everything", "fine"]
    assert packet.words[0].offset == packet.offset
    for word, following in zip(packet.words, packet.words[1:], strict=False):
        assert word.offset + word.duration == following.offset
    assert sum(word.duration for word in packet.words) == packet.duration


def test_js_sdk_final_transcription_with_sentiment_and_language() -> None:
    """The newer optional fields come through; word timings add up as in the Python sample."""
    packet = parse_fixture("sdk-js_transcription_data_final_sentiment_language.json")
    assert packet.sentiment == "neutral"
    assert packet.language == "en-US"
    assert packet.confidence == 0.922650933265686
    assert packet.words == (Word("hello", 212483227, 2800000), Word("everyone", 215283227, 6800000))
    assert packet.duration == 9600000
    plain = parse_fixture("sdk-js_transcription_data_final.json")
    assert dataclasses.replace(plain, sentiment="neutral", language="en-US") == packet


def test_docs_absolute_offsets_are_exact() -> None:
    """Offsets beyond 2**53 stay exact ints (a float would round them); no durations is fine."""
    packet = parse_fixture("docs_transcription_data_final_absolute_offset.json")
    assert packet.offset == 2516998782481234400
    assert type(packet.offset) is int
    assert packet.offset > 2**53  # beyond what a float holds exactly
    assert packet.duration is None
    assert packet.words == (
        Word("testing", 2516998782481234400, None),
        Word("testing", 2516998782481234400, None),
    )
    assert packet.participant_raw_id == "8:acs:"
    legacy = parse_fixture("sdk-js_legacy_transcription_data_final_absolute_offset.json")
    assert [word.offset for word in legacy.words] == [2516933652456984600, 2516933652459784700]


def test_transcription_metadata_samples() -> None:
    """Metadata keeps ids verbatim, including the docs' '=' typo, and the custom model id."""
    docs = parse_fixture("docs_transcription_metadata.json")
    assert docs == TranscriptionMetadata(
        subscription_id="aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e",
        locale="en-us",
        call_connection_id="65c57654=f12c-4975-92a4-21668e61dd98",
        correlation_id="65c57654=f12c-4975-92a4-21668e61dd98",
        speech_model_endpoint_id=None,
    )
    custom = parse_fixture("sdk-js_transcription_metadata_speech_model_endpoint.json")
    assert custom.speech_model_endpoint_id == "0000a000-9999-5555-ae00-cd00e0bc0001"
    python = parse_fixture("sdk-python_transcription_metadata.json")
    assert dataclasses.replace(custom, speech_model_endpoint_id=None) == python
    java = parse_fixture("sdk-java_transcription_metadata.json")
    assert (java.call_connection_id, java.correlation_id) == ("callConnectionId", "correlationId")


def test_audio_metadata_samples() -> None:
    """The docs' 16 kHz metadata and the Java sample's odd values are read as sent."""
    docs = parse_fixture("docs_audio_metadata_16k.json")
    assert docs == AudioMetadata("89e8cb59-b991-48b0-b154-1db84f16a077", "PCM", 16000, 1, 640)
    assert parse_fixture("sdk-js_audio_metadata_16k.json").length == 640
    java = parse_fixture("sdk-java_audio_metadata.json")
    assert (java.sample_rate, java.channels, java.length) == (8, 2, 100)


def test_full_2022_audio_frame_decodes_to_640_bytes() -> None:
    """The 2022 docs frame is 20 ms of 16 kHz 16-bit little-endian PCM."""
    packet = parse_fixture("docs_audio_data_2022_full_640_bytes.json")
    assert packet.timestamp == datetime(2022, 10, 3, 19, 16, 12, 925000, tzinfo=UTC)
    assert packet.participant_raw_id.startswith("8:acs:3d20e1de-0f28-41c5-84a0-4960fde5f411_")
    assert packet.silent is False
    pcm = packet.pcm()
    assert len(pcm) == 640
    samples = array.array("h", pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    assert (min(samples), max(samples)) == (137, 327)


def test_truncated_docs_audio_parses_but_does_not_decode() -> None:
    """Parsing checks only the shape; the ellipsis in the docs' data fails at pcm()."""
    packet = parse_fixture("docs_audio_data_truncated.json")
    assert packet.data == "5ADwAOMA6AD0A\u2026"
    assert packet.participant_raw_id == "8:acs:3d20e1de-0f28-41c5\u2026"
    with pytest.raises(PacketError, match="base64") as info:
        packet.pcm()
    assert info.value.reason.startswith("audioData.data is not valid base64")


def test_sdk_audio_and_dtmf_samples() -> None:
    """SDK audio and DTMF samples: placeholder data is kept, the Java data decodes to 1..5."""
    java = parse_fixture("sdk-java_audio_data.json")
    assert java.pcm() == bytes([1, 2, 3, 4, 5])
    assert java.participant_raw_id == "participantId"
    js = parse_fixture("sdk-js_audio_data.json")
    assert js.data == "test"
    assert js.participant_raw_id == "28:6b45c5b6-1c34-47c0-8980-11e98d47d23f"
    assert js.timestamp == datetime(2024, 5, 30, 6, 25, 2, 948000, tzinfo=UTC)
    assert parse_fixture("docs_dtmf_data.json") == DtmfData("3", None, None)
    assert parse_fixture("sdk-js_dtmf_data.json") == DtmfData("test", None, None)


# --- Quirks that must be accepted -----------------------------------------------------------


ACCEPTED = [
    pytest.param(
        {
            "Kind": "AudioData",
            "AudioData": {"Data": "AQID", "ParticipantRawId": "p", "Silent": True},
        },
        {"data": "AQID", "participant_raw_id": "p", "silent": True},
        id="pascal-case-keys",
    ),
    pytest.param(
        changed(AUDIO, ("kind",), "AUDIODATA"), {"data": "AQID"}, id="kind-value-upper-case"
    ),
    pytest.param(changed(AUDIO, ("kind",), "audioData"), {"data": "AQID"}, id="kind-value-js"),
    pytest.param(
        {"kind": "AudioData", "audioData": {"data": "AQID", "participantRawId": "java"}},
        {"participant_raw_id": "java", "silent": False, "timestamp": None},
        id="java-participantRawId-and-missing-silent",
    ),
    pytest.param(
        {"kind": "AudioData", "audioData": {"data": "", "participantRawID": None, "silent": None}},
        {"data": "", "participant_raw_id": None, "silent": False},
        id="null-optionals",
    ),
    pytest.param(
        # The documented outbound shape: PascalCase, with a null StopAudio beside the payload.
        {"Kind": "AudioData", "AudioData": {"Data": "AQID"}, "StopAudio": None},
        {"data": "AQID"},
        id="outbound-docs-shape",
    ),
    pytest.param({"audioData": {"data": "AQID"}}, {"data": "AQID"}, id="no-kind-java-style-audio"),
    pytest.param({"dtmfData": {"data": "5"}}, {"data": "5"}, id="no-kind-dtmf"),
    pytest.param(
        {"TranscriptionData": TRANSCRIPTION["transcriptionData"], "audioData": None},
        {"offset": 868464674},
        id="no-kind-transcription-with-null-sibling",
    ),
    pytest.param(
        {"kind": None, "audioMetadata": METADATA["audioMetadata"]},
        {"sample_rate": 16000},
        id="null-kind-one-payload",
    ),
    pytest.param(
        {"kind": "AudioMetadata", "audioMetadata": {"encoding": "Pcm", "sampleRate": 24000}},
        {"encoding": "PCM", "sample_rate": 24000, "channels": 1, "length": None},
        id="metadata-case-and-defaults",
    ),
    pytest.param(
        changed(METADATA, ("audioMetadata", "length"), 960.0),
        {"length": 960},
        id="integral-float-length",
    ),
    pytest.param(
        LEGACY_METADATA,
        {
            "subscription_id": "subscriptionId",
            "encoding": "ENCODINGTYPE",
            "sample_rate": 8,
            "channels": 2,
            "length": None,
        },
        id="legacy-2022-metadata-float-length",
    ),
    pytest.param(
        LEGACY_AUDIO,
        {
            "data": "AQIDBAU=",
            "timestamp": datetime(2022, 8, 23, 11, 48, 5, tzinfo=UTC),
            "participant_raw_id": "participantId",
            "silent": False,
        },
        id="legacy-2022-audio",
    ),
    pytest.param(
        {"data": "AQID", "isSilence": True}, {"silent": True}, id="legacy-2022-audio-minimal"
    ),
    pytest.param(
        {
            "kind": "TranscriptionData",
            "transcriptionData": {
                "text": "store hours",
                "format": "display",
                "offset": 49876484,
                "duration": 9200000,
                "participantRawID": "abc12345",
                "resultStatus": "Intermediate",
            },
        },
        {"words": (), "confidence": None, "result_status": ResultStatus.INTERMEDIATE},
        id="dotnet-intermediate-without-words-or-confidence",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "resultStatus"), "final"),
        {"is_final": True},
        id="result-status-lower-case",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "resultStatus"), "INTERMEDIATE"),
        {"is_final": False},
        id="result-status-upper-case",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "format"), "Display"),
        {"format": "display"},
        id="format-capitalised",
    ),
    pytest.param(
        without(TRANSCRIPTION, ("transcriptionData", "format")),
        {"format": "display"},
        id="format-missing",
    ),
    pytest.param(
        changed(
            TRANSCRIPTION, ("transcriptionData", "sentimentAnalysisResult"), {"Sentiment": "Mixed"}
        ),
        {"sentiment": "mixed"},
        id="sentiment-any-case",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "confidence"), 1),
        {"confidence": 1.0},
        id="confidence-integer-one",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "words"), None),
        {"words": ()},
        id="words-null",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "offset"), MAX_TICKS),
        {"offset": MAX_TICKS},
        id="offset-max-bigint",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "offset"), 100.0),
        {"offset": 100},
        id="offset-integral-float",
    ),
    pytest.param(
        {
            **changed(TRANSCRIPTION_METADATA, ("transcriptionMetadata", "piiRedactionOptions"), {}),
            "unknownTopLevel": [1, {"x": None}],
        },
        {"locale": "en-US"},
        id="unknown-fields-ignored",
    ),
    pytest.param(
        changed(TRANSCRIPTION, ("transcriptionData", "words", 0, "confidence"), "high"),
        {"offset": 868464674},
        id="unknown-word-field-ignored",
    ),
    pytest.param(
        {
            "kind": "DtmfData",
            "KIND": "AudioData",
            "dtmfData": {"data": "1"},
            "audioData": {"data": ""},
        },
        {"data": "", "silent": False},
        id="case-duplicate-keys-last-wins",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_quirk_is_accepted(raw: Any, expected: dict[str, Any]) -> None:
    """Case variants, missing or null optionals, unknown fields and old shapes all parse."""
    text = raw if isinstance(raw, str) else dumps(raw)
    packet = parse_packet(text)
    assert_invariants(packet)
    for name, value in expected.items():
        assert getattr(packet, name) == value, name


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda data: data.decode(), id="str"),
        pytest.param(lambda data: data, id="bytes"),
        pytest.param(bytearray, id="bytearray"),
        pytest.param(memoryview, id="memoryview"),
        pytest.param(
            lambda data: memoryview(bytes(x for byte in data for x in (byte, 0)))[::2],
            id="strided-memoryview",
        ),
    ],
)
def test_text_and_binary_frames_parse_alike(convert: Any) -> None:
    """ACS may send text or binary frames; every buffer type gives the same packet."""
    text = dumps(changed(TRANSCRIPTION, ("transcriptionData", "text"), "caf\u00e9 \u4e2d"))
    packet = parse_packet(convert(text.encode()))
    assert isinstance(packet, TranscriptionData)
    assert packet.text == "caf\u00e9 \u4e2d"
    assert packet == parse_packet(text)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2022-10-03T19:16:12.925Z", datetime(2022, 10, 3, 19, 16, 12, 925000, tzinfo=UTC)),
        ("2022-10-03T19:16:12Z", datetime(2022, 10, 3, 19, 16, 12, tzinfo=UTC)),
        ("2022-10-03T19:16:12.9Z", datetime(2022, 10, 3, 19, 16, 12, 900000, tzinfo=UTC)),
        ("2025-01-29T12:46:16.0402179+00:00", datetime(2025, 1, 29, 12, 46, 16, 40217, tzinfo=UTC)),
        (
            "2025-01-29T12:46:16.0402179\\u002B00:00",
            datetime(2025, 1, 29, 12, 46, 16, 40217, tzinfo=UTC),
        ),
        ("2022-10-03T19:16:12.925", datetime(2022, 10, 3, 19, 16, 12, 925000, tzinfo=UTC)),
        ("2022-10-03T21:16:12.925+02:00", datetime(2022, 10, 3, 19, 16, 12, 925000, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(stamp: str, expected: datetime) -> None:
    """Z, +00:00 (even escaped), 7-digit fractions, offsets and naive times all end up in UTC."""
    raw = '{"kind":"AudioData","audioData":{"data":"","timestamp":"' + stamp + '"}}'
    packet = parse_packet(raw)
    assert isinstance(packet, AudioData)
    assert packet.timestamp == expected
    assert packet.timestamp is not None
    assert packet.timestamp.tzinfo is UTC


# --- Input that must be rejected ------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
MISSING = object()


def bad_field(base: dict[str, Any], path: str, value: Any, case: str, tail: str = "") -> Any:
    """A rejection case: ``base`` with the field at dotted ``path`` set or removed.

    The expected reason fragment is the field's name as the parser reports it, plus ``tail``.
    """
    steps = tuple(int(step) if step.isdigit() else step for step in path.split("."))
    raw = without(base, steps) if value is MISSING else changed(base, steps, value)
    return pytest.param(raw, re.sub(r"\.(\d+)", r"[\1]", path) + tail, id=case)


T, M, A = TRANSCRIPTION, METADATA, AUDIO
REJECTED = [
    bad_field(T, "transcriptionData.offset", True, "bool-offset"),
    bad_field(M, "audioMetadata.sampleRate", True, "bool-sample-rate"),
    bad_field(M, "audioMetadata.channels", False, "bool-channels"),
    bad_field(T, "transcriptionData.offset", -1, "negative-offset"),
    bad_field(T, "transcriptionData.words.1.duration", -5, "negative-word-duration"),
    bad_field(T, "transcriptionData.duration", 1.5, "fractional-duration"),
    bad_field(
        T,
        "transcriptionData.offset",
        "abc",
        "string-offset",
        " must be a non-negative integer, got 'abc'",
    ),
    bad_field(T, "transcriptionData.offset", "123", "numeric-string-offset"),
    bad_field(T, "transcriptionData.offset", 2**63, "beyond-bigint", " must be at most 2**63-1"),
    bad_field(T, "transcriptionData.words.0.offset", 10**30, "huge-word-offset"),
    bad_field(T, "transcriptionData.confidence", 1.5, "confidence-above-one"),
    bad_field(T, "transcriptionData.confidence", -0.1, "confidence-negative"),
    bad_field(T, "transcriptionData.confidence", "0.9", "confidence-string"),
    bad_field(T, "transcriptionData.confidence", True, "confidence-bool"),
    bad_field(M, "audioMetadata.sampleRate", 0, "sample-rate-zero"),
    bad_field(M, "audioMetadata.channels", 0, "channels-zero"),
    bad_field(M, "audioMetadata.length", -640, "length-negative"),
    bad_field(M, "audioMetadata.encoding", 1, "encoding-number"),
    bad_field(M, "audioMetadata.sampleRate", MISSING, "sample-rate-missing", " is missing"),
    bad_field(T, "transcriptionData.text", MISSING, "text-missing", " is missing"),
    bad_field(T, "transcriptionData.text", 42, "text-number"),
    bad_field(T, "transcriptionData.resultStatus", MISSING, "status-missing", " is missing"),
    bad_field(T, "transcriptionData.resultStatus", "Done", "status-unknown"),
    bad_field(T, "transcriptionData.words", "is everything", "words-string"),
    bad_field(T, "transcriptionData.words.2", "fine", "word-not-object"),
    bad_field(T, "transcriptionData.words.1.text", MISSING, "word-text-missing", " is missing"),
    bad_field(T, "transcriptionData.sentimentAnalysisResult", "neutral", "sentiment-string"),
    bad_field(T, "transcriptionData.participantRawID", 4, "participant-number"),
    bad_field(A, "audioData.data", MISSING, "audio-data-missing", " is missing"),
    bad_field(A, "audioData.data", [1, 2], "audio-data-array"),
    bad_field(A, "audioData.silent", "false", "silent-string"),
    bad_field(A, "audioData.silent", 0, "silent-zero"),
    bad_field(A, "audioData.timestamp", "yesterday", "timestamp-text"),
    bad_field(A, "audioData.timestamp", 1664824572925, "timestamp-epoch-number"),
    bad_field(A, "audioData.timestamp", "0001-01-01T00:00:00+01:00", "timestamp-overflow"),
    bad_field(DTMF, "dtmfData.data", MISSING, "dtmf-data-missing", " is missing"),
    bad_field(DTMF, "dtmfData.timestamp", {}, "dtmf-timestamp-object"),
    bad_field(TRANSCRIPTION_METADATA, "transcriptionMetadata.locale", ["en"], "locale-array"),
    bad_field(A, "kind", 7, "kind-number", " must be a string"),
    pytest.param(
        dumps(T).replace("0.8138430714607239", "NaN"),
        "transcriptionData.confidence",
        id="confidence-nan",
    ),
    pytest.param(
        dumps(T).replace("868464674,", "Infinity,", 1),
        "transcriptionData.offset",
        id="offset-infinity",
    ),
    pytest.param(dumps(M).replace("16000", "NaN"), "audioMetadata.sampleRate", id="rate-nan"),
    pytest.param(changed(A, ("kind",), "StopAudio"), "unknown packet kind 'StopAudio'", id="kind"),
    pytest.param(changed(DTMF, ("kind",), "DtmfMetadata"), "DtmfMetadata", id="dtmf-metadata"),
    pytest.param({"kind": "AudioData"}, "audioData is missing", id="payload-missing"),
    pytest.param({"kind": "AudioData", "audioData": "AQID"}, "audioData must be", id="payload-str"),
    pytest.param({"audioData": {}, "dtmfData": {}}, "several payloads", id="two-payloads"),
    pytest.param({"validationResponse": "512d38b6"}, "no kind", id="no-kind-no-payload"),
    pytest.param({"format": {}}, "format.sampleRate is missing", id="legacy-no-rate"),
    pytest.param("[]", "JSON object", id="json-array"),
    pytest.param('"AudioData"', "JSON object", id="json-string"),
    pytest.param("42", "JSON object", id="json-number"),
    pytest.param("null", "JSON object", id="json-null"),
    pytest.param("", "not valid JSON", id="empty"),
    pytest.param('{"kind": "AudioData",', "not valid JSON", id="truncated-json"),
    pytest.param(b"\xef\xbb\xbf" + dumps(DTMF).encode(), "not valid JSON", id="utf8-bom"),
    pytest.param(b"\xff\xfe\x00{", "UTF-8", id="invalid-utf8"),
    pytest.param(dumps(DTMF).encode("utf-16"), "UTF-8", id="utf16-json"),
    pytest.param(dumps(DTMF).replace("3", "\xe9").encode("latin-1"), "UTF-8", id="latin1-json"),
    pytest.param(DEEP, "nested too deeply", id="deep-array"),
    pytest.param(dumps(DTMF)[:-1] + ',"x":' + DEEP + "}", "nested too deeply", id="deep-field"),
    pytest.param(
        dumps(T).replace("868464674,", "1" * 5000 + ",", 1), "too many digits", id="5000-digits"
    ),
    pytest.param(None, "text or bytes", id="none-input"),
    pytest.param(12, "text or bytes", id="int-input"),
    pytest.param(["{}"], "text or bytes", id="list-input"),
]


@pytest.mark.parametrize(("raw", "fragment"), REJECTED)
def test_bad_input_is_rejected_with_a_reason(raw: Any, fragment: str) -> None:
    """Wrong types, ranges, kinds, shapes, encodings and nesting raise PacketError naming why."""
    error = rejection(raw)
    assert fragment in error.reason
    assert len(error.reason) < 160


def test_packet_error_is_a_value_error_carrying_its_reason() -> None:
    """PacketError is a ValueError whose str() is its reason."""
    error = PacketError("kind must be a string, got 7")
    assert isinstance(error, ValueError)
    assert error.reason == str(error) == "kind must be a string, got 7"


def test_echoed_values_are_truncated() -> None:
    """A huge bad value is echoed in at most 40 characters."""
    error = rejection(changed(TRANSCRIPTION, ("transcriptionData", "offset"), "9" * 100_000))
    assert error.reason.startswith(
        "transcriptionData.offset must be a non-negative integer, got '99"
    )
    echoed = error.reason.split(", got ", 1)[1]
    assert echoed.endswith("...")
    assert len(echoed) <= 40


def test_size_limit_is_in_bytes_for_text_and_binary() -> None:
    """Exactly MAX_PACKET_BYTES parses; one byte more is refused, even as multi-byte text."""
    base = dumps(DTMF)
    exact = base + " " * (MAX_PACKET_BYTES - len(base))
    assert isinstance(parse_packet(exact), DtmfData)
    assert isinstance(parse_packet(exact.encode()), DtmfData)
    for raw in (exact + " ", (exact + " ").encode(), memoryview((exact + " ").encode())):
        assert "larger than 1048576 bytes" in rejection(raw).reason
    # Fewer characters than the limit, but two bytes each once encoded.
    wide = dumps(changed(DTMF, ("dtmfData", "data"), "\u00e9" * (MAX_PACKET_BYTES // 2)))
    assert len(wide) < MAX_PACKET_BYTES
    assert "larger than" in rejection(wide).reason
    assert "larger than" in rejection(" " * (10 * MAX_PACKET_BYTES)).reason


def test_moderately_nested_unknown_field_is_ignored() -> None:
    """Nesting that json can parse is tolerated inside an unknown field."""
    raw = dumps(DTMF)[:-1] + ',"x":' + "[" * 200 + "]" * 200 + "}"
    assert parse_packet(raw) == DtmfData("3", None, None)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("AQI", "Incorrect padding"),
        ("AQID\nAQID", "Only base64 data is allowed"),
        ("AQ==AQ==", "Excess data after padding"),
        ("AQ\u00e9D", "ASCII"),
    ],
)
def test_pcm_is_strict_base64(data: str, fragment: str) -> None:
    """pcm() refuses anything but canonical base64, with a PacketError naming the field."""
    packet = AudioData(data, None, None, False)
    with pytest.raises(PacketError) as info:
        packet.pcm()
    assert info.value.reason.startswith("audioData.data is not valid base64: ")
    assert fragment in info.value.reason


def test_legacy_audio_decodes() -> None:
    """The 2022 preview audio shape carries the same base64 PCM."""
    packet = parse_packet(LEGACY_AUDIO)
    assert isinstance(packet, AudioData)
    assert packet.pcm() == bytes([1, 2, 3, 4, 5])


# --- Property-based tests -------------------------------------------------------------------


def casings(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper(), name[:1].upper() + name[1:]])


def key_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from key_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from key_names(item)


KNOWN_KEYS = sorted({name for base in BASES for name in key_names(base)})
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=30)
)
json_keys = st.sampled_from(KNOWN_KEYS).flatmap(casings) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=5)
    ),
    max_leaves=25,
)


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_raise_only_packet_error(raw: bytes) -> None:
    """Any bytes either parse to a valid packet or raise PacketError."""
    parse_or_packet_error(raw)


@given(st.text(max_size=4096))
def test_arbitrary_text_raises_only_packet_error(raw: str) -> None:
    """Any text, lone surrogates included, either parses or raises PacketError."""
    parse_or_packet_error(raw)


@given(json_values)
def test_arbitrary_json_raises_only_packet_error(value: Any) -> None:
    """Any JSON document (NaN and huge numbers included) parses or raises PacketError."""
    parse_or_packet_error(dumps(value))


KINDS = ["AudioMetadata", "AudioData", "DtmfData", "TranscriptionMetadata", "TranscriptionData"]


@given(
    st.sampled_from([*KINDS, "Other"]).flatmap(casings),
    st.dictionaries(json_keys, json_values, max_size=8),
)
def test_random_payloads_for_each_kind_raise_only_packet_error(kind: str, payload: Any) -> None:
    """A known kind with a random payload object parses or raises PacketError."""
    parse_or_packet_error(dumps({"kind": kind, kind[:1].lower() + kind[1:]: payload}))


MUTATION_SITES = [(base, path) for base in BASES for path in field_paths(base)]


@given(st.sampled_from(MUTATION_SITES), st.just(MISSING) | json_values)
def test_almost_valid_packets_raise_only_packet_error(site: Any, value: Any) -> None:
    """A valid packet with one field replaced by any JSON value, or removed, parses or fails."""
    base, path = site
    parse_or_packet_error(
        dumps(without(base, path) if value is MISSING else changed(base, path, value))
    )


# Valid packets generated with the values they must parse to.

ticks = st.integers(min_value=0, max_value=MAX_TICKS)
zones = st.just(UTC) | st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Hypothesis wants naive bounds; naive values stand for timestamps sent without an offset.
earliest, latest = datetime(1900, 1, 1), datetime(2200, 1, 1)  # noqa: DTZ001
stamps = st.datetimes(earliest, latest) | st.datetimes(earliest, latest, timezones=zones)


def put(draw: st.DrawFn, wire: dict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` under a random casing of ``key``; None is either omitted or sent as null."""
    if value is None and draw(st.booleans()):
        return
    wire[draw(casings(key))] = value


def stamp_field(draw: st.DrawFn, wire: dict[str, Any]) -> datetime | None:
    """Put a random timestamp (naive, UTC or offset) into ``wire``; return it in UTC."""
    stamp = draw(st.none() | stamps)
    if stamp is None:
        put(draw, wire, "timestamp", None)
        return None
    text = stamp.isoformat()
    put(draw, wire, "timestamp", text.replace("+00:00", "Z") if draw(st.booleans()) else text)
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


# What the parser passes on for storage: no NUL (PostgreSQL refuses it) and no lone surrogate
# (which the parser refuses); participant ids fit their column.
storable = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
stored_text = st.text(alphabet=storable)
participant_ids = st.text(alphabet=storable, max_size=300)


@st.composite
def audio_metadata(draw: st.DrawFn) -> tuple[dict[str, Any], Packet]:
    wire: dict[str, Any] = {}
    expected = AudioMetadata(
        subscription_id=draw(st.none() | st.text()),
        encoding=draw(st.text()),
        sample_rate=draw(st.integers(min_value=1, max_value=MAX_TICKS)),
        channels=draw(st.integers(min_value=1, max_value=MAX_TICKS)),
        length=draw(st.none() | ticks),
    )
    put(draw, wire, "subscriptionId", expected.subscription_id)
    put(draw, wire, "encoding", expected.encoding)
    put(draw, wire, "sampleRate", expected.sample_rate)
    put(draw, wire, "channels", expected.channels)
    put(draw, wire, "length", expected.length)
    return wire, dataclasses.replace(expected, encoding=expected.encoding.upper())


@st.composite
def audio_data(draw: st.DrawFn) -> tuple[dict[str, Any], Packet]:
    wire: dict[str, Any] = {}
    data = base64.b64encode(draw(st.binary(max_size=64))).decode()
    put(draw, wire, "data", data)
    timestamp = stamp_field(draw, wire)
    participant = draw(st.none() | participant_ids)
    put(draw, wire, "participantRawID", participant)
    silent = draw(st.none() | st.booleans())
    put(draw, wire, "silent", silent)
    return wire, AudioData(data, timestamp, participant, bool(silent))


@st.composite
def dtmf_data(draw: st.DrawFn) -> tuple[dict[str, Any], Packet]:
    wire: dict[str, Any] = {}
    data = draw(st.sampled_from("0123456789*#ABCD"))
    put(draw, wire, "data", data)
    timestamp = stamp_field(draw, wire)
    participant = draw(st.none() | participant_ids)
    put(draw, wire, "participantRawID", participant)
    return wire, DtmfData(data, timestamp, participant)


@st.composite
def transcription_metadata(draw: st.DrawFn) -> tuple[dict[str, Any], Packet]:
    wire: dict[str, Any] = {}
    values = [draw(st.none() | st.text()) for _ in range(5)]
    keys = ["subscriptionId", "locale", "callConnectionId", "correlationId"]
    for key, value in zip([*keys, "speechRecognitionModelEndpointId"], values, strict=True):
        put(draw, wire, key, value)
    return wire, TranscriptionMetadata(values[0], values[1], values[2], values[3], values[4])


@st.composite
def transcription_data(draw: st.DrawFn) -> tuple[dict[str, Any], Packet]:
    wire: dict[str, Any] = {}
    words = draw(
        st.lists(st.tuples(stored_text, st.none() | ticks, st.none() | ticks), max_size=5)
    )
    wire_words = []
    for text, offset, duration in words:
        word: dict[str, Any] = {}
        put(draw, word, "text", text)
        put(draw, word, "offset", offset)
        put(draw, word, "duration", duration)
        wire_words.append(word)
    send_empty_words = draw(st.booleans())
    if words or send_empty_words:
        put(draw, wire, "words", wire_words)
    status = draw(st.sampled_from(ResultStatus))
    put(draw, wire, "resultStatus", draw(casings(status.value.capitalize())))
    expected = TranscriptionData(
        text=draw(stored_text),
        format=draw(st.text()),
        confidence=draw(st.none() | st.floats(min_value=0.0, max_value=1.0)),
        offset=draw(st.none() | ticks),
        duration=draw(st.none() | ticks),
        words=tuple(Word(*word) for word in words),
        participant_raw_id=draw(st.none() | participant_ids),
        result_status=status,
        sentiment=draw(st.none() | st.sampled_from(["positive", "Negative", "NEUTRAL", "mixed"])),
        language=draw(
            st.none()
            | st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-", min_size=1, max_size=35)
        ),
    )
    put(draw, wire, "text", expected.text)
    put(draw, wire, "format", expected.format)
    put(draw, wire, "confidence", expected.confidence)
    put(draw, wire, "offset", expected.offset)
    put(draw, wire, "duration", expected.duration)
    put(draw, wire, "participantRawID", expected.participant_raw_id)
    if expected.sentiment is not None:
        put(draw, wire, "sentimentAnalysisResult", {draw(casings("sentiment")): expected.sentiment})
    put(draw, wire, "languageIdentified", expected.language)
    sentiment = None if expected.sentiment is None else expected.sentiment.lower()
    return wire, dataclasses.replace(expected, format=expected.format.lower(), sentiment=sentiment)


GENERATORS = {
    "AudioMetadata": audio_metadata(),
    "AudioData": audio_data(),
    "DtmfData": dtmf_data(),
    "TranscriptionMetadata": transcription_metadata(),
    "TranscriptionData": transcription_data(),
}


@st.composite
def valid_packets(draw: st.DrawFn) -> tuple[dict[str, Any], Packet]:
    kind = draw(st.sampled_from(sorted(GENERATORS)))
    payload, expected = draw(GENERATORS[kind])
    if draw(st.booleans()):
        payload["x-unknown"] = draw(json_values)
    wire: dict[str, Any] = {draw(casings(kind[:1].lower() + kind[1:])): payload}
    if draw(st.booleans()):  # otherwise the Java style, keyed by the payload alone
        wire[draw(casings("kind"))] = draw(casings(kind))
    return wire, expected


@given(valid_packets(), st.booleans())
def test_valid_packets_round_trip(generated: tuple[dict[str, Any], Packet], as_bytes: bool) -> None:
    """Generated packets in any key casing parse to exactly the values they were built from."""
    wire, expected = generated
    # ASCII escapes keep lone surrogates from st.text() representable as UTF-8 bytes.
    raw = json.dumps(wire).encode() if as_bytes else dumps(wire)
    packet = parse_packet(raw)
    assert packet == expected
    assert_invariants(packet)
    if isinstance(packet, AudioData):
        assert base64.b64encode(packet.pcm()).decode() == packet.data


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("text", "a\x00b", "transcriptionData.text must be text without NUL"),
        ("text", "a\ud800b", "transcriptionData.text must be text without NUL"),
        ("participantRawID", "4:\x00", "transcriptionData.participantRawID must be text without"),
        ("participantRawID", "8:acs:" + "x" * 300, "participantRawID must be at most 300"),
    ],
)
def test_text_a_database_cannot_store_is_rejected_with_its_reason(
    field: str, value: str, reason: str
) -> None:
    """NUL (PostgreSQL refuses it), lone surrogates (no UTF-8 holds them) and participant ids
    longer than their column are bad packets, not database errors later."""
    data = {"text": "hello", "resultStatus": "Final", field: value}
    with pytest.raises(PacketError) as caught:
        parse_packet(json.dumps({"kind": "TranscriptionData", "transcriptionData": data}))
    assert reason in caught.value.reason
