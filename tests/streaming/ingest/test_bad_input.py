"""Malformed and hostile frames on the ACS ingest socket, through the real ASGI application.

Every bad frame is counted with its reason (the consumer's ``rejected`` counter, shown in the
summary it logs on close, and the ``INGEST.rejected`` metric) and logged; the socket stays
open, and each valid final sent after it is stored exactly once. A stream that sends nothing
but bad frames is closed with 4008 after ``CALLSITE_BAD_FRAME_CLOSE_LIMIT`` of them in a row.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.acs.packets import PacketError, parse_packet
from streaming.ingest.frames import POLICY_VIOLATION, UNKNOWN_KIND
from streaming.metrics import INGEST
from streaming.models import Utterance
from tests.helpers import acs_socket, audio_data, audio_metadata, field_paths, transcription_data

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"
SPEAKER = "4:+15550100999"  # the valid finals' speaker; no fixture or bad frame uses it
Frame = str | bytes


def final(n: int) -> str:
    """A valid final that only this test sends: distinct text and offset for each ``n``."""
    return transcription_data(f"Valid final {n}.", offset=1_000_000 + n, speaker=SPEAKER)


def td(**fields: Any) -> str:
    """A TranscriptionData packet: a valid final's fields, overridden by ``fields``."""
    data: dict[str, Any] = {"text": "x", "resultStatus": "Final", "offset": 5, **fields}
    return json.dumps({"kind": "TranscriptionData", "transcriptionData": data})


async def send(socket: WebsocketCommunicator, frame: Frame) -> None:
    """Send one frame as Daphne delivers it (``send_to`` refuses empty frames)."""
    key = "bytes" if isinstance(frame, bytes) else "text"
    await socket.send_input({"type": "websocket.receive", key: frame})


async def processed(frames_before: int, count: int, within: float = 10) -> None:
    """Wait until the consumer has handled ``count`` frames since ``frames_before``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while INGEST.frames < frames_before + count:
        if loop.time() > deadline:
            raise AssertionError(f"{INGEST.frames - frames_before} of {count} frames handled")
        await asyncio.sleep(0.005)


async def finals_stored(call: str) -> list[str]:
    """The texts of this test's valid finals stored for ``call``, duplicates included."""
    query = Utterance.objects.filter(call__connection_id=call, participant__raw_id=SPEAKER)
    return sorted([u.text async for u in query])


async def still_open(socket: WebsocketCommunicator) -> bool:
    """Nothing was sent back (no close) and the consumer has not stopped."""
    return await socket.receive_nothing(timeout=0.02) and not socket.future.done()


def rejections(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rejected frame" in r.getMessage()]


# --- The corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadCase:
    """A class of bad frames; ``reasons[i]`` is part of the logged reason for ``frames[i]``."""

    name: str
    frames: Sequence[Frame]
    reasons: Sequence[str]
    setup: Sequence[Frame] = field(default=())  # valid frames sent first (audio metadata)


PCM = bytes(640)
rng = random.Random(20240601)

CORPUS = [
    BadCase(
        "bad_json",
        ["{not json", '{"kind": "TranscriptionData",', "{'kind': 'AudioData'}", "NaN]"],
        ["not valid JSON"] * 4,
    ),
    BadCase(
        "not_an_object",
        ["[1, 2, 3]", '"TranscriptionData"', "42", "null"],
        ["must be a JSON object"] * 4,
    ),
    BadCase(
        "wrong_types",
        [
            json.dumps({"kind": 5}),
            json.dumps({"kind": "TranscriptionData", "transcriptionData": []}),
            td(text=5),
            td(resultStatus=True),
            td(confidence="high"),
            td(participantRawID={"rawId": "4:+1"}),
            td(words="is everything fine"),
            td(words=[{"text": 7}]),
            json.dumps({"kind": "AudioData", "audioData": {"data": ["AAAA"]}}),
            json.dumps({"kind": "AudioData", "audioData": {"data": "AAAA", "silent": "no"}}),
        ],
        [
            "kind must be a string",
            "transcriptionData must be an object",
            "transcriptionData.text must be a string",
            "transcriptionData.resultStatus must be a string",
            "transcriptionData.confidence must be a number between 0 and 1",
            "transcriptionData.participantRawID must be a string",
            "transcriptionData.words must be an array",
            "transcriptionData.words[0].text must be a string",
            "audioData.data must be a string",
            "audioData.silent must be true or false",
        ],
    ),
    BadCase(
        "huge_numbers",
        [
            td(offset=1e308),
            td(offset=2**80),
            td(duration=2**64),
            td(offset=-1),
            td(duration=-5),
            '{"kind":"TranscriptionData","transcriptionData":'
            '{"text":"x","resultStatus":"Final","offset":1e400}}',
            td(offset=0).replace('"offset": 0', '"offset": ' + "9" * 5000),
            td(confidence=1e308),
            td(confidence=float("nan")),
            td(words=[{"text": "is", "offset": 2**70}]),
            json.dumps({"kind": "AudioMetadata", "audioMetadata": {"sampleRate": 2**80}}),
            json.dumps({"kind": "AudioMetadata", "audioMetadata": {"sampleRate": -16000}}),
            json.dumps({"kind": "AudioData", "audioData": {"data": "AAAA", "timestamp": 1e308}}),
            json.dumps({"kind": "AudioData", "audioData": {"data": "AAAA", "timestamp": -1}}),
            json.dumps(
                {"kind": "AudioData", "audioData": {"data": "AAAA", "timestamp": "+999999-01-01"}}
            ),
        ],
        [
            "transcriptionData.offset must be at most 2**63-1",
            "transcriptionData.offset must be at most 2**63-1",
            "transcriptionData.duration must be at most 2**63-1",
            "transcriptionData.offset must be a non-negative integer",
            "transcriptionData.duration must be a non-negative integer",
            "transcriptionData.offset must be a non-negative integer, got inf",
            "packet holds a number with too many digits",
            "transcriptionData.confidence must be a number between 0 and 1",
            "transcriptionData.confidence must be a number between 0 and 1, got nan",
            "transcriptionData.words[0].offset must be at most 2**63-1",
            "audioMetadata.sampleRate must be at most 2**63-1",
            "audioMetadata.sampleRate must be a positive integer",
            "audioData.timestamp must be an ISO 8601 timestamp",
            "audioData.timestamp must be an ISO 8601 timestamp",
            "audioData.timestamp must be an ISO 8601 timestamp",
        ],
    ),
    BadCase(
        "bad_base64",
        [
            json.dumps({"kind": "AudioData", "audioData": {"data": "!!!not base64!!!"}}),
            json.dumps({"kind": "AudioData", "audioData": {"data": "AAA"}}),
            json.dumps({"kind": "AudioData", "audioData": {"data": "AA==AA=="}}),
            json.dumps({"kind": "AudioData", "audioData": {"data": "ÄÖÜ="}}),
        ],
        ["audioData.data is not valid base64"] * 4,
        setup=[audio_metadata()],
    ),
    BadCase(
        "odd_pcm_lengths",
        [audio_data(bytes(641)), audio_data(bytes(1)), audio_data(b""), audio_data(bytes(639))],
        ["PCM must be a non-empty, even number of bytes"] * 4,
        setup=[audio_metadata()],
    ),
    BadCase(
        "binary_garbage",
        [
            b"\xff\xfe\x00garbage",
            b"\xc3\x28",
            b"\xed\xa0\x80",  # a UTF-8-encoded surrogate
            b"\xc0\xaf",  # an overlong encoding
            *(bytes([0xFF]) + rng.randbytes(n) for n in (1, 64, 4096)),
            bytes(16),
            b'{"kind": "TranscriptionData"\xff}',
        ],
        [*["not valid UTF-8"] * 7, "not valid JSON", "not valid UTF-8"],
    ),
    BadCase(
        "unknown_kinds",
        [
            json.dumps({"kind": "MarkData", "markData": {"id": "m1", "status": "completed"}}),
            json.dumps({"kind": "Nonsense", "nonsense": {}}),
            json.dumps({"kind": ""}),
            json.dumps({"kind": "StopAudio", "stopAudio": {}}),
        ],
        [UNKNOWN_KIND.strip()] * 4,
    ),
    BadCase(
        "packets_before_metadata",
        [
            audio_data(PCM, index=0),
            audio_data(PCM, index=1, speaker="4:+15550001"),
            audio_metadata(8000),
            audio_data(PCM, index=2),
            audio_metadata(16000, channels=2),
            audio_metadata(16000, encoding="OPUS"),
            audio_data(PCM, index=3),
        ],
        [
            "AudioData before a usable AudioMetadata",
            "AudioData before a usable AudioMetadata",
            "unsupported sample rate 8000",
            "AudioData before a usable AudioMetadata",
            "unsupported channel count 2",
            "unsupported audio encoding 'OPUS'",
            "AudioData before a usable AudioMetadata",
        ],
    ),
    BadCase(
        "empty_frames",
        ["", b"", "   ", "\n", "{}", json.dumps({"kind": "TranscriptionData"})],
        [
            "not valid JSON",
            "not valid JSON",
            "not valid JSON",
            "not valid JSON",
            "packet has no kind and no known payload",
            "transcriptionData is missing",
        ],
    ),
    BadCase(
        "deeply_nested",
        [
            "[" * 100_000 + "]" * 100_000,
            '{"a":' * 50_000 + "1" + "}" * 50_000,
            td(extra=None).replace('"extra": null', '"extra": ' + "[" * 100_000 + "]" * 100_000),
        ],
        ["packet JSON is nested too deeply"] * 3,
    ),
    BadCase(
        "very_long_strings",
        [
            json.dumps({"kind": "K" * 500_000}),
            td(resultStatus="Final" * 100_000),
            td(text=None, words=[{"text": "w" * 200_000}]),
            json.dumps({"kind": "AudioData", "audioData": {"data": "A" * 900_001}}),
            "{" + "x" * 900_000,
        ],
        [
            UNKNOWN_KIND.strip(),
            "transcriptionData.resultStatus must be 'Final' or 'Intermediate'",
            "transcriptionData.text is missing",
            "audioData.data is not valid base64",
            "not valid JSON",
        ],
        setup=[audio_metadata()],
    ),
]


def test_every_corpus_frame_is_one_the_parser_or_audio_path_rejects() -> None:
    """The corpus is well formed: one reason per frame, and no frame is itself valid JSON
    that the parser would turn into a final (which would make the counts below wrong)."""
    assert len({case.name for case in CORPUS}) == len(CORPUS) == 12
    for case in CORPUS:
        assert len(case.frames) == len(case.reasons), case.name
        for frame in case.frames:
            try:
                packet = parse_packet(frame)
            except PacketError:
                continue
            assert type(packet).__name__ in {"AudioData", "AudioMetadata"}, case.name


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
async def test_bad_frames_are_counted_logged_and_cost_no_valid_final(
    case: BadCase, caplog: pytest.LogCaptureFixture
) -> None:
    """Each bad frame is counted and logged with its reason; the socket stays open; the
    finals sent before and after are each stored once."""
    call = f"bad-input-{case.name}"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before, rejected_before = INGEST.frames, INGEST.rejected
    with caplog.at_level(logging.WARNING, logger="streaming.ingest"):
        await send(socket, final(0))
        for frame in [*case.setup, *case.frames]:
            await send(socket, frame)
        for n in (1, 2, 3):
            await send(socket, final(n))
        sent = 1 + len(case.setup) + len(case.frames) + 3
        await processed(frames_before, sent)
        assert await still_open(socket)
        assert INGEST.rejected - rejected_before == len(case.frames)
        logged = rejections(caplog)
        assert len(logged) == len(case.frames)
        for number, (reason, message) in enumerate(zip(case.reasons, logged, strict=True)):
            assert reason in message, (number, message)
            # A hostile value is shown cut short, never in full.
            assert len(message) < 400, (number, len(message))
        await socket.disconnect()

    assert await finals_stored(call) == [f"Valid final {n}." for n in range(4)]
    summary = [r.getMessage() for r in caplog.records if "frames rejected" in r.getMessage()]
    assert len(summary) == 1
    assert f"{len(case.frames)} of {sent} frames rejected" in summary[0]


async def test_text_that_cannot_be_stored_costs_only_its_own_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A final whose text or speaker holds a lone surrogate (valid JSON, not storable UTF-8)
    or NUL (refused by PostgreSQL), or whose speaker id is longer than its column, is
    rejected with its reason; the socket stays open and later finals are stored."""
    call = "bad-input-surrogates"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before = INGEST.frames
    with caplog.at_level(logging.WARNING, logger="streaming.ingest"):
        await send(socket, final(0))
        await send(socket, td(text="lone \ud800 surrogate", offset=7))
        await send(socket, td(participantRawID="8:acs:\udfff", offset=8))
        await send(socket, td(text="nul \x00 here", offset=8))
        await send(socket, td(participantRawID="8:acs:" + "x" * 300, offset=8))
        await send(socket, final(1))
        await processed(frames_before, 6)
        assert await still_open(socket)
        await socket.disconnect()
    assert await finals_stored(call) == ["Valid final 0.", "Valid final 1."]
    assert not await Utterance.objects.filter(offset_ticks__in=[7, 8]).aexists()
    failed = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("streaming.ingest") and r.levelno >= logging.WARNING
    ]
    for frame in (2, 3, 4, 5):
        assert any(f"rejected frame {frame} " in message for message in failed), failed
    assert "handling frame" not in " ".join(failed)  # rejected, not failed in the database


# --- Closing a hostile stream ------------------------------------------------------------------

# Bad frames from each source of rejection: JSON, UTF-8, field types. (Unusable audio is
# rejected too, but is not hostile: see test_unusable_audio_never_closes_the_socket.)
GARBAGE: list[Frame] = [
    "{not json",
    b"\xff\xfe\x00",
    td(offset=2**80),
    json.dumps([1, 2, 3]),
    json.dumps({"kind": "AudioData", "audioData": {"data": 5}}),
]


def garbage(count: int) -> Iterator[Frame]:
    return itertools.islice(itertools.cycle(GARBAGE), count)


def unknown(n: int) -> str:
    return json.dumps({"kind": f"FutureKind{n}", f"futureKind{n}": {"n": n}})


async def test_500_bad_frames_in_a_row_close_the_socket_with_4008(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The 500th bad frame in a row closes the socket with 4008, not the 499th; the finals
    sent before are kept, and frames still arriving after the close are not handled."""
    call = "bad-input-hostile"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before = INGEST.frames
    with caplog.at_level(logging.WARNING, logger="streaming.ingest"):
        for n in range(3):
            await send(socket, final(n))
        for frame in garbage(499):
            await send(socket, frame)
        await processed(frames_before, 502)
        assert await still_open(socket)

        await send(socket, "{still not json")
        assert await socket.receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": POLICY_VIOLATION,
        }
        await send(socket, final(3))
        assert await socket.receive_nothing(timeout=0.1)
        await socket.disconnect()

    assert INGEST.frames - frames_before == 503
    assert await finals_stored(call) == ["Valid final 0.", "Valid final 1.", "Valid final 2."]
    closing = [r.getMessage() for r in caplog.records if "closing the socket" in r.getMessage()]
    assert len(closing) == 1
    assert "(code 4008) after 500 bad frames in a row; 500 of 503 frames rejected" in closing[0]
    assert "not valid JSON" in closing[0]


async def test_a_valid_frame_starts_the_count_again() -> None:
    """499 bad frames, one valid final, 499 bad frames: the socket stays open."""
    call = "bad-input-interrupted"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before, rejected_before = INGEST.frames, INGEST.rejected
    for frame in garbage(499):
        await send(socket, frame)
    await send(socket, final(0))
    for frame in garbage(499):
        await send(socket, frame)
    await send(socket, final(1))
    await processed(frames_before, 1000)
    assert await still_open(socket)
    assert INGEST.rejected - rejected_before == 998
    await socket.disconnect()
    assert await finals_stored(call) == ["Valid final 0.", "Valid final 1."]


async def test_unknown_kinds_never_close_the_socket() -> None:
    """ACS may add packet kinds: 1000 frames of kinds Callsite does not know are rejected
    and counted, but the socket stays open for the kinds it does know."""
    call = "bad-input-unknown"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before, rejected_before = INGEST.frames, INGEST.rejected
    for n in range(1000):
        await send(socket, unknown(n))
    await send(socket, final(0))
    await processed(frames_before, 1001)
    assert await still_open(socket)
    assert INGEST.rejected - rejected_before == 1000
    await socket.disconnect()
    assert await finals_stored(call) == ["Valid final 0."]


async def test_unusable_audio_never_closes_the_socket() -> None:
    """Well-formed audio Callsite cannot use (a format it does not take, or frames before
    their AudioMetadata) is rejected and counted, but a stream of it is not hostile: the
    socket stays open for the transcription it also carries."""
    from tests.helpers import audio_data, quiet_frame

    call = "bad-input-unusable-audio"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before, rejected_before = INGEST.frames, INGEST.rejected
    frame = audio_data(quiet_frame(), index=0)
    for _ in range(300):  # before any AudioMetadata
        await send(socket, frame)
    await send(socket, audio_metadata(44100))  # a rate Callsite does not take
    for _ in range(300):
        await send(socket, frame)
    await send(socket, final(0))
    await processed(frames_before, 602)
    assert await still_open(socket)
    assert INGEST.rejected - rejected_before == 601
    await socket.disconnect()
    assert await finals_stored(call) == ["Valid final 0."]


async def test_unknown_kinds_do_not_end_a_run_of_bad_frames() -> None:
    """Frames of unknown kinds neither count nor reset: 250 bad, 300 unknown, 250 bad close."""
    socket = acs_socket("bad-input-mixed")
    assert (await socket.connect())[0]
    for frame in garbage(250):
        await send(socket, frame)
    for n in range(300):
        await send(socket, unknown(n))
    for frame in garbage(249):
        await send(socket, frame)
    assert await still_open(socket)
    await send(socket, "{")
    assert await socket.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": POLICY_VIOLATION,
    }
    await socket.disconnect()


async def test_a_limit_of_zero_never_closes(settings: Any) -> None:
    """CALLSITE_BAD_FRAME_CLOSE_LIMIT=0 turns the rule off."""
    settings.CALLSITE_BAD_FRAME_CLOSE_LIMIT = 0
    call = "bad-input-no-limit"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before = INGEST.frames
    for frame in garbage(600):
        await send(socket, frame)
    await send(socket, final(0))
    await processed(frames_before, 601)
    assert await still_open(socket)
    await socket.disconnect()
    assert await finals_stored(call) == ["Valid final 0."]


# --- Property-based: arbitrary frames between valid finals -------------------------------------


def fixture_packets() -> list[dict[str, Any]]:
    """The streaming packets among the fixtures (not the webhook events)."""
    packets = []
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name.startswith("eventgrid") or "recorded" in path.name:
            continue
        packet = json.loads(path.read_text())
        if isinstance(packet, dict) and "kind" in packet:
            packets.append(packet)
    return packets


PACKETS = fixture_packets()


SITES = [(index, path) for index, packet in enumerate(PACKETS) for path in field_paths(packet)]
REMOVE = object()


def mutated(index: int, path: tuple[Any, ...], value: Any) -> str:
    """Fixture packet ``index`` with the field at ``path`` set to ``value`` (or removed)."""
    packet = json.loads(json.dumps(PACKETS[index]))
    parent = packet
    for key in path[:-1]:
        parent = parent[key]
    if value is REMOVE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(packet)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
mutations = st.sampled_from(SITES).flatmap(
    lambda site: (st.just(REMOVE) | json_values).map(lambda value: mutated(site[0], site[1], value))
)
frames = st.text(max_size=300) | st.binary(max_size=300) | mutations | mutations.map(str.encode)
calls = itertools.count()
FUZZ_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ_SETTINGS
@given(plan=st.lists(st.tuples(frames, st.booleans()), min_size=1, max_size=8))
async def test_arbitrary_frames_never_cost_a_valid_final(plan: list[tuple[Frame, bool]]) -> None:
    """Arbitrary text, bytes and mutated fixture packets, with valid finals between them:
    nothing escapes the consumer, the socket stays open, every final is stored once."""
    call = f"bad-input-fuzz-{next(calls)}"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before = INGEST.frames
    expected: list[str] = []
    for frame, then_final in plan:
        await send(socket, frame)
        if then_final:
            await send(socket, final(len(expected)))
            expected.append(f"Valid final {len(expected)}.")
    await send(socket, final(len(expected)))
    expected.append(f"Valid final {len(expected)}.")
    await processed(frames_before, len(plan) + len(expected))
    assert await still_open(socket)
    await socket.disconnect()  # re-raises anything that escaped the consumer
    assert await finals_stored(call) == sorted(expected)


@FUZZ_SETTINGS
@given(
    plan=st.lists(st.sampled_from(["bad", "unknown", "final"]), max_size=30),
    limit=st.integers(min_value=1, max_value=6),
)
async def test_the_close_rule_matches_its_definition(plan: list[str], limit: int) -> None:
    """Against a model of the rule: closed with 4008 exactly when ``limit`` bad frames came
    in a row (unknown kinds aside); finals before the close stored once, later ones not."""
    call = f"bad-input-rule-{next(calls)}"
    socket = acs_socket(call)
    assert (await socket.connect())[0]
    frames_before = INGEST.frames
    run, handled, closed = 0, 0, False
    expected: list[str] = []
    with override_settings(CALLSITE_BAD_FRAME_CLOSE_LIMIT=limit):
        for n, step in enumerate(plan):
            if step == "bad":
                await send(socket, GARBAGE[n % len(GARBAGE)])
            elif step == "unknown":
                await send(socket, unknown(n))
            else:
                await send(socket, final(n))
            if closed:
                continue
            handled += 1
            if step == "bad":
                run += 1
                closed = run >= limit
            elif step == "final":
                run = 0
                expected.append(f"Valid final {n}.")
        await processed(frames_before, handled)
        if closed:
            assert await socket.receive_output(timeout=5) == {
                "type": "websocket.close",
                "code": POLICY_VIOLATION,
            }
        assert await still_open(socket)
        await socket.disconnect()
    assert INGEST.frames - frames_before == handled
    assert await finals_stored(call) == sorted(expected)
