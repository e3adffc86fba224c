"""Tests for the call simulator: script loading, packet planning and the WebSocket client.

Pure tests: no database and no Django. The wire tests run a small ``websockets`` server on
127.0.0.1 that stands in for Callsite's ingest endpoint and records what arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from simulator import (
    DEFAULT_SCRIPT,
    DEMO_DIR,
    FINAL_DELAY,
    TRANSCRIPTION_DATA,
    TRANSCRIPTION_METADATA,
    CallsFailedError,
    ScheduledPacket,
    Script,
    ScriptError,
    SimulatorError,
    Speaker,
    Turn,
    load_script,
    plan_packets,
    simulate_calls,
    stream_call,
)
from simulator.plan import CALLBACK
from simulator.wire import DTMF_DATA
from streaming.acs.packets import DtmfData, TranscriptionData, TranscriptionMetadata, parse_packet
from streaming.units import TICKS_PER_SECOND
from tests.servers import CallbackRecorder

SHORT_CALL = DEMO_DIR / "short_call.toml"
AGENT = "8:acs:00000000-0000-4000-8000-000000000001_00000002-0000-4000-8000-000000000003"
CUSTOMER = "4:+15555550123"


def plan(script: Script, call_id: str = "call-1") -> list[ScheduledPacket]:
    return plan_packets(script, call_connection_id=call_id, correlation_id=f"corr-{call_id}")


def assert_all_ints(value: Any, path: str = "") -> None:
    """Every offset/duration in a decoded payload is a JSON integer, never a float."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("offset", "duration"):
                assert type(item) is int, f"{path}{key} is {item!r}"
            assert_all_ints(item, f"{path}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_all_ints(item, f"{path}[{index}].")


def check_signals(script: Script, packets: list[ScheduledPacket], call_id: str) -> None:
    """Signals come as DtmfData packets ACS's way and as ParticipantsUpdated callbacks."""
    expected = sum(len(s.tones) if s.kind == "dtmf" else 2 for s in script.signals)
    assert len(packets) == expected
    sequence = 0
    for packet in packets:
        if packet.kind == DTMF_DATA:
            parsed = parse_packet(packet.payload)
            assert isinstance(parsed, DtmfData)
            assert parsed.data in "0123456789*#ABCD"
            continue
        assert packet.kind == CALLBACK
        (event,) = json.loads(packet.payload)
        assert event["type"] == "Microsoft.Communication.ParticipantsUpdated"
        assert event["source"] == f"calling/callConnections/{call_id}"
        sequence += 1
        assert event["data"]["sequenceNumber"] == sequence
        raw_ids = [p["identifier"]["rawId"] for p in event["data"]["participants"]]
        assert raw_ids == [s.raw_id for s in script.speakers]


def check_plan(script: Script, packets: list[ScheduledPacket], call_id: str) -> None:
    """Assert every invariant the simulator promises about a plan."""
    raw_ids = {s.key: s.raw_id for s in script.speakers}
    first = packets[0]
    assert (first.at, first.final, first.kind) == (0.0, False, TRANSCRIPTION_METADATA)
    meta = json.loads(first.payload)
    assert meta["kind"] == "TranscriptionMetadata"
    assert set(meta["transcriptionMetadata"]) == {
        "subscriptionId",
        "locale",
        "callConnectionId",
        "correlationId",
    }
    parsed_meta = parse_packet(first.payload)
    assert isinstance(parsed_meta, TranscriptionMetadata)
    assert parsed_meta.call_connection_id == call_id
    assert parsed_meta.locale == script.locale

    ats = [p.at for p in packets]
    assert ats == sorted(ats)
    signals = [p for p in packets[1:] if p.kind != TRANSCRIPTION_DATA]
    check_signals(script, signals, call_id)

    # Group by phrase offset: each turn starts at a distinct tick.
    turns: dict[int, list[tuple[ScheduledPacket, dict[str, Any]]]] = {}
    for packet in packets[1:]:
        if packet.kind != TRANSCRIPTION_DATA:
            continue
        body = json.loads(packet.payload)["transcriptionData"]
        assert_all_ints(body)
        turns.setdefault(body["offset"], []).append((packet, body))
    assert len(turns) == len(script.turns)

    previous_end: int | None = None
    for turn, (offset, group) in zip(script.turns, turns.items(), strict=True):
        *intermediates, (final_packet, final) = group
        assert final_packet.final
        assert final["resultStatus"] == "Final"
        assert final["text"] == turn.text
        assert final["confidence"] == turn.confidence
        assert final["participantRawID"] == raw_ids[turn.speaker]
        assert final["format"] == "display"
        # Word ticks chain exactly and add up to the phrase.
        words = final["words"]
        assert words[0]["offset"] == offset
        for a, b in itertools.pairwise(words):
            assert b["offset"] == a["offset"] + a["duration"]
        assert sum(w["duration"] for w in words) == final["duration"]
        assert all(w["duration"] > 0 for w in words)
        for word in words:
            assert word["text"] == word["text"].lower()
            assert word["text"][0].isalnum()
            assert word["text"][-1].isalnum()
        end = offset + final["duration"]
        assert final_packet.at == pytest.approx(end / TICKS_PER_SECOND + FINAL_DELAY)
        if previous_end is not None and not any(
            sig.before == script.turns.index(turn) + 1 for sig in script.signals
        ):
            assert offset - previous_end == round(turn.pause * TICKS_PER_SECOND)
        if turn.sentiment is not None:
            assert final["sentimentAnalysisResult"] == {"sentiment": turn.sentiment}
        if turn.language is not None:
            assert final["languageIdentified"] == turn.language
        previous_end = end

        assert intermediates, "every turn has at least one intermediate"
        display = final["text"].split()
        lengths = []
        for packet, body in intermediates:
            assert not packet.final
            assert body["resultStatus"] == "Intermediate"
            assert "words" not in body
            assert "confidence" not in body
            assert body["participantRawID"] == raw_ids[turn.speaker]
            tokens = body["text"].split()
            assert tokens == display[: len(tokens)]
            lengths.append(len(tokens))
            assert packet.at == pytest.approx((offset + body["duration"]) / TICKS_PER_SECOND)
        assert lengths == sorted(set(lengths))
        inter_ats = [p.at for p, _ in intermediates]
        assert inter_ats == sorted(set(inter_ats))
        assert inter_ats[-1] < final_packet.at
        assert intermediates[-1][1]["text"] == final["text"]

        for packet, _body in group:
            parsed = parse_packet(packet.payload)
            assert isinstance(parsed, TranscriptionData)
            assert parsed.is_final is packet.final
            assert parsed.participant_raw_id == raw_ids[turn.speaker]


# --- load_script --------------------------------------------------------------------------


def test_billing_call_is_a_realistic_demo() -> None:
    """The default script: 16-20 turns, 60-75 s, a long hold, DTMF tones, a sentiment that
    changes, and some non-ASCII text."""
    script = load_script(DEFAULT_SCRIPT)
    assert script.title == "Billing question"
    assert script.locale == "en-US"
    roles = {s.key: s.raw_id for s in script.speakers}
    assert roles["agent"].startswith("8:acs:")
    assert roles["customer"].startswith("4:+")
    assert 16 <= len(script.turns) <= 20
    assert {t.speaker for t in script.turns} == {"agent", "customer"}
    assert [(s.kind, s.seconds) for s in script.signals if s.kind == "hold"] == [("hold", 8.0)]
    assert any(s.kind == "dtmf" for s in script.signals)
    customer = [t.sentiment for t in script.turns if t.speaker == "customer"]
    assert customer[0] == "negative"
    assert customer[-1] == "positive"
    assert any(not t.text.isascii() for t in script.turns)
    packets = plan(script)
    assert 60 <= packets[-1].at <= 75
    check_plan(script, packets, "call-1")


def test_short_call_is_three_quick_turns() -> None:
    """The test script: 3 turns and about 5 s of call time."""
    script = load_script(str(SHORT_CALL))
    assert len(script.turns) == 3
    packets = plan(script)
    assert 4 <= packets[-1].at <= 6
    check_plan(script, packets, "call-1")


def test_defaults_apply_to_optional_fields(tmp_path: Path) -> None:
    """locale, pause, confidence and wpm are optional; text whitespace is collapsed."""
    path = tmp_path / "call.toml"
    path.write_text(
        'title = "T"\n[[speakers]]\nkey = "a"\nraw_id = "4:+1"\n'
        '[[turns]]\nspeaker = "a"\ntext = """Hello\n   there."""\n',
        encoding="utf-8",
    )
    script = load_script(path)
    assert script == Script("T", "en-US", (Speaker("a", "4:+1"),), (Turn("a", "Hello there."),))
    assert script.turns[0] == Turn("a", "Hello there.", 0.4, 0.9, 150.0)


VALID_HEAD = 'title = "T"\n[[speakers]]\nkey = "agent"\nraw_id = "8:acs:x"\n'


@pytest.mark.parametrize(
    ("toml_text", "expected"),
    [
        ("title = ", "not valid TOML"),
        ('[[speakers]]\nkey = "a"\nraw_id = "4:+1"\n', "title: must be a non-empty string"),
        ('title = "T"\n[[turns]]\nspeaker = "a"\ntext = "Hi"\n', "speakers: needs at least one"),
        (VALID_HEAD, "turns: needs at least one [[turns]]"),
        (VALID_HEAD + 'colour = "red"\n', "speakers[0]: unknown key(s) colour"),
        ('title = "T"\nmood = 1\n', "top level: unknown key(s) mood"),
        ('title = "T"\n[[speakers]]\nkey = "a"\n', "speakers[0].raw_id: must be a non-empty"),
        (
            VALID_HEAD + '[[speakers]]\nkey = "agent"\nraw_id = "4:+1"\n',
            "speakers[1].key: duplicate speaker key 'agent'",
        ),
        (VALID_HEAD + '[[turns]]\nspeaker = "bob"\ntext = "Hi"\n', "turns[0].speaker: unknown"),
        (VALID_HEAD + '[[turns]]\nspeaker = "agent"\n', "turns[0].text: must be a non-empty"),
        (VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "  "\n', "turns[0].text: must be"),
        (VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "... !"\n', "turns[0].text: has no"),
        (
            VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "Hi"\n'
            '[[turns]]\nspeaker = "agent"\ntext = "Hi"\npause = -1\n',
            "turns[1].pause: must be >= 0",
        ),
        (
            VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "Hi"\npause = "1"\n',
            "turns[0].pause: must be a number",
        ),
        (
            VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "Hi"\npause = true\n',
            "turns[0].pause: must be a number",
        ),
        (
            VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "Hi"\npause = nan\n',
            "turns[0].pause: must be a number",
        ),
        (
            VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "Hi"\nconfidence = 1.5\n',
            "turns[0].confidence: must be between 0 and 1",
        ),
        (
            VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "Hi"\nwpm = 0\n',
            "turns[0].wpm: must be > 0",
        ),
        (
            VALID_HEAD + '[[turns]]\nspeaker = "agent"\ntext = "Hi"\npaus = 1\n',
            "turns[0]: unknown key(s) paus",
        ),
        ('title = "T"\nturns = [1, 2]\n' + VALID_HEAD[12:], "turns: needs at least one"),
    ],
)
def test_bad_scripts_raise_script_error(tmp_path: Path, toml_text: str, expected: str) -> None:
    """Each bad file fails with a message naming the file and the offending field."""
    path = tmp_path / "bad.toml"
    path.write_text(toml_text, encoding="utf-8")
    with pytest.raises(ScriptError) as info:
        load_script(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_script_file(tmp_path: Path) -> None:
    """A missing file is a ScriptError, not a bare OSError."""
    with pytest.raises(ScriptError, match=r"nope\.toml: cannot read script"):
        load_script(tmp_path / "nope.toml")


# --- plan_packets -------------------------------------------------------------------------


def test_plan_is_deterministic() -> None:
    """Same input, same packets; the subscription id derives from the call id unless given."""
    script = load_script(SHORT_CALL)
    assert plan(script) == plan(script)
    meta_a = json.loads(plan(script, "a")[0].payload)["transcriptionMetadata"]
    meta_b = json.loads(plan(script, "b")[0].payload)["transcriptionMetadata"]
    assert meta_a["subscriptionId"] != meta_b["subscriptionId"]
    assert meta_a["correlationId"] == "corr-a"
    given_id = plan_packets(
        script, call_connection_id="a", correlation_id="c", subscription_id="sub-1"
    )
    assert json.loads(given_id[0].payload)["transcriptionMetadata"]["subscriptionId"] == "sub-1"


def test_final_wire_shape_matches_acs() -> None:
    """Keys and their order follow the SDK samples; non-ASCII text is sent as UTF-8."""
    script = Script(
        "T",
        "en-US",
        (Speaker("c", CUSTOMER),),
        (Turn("c", "Hi, it's Zoë — thanks!", pause=1.0, confidence=0.8, wpm=120),),
    )
    packets = plan(script)
    final = packets[-1]
    assert "Zoë" in final.payload
    body = json.loads(final.payload)["transcriptionData"]
    assert list(body) == [
        "text",
        "format",
        "confidence",
        "offset",
        "duration",
        "words",
        "participantRawID",
        "resultStatus",
    ]
    assert [w["text"] for w in body["words"]] == ["hi", "it's", "zoë", "thanks"]
    assert body["offset"] == TICKS_PER_SECOND  # 1 s pause from the stream start
    assert body["duration"] == 2 * TICKS_PER_SECOND  # 4 words at 120 wpm
    # Longer words take longer.
    durations = [w["duration"] for w in body["words"]]
    assert durations[0] < durations[1]
    intermediate = json.loads(packets[1].payload)["transcriptionData"]
    assert list(intermediate) == [
        "text",
        "format",
        "offset",
        "duration",
        "participantRawID",
        "resultStatus",
    ]
    check_plan(script, packets, "call-1")


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (Turn("b", "Hello"), r"turns\[0\]\.speaker: unknown speaker 'b'"),
        (Turn("a", "— …"), r"turns\[0\]\.text: has no words"),
        (Turn("a", "Hello", pause=math.inf), r"turns\[0\]\.pause"),
        (Turn("a", "Hello", confidence=-0.1), r"turns\[0\]\.confidence"),
        (Turn("a", "Hello", wpm=0), r"turns\[0\]\.wpm"),
    ],
)
def test_plan_checks_hand_built_scripts(turn: Turn, expected: str) -> None:
    """plan_packets applies the load_script checks to scripts built in code."""
    script = Script("T", "en-US", (Speaker("a", AGENT),), (turn,))
    with pytest.raises(ScriptError, match=expected):
        plan(script)


_letters = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFZéöß0123456789'"))
_word = st.builds(
    lambda core, before, after: before + core + after,
    st.text(_letters, min_size=1, max_size=12).filter(lambda w: w[0] != "'" and w[-1] != "'"),
    st.sampled_from(["", "", "", "(", "¿", '"']),
    st.sampled_from(["", "", "", ",", ".", "?", "!", "…", '."']),
)
_token = st.one_of(_word, _word, _word, st.sampled_from(["—", "-", "..."]))
_text = (
    st.lists(_token, min_size=1, max_size=30)
    .filter(lambda ts: any(t.strip('()¿",.?!…—-') for t in ts))
    .map(" ".join)
)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    count = draw(st.integers(1, 3))
    speakers = tuple(Speaker(f"s{i}", f"4:+1555000{i}") for i in range(count))
    turns = draw(
        st.lists(
            st.builds(
                Turn,
                speaker=st.sampled_from([s.key for s in speakers]),
                text=_text,
                pause=st.floats(0, 12, allow_nan=False),
                confidence=st.floats(0, 1, allow_nan=False),
                wpm=st.floats(40, 400, allow_nan=False),
            ),
            min_size=1,
            max_size=6,
        )
    )
    return Script("Generated", "en-GB", speakers, tuple(turns))


@settings(max_examples=150, deadline=None)
@given(script=scripts())
def test_plan_invariants_hold_for_any_script(script: Script) -> None:
    """Word ticks, prefixes, ordering and parseability hold for arbitrary scripts."""
    check_plan(script, plan(script, "gen"), "gen")


# --- the wire -----------------------------------------------------------------------------


@dataclass
class Connection:
    """What one simulated call looked like from the server side."""

    path: str
    headers: dict[str, str]
    requested_at: float  # loop time of the handshake request, before the client's clock starts
    frames: list[tuple[float, str]] = field(default_factory=list)
    close_code: int | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


class FakeEndpoint:
    """A stand-in for Callsite's /ws/acs/ endpoint that records everything it receives."""

    def __init__(self) -> None:
        self.url = ""
        self.connections: list[Connection] = []
        self.handshakes = 0
        self.reject: set[int] = set()  # 1-based handshake numbers to answer with 403
        self.busy: set[int] = set()  # ... and with 503, as a worker over capacity does
        self.close_after: int | None = None  # close with 1008 after this many frames
        self.callbacks: CallbackRecorder
        self._requested_at: dict[ServerConnection, float] = {}

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        self._requested_at[connection] = asyncio.get_running_loop().time()
        if self.handshakes in self.reject:
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        if self.handshakes in self.busy:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "over capacity\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        record = Connection(ws.request.path, headers, self._requested_at.pop(ws))
        self.connections.append(record)
        loop = asyncio.get_running_loop()
        async for message in ws:
            assert isinstance(message, str), "packets go out as text frames"
            record.frames.append((loop.time(), message))
            if self.close_after is not None and len(record.frames) >= self.close_after:
                await ws.close(1008, "policy violation")
        record.close_code = ws.close_code


@pytest.fixture
async def endpoint() -> AsyncIterator[FakeEndpoint]:
    """A FakeEndpoint listening on an ephemeral port of 127.0.0.1, with a recorder of the
    callbacks a script's holds and mutes send."""
    fake = FakeEndpoint()
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/ws/acs/?tenant=demo"
        fake.callbacks = CallbackRecorder()
        yield fake
        fake.callbacks.close()


async def test_stream_call_sends_the_plan_on_schedule(endpoint: FakeEndpoint) -> None:
    """Headers and query carry the call; frames arrive in order, paced by speed, then 1000."""
    script = load_script(SHORT_CALL)
    expected = plan_packets(script, call_connection_id="call-42", correlation_id="corr-9")
    seen: list[ScheduledPacket] = []
    result = await stream_call(
        endpoint.url,
        call_connection_id="call-42",
        script=script,
        token="s3cret",
        speed=20,
        correlation_id="corr-9",
        on_packet=seen.append,
    )
    await asyncio.sleep(0.05)  # let the server handler record the close
    (conn,) = endpoint.connections
    assert urlsplit(conn.path).path == "/ws/acs/"
    assert conn.query == {"tenant": ["demo"], "token": ["s3cret"], "call": ["call-42"]}
    assert conn.headers["x-ms-call-connection-id"] == "call-42"
    assert conn.headers["x-ms-call-correlation-id"] == "corr-9"
    assert [text for _, text in conn.frames] == [p.payload for p in expected]
    assert seen == expected
    assert conn.close_code == 1000

    assert result.call_connection_id == "call-42"
    assert result.packets_sent == len(expected)
    assert result.finals_sent == 3
    assert result.intermediates_sent == len(expected) - 4

    planned = expected[-1].at / 20
    arrived = conn.frames[-1][0] - conn.frames[0][0]
    assert arrived >= 0.9 * planned
    assert arrived < planned + 1.0
    # Each frame waits for its own deadline, not merely for the last one. The client's clock
    # starts after the handshake request arrived, so this bound holds however loaded the host.
    for (t, _), packet in zip(conn.frames, expected, strict=True):
        assert t - conn.requested_at >= packet.at / 20 - 0.001
    assert result.elapsed >= 0.9 * planned


@pytest.mark.parametrize("speed", [0, -1, math.inf])
async def test_speed_zero_or_infinite_sends_at_once(endpoint: FakeEndpoint, speed: float) -> None:
    """speed <= 0 or inf means as fast as possible; no token means no token parameter."""
    script = load_script(DEFAULT_SCRIPT)
    result = await stream_call(
        endpoint.url,
        call_connection_id="fast",
        script=script,
        token=None,
        speed=speed,
        callbacks_to=endpoint.callbacks.url,
    )
    assert result.finals_sent == len(script.turns)
    holds = [
        [p["isOnHold"] for p in body[0]["data"]["participants"]]
        for _path, body in endpoint.callbacks.bodies
    ]
    assert holds == [[False, True], [False, False]]
    assert result.elapsed < 5  # the script itself lasts about 68 s
    await asyncio.sleep(0.05)
    assert "token" not in endpoint.connections[0].query


async def test_nan_speed_is_rejected(endpoint: FakeEndpoint) -> None:
    """NaN is a caller bug, not a pacing mode."""
    with pytest.raises(ValueError, match="NaN"):
        await stream_call(
            endpoint.url,
            call_connection_id="x",
            script=load_script(SHORT_CALL),
            token=None,
            speed=math.nan,
        )


async def test_rejected_handshake_names_url_and_status(endpoint: FakeEndpoint) -> None:
    """A 403 from the endpoint becomes a SimulatorError that names the URL, not the token."""
    endpoint.reject = {1}
    with pytest.raises(SimulatorError) as info:
        await stream_call(
            endpoint.url,
            call_connection_id="c",
            script=load_script(SHORT_CALL),
            token="s3cret",
        )
    message = str(info.value)
    assert "403" in message
    assert endpoint.url in message
    assert "s3cret" not in message


async def test_a_worker_over_capacity_is_tried_again(
    endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503 says the worker is over capacity for now: the call is tried again, waiting longer
    each time, and streams once it is taken; past the retry time it fails, naming the 503."""
    endpoint.busy = {1, 2, 3}
    started = asyncio.get_running_loop().time()
    result = await stream_call(
        endpoint.url, call_connection_id="c", script=load_script(SHORT_CALL), token=None, speed=0
    )
    waited = asyncio.get_running_loop().time() - started
    assert endpoint.handshakes == 4
    assert len(endpoint.connections) == 1
    assert result.packets_sent == len(endpoint.connections[0].frames)
    assert waited >= 0.25 + 0.5 + 1.0

    monkeypatch.setattr("simulator.send.OVER_CAPACITY_RETRY_SECONDS", 1.0)
    endpoint.busy = set(range(5, 50))
    with pytest.raises(SimulatorError, match="HTTP 503"):
        await stream_call(
            endpoint.url, call_connection_id="d", script=load_script(SHORT_CALL), token=None
        )
    assert 5 < endpoint.handshakes < 10


async def test_connection_refused_is_a_simulator_error() -> None:
    """Nothing listening: SimulatorError naming the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ws/acs/"
    with pytest.raises(SimulatorError, match=f"cannot connect to {url}"):
        await stream_call(
            url, call_connection_id="c", script=load_script(SHORT_CALL), token=None, speed=0
        )


async def test_server_closing_mid_call_is_reported(endpoint: FakeEndpoint) -> None:
    """If the endpoint hangs up early, the error says after how many packets and why."""
    endpoint.close_after = 1
    script = load_script(SHORT_CALL)
    with pytest.raises(SimulatorError, match=r"closed call c after \d+ of \d+ packets.*1008"):
        await stream_call(endpoint.url, call_connection_id="c", script=script, token=None, speed=10)


async def test_simulate_calls_runs_concurrent_distinct_calls(endpoint: FakeEndpoint) -> None:
    """Three calls get three fresh ids, all on the server, with progress lines for each."""
    lines: list[str] = []
    results = await simulate_calls(
        endpoint.url,
        script=load_script(SHORT_CALL),
        calls=3,
        token="t",
        speed=20,
        call_prefix="test",
        progress=lines.append,
    )
    await asyncio.sleep(0.05)
    ids = [r.call_connection_id for r in results]
    assert len(set(ids)) == 3
    assert all(i.startswith("test-") and len(i) == len("test-") + 12 for i in ids)
    assert sorted(c.headers["x-ms-call-connection-id"] for c in endpoint.connections) == sorted(ids)
    assert sorted(c.query["call"][0] for c in endpoint.connections) == sorted(ids)
    assert all(r.finals_sent == 3 for r in results)
    for call_id in ids:
        assert f"call {call_id} connected" in lines
        assert f"call {call_id}: 3/3 finals" in lines
        assert any(line.startswith(f"call {call_id} done: 3 finals in ") for line in lines)
    # Reruns never reuse ids.
    again = await simulate_calls(endpoint.url, script=load_script(SHORT_CALL), token="t", speed=0)
    assert again[0].call_connection_id not in ids


async def test_simulate_calls_keeps_going_when_one_call_fails(endpoint: FakeEndpoint) -> None:
    """One rejected call does not stop the others; the error summarises the failure."""
    endpoint.reject = {2}
    lines: list[str] = []
    with pytest.raises(CallsFailedError) as info:
        await simulate_calls(
            endpoint.url,
            script=load_script(SHORT_CALL),
            calls=3,
            token="t",
            speed=20,
            progress=lines.append,
        )
    error = info.value
    assert isinstance(error, SimulatorError)
    assert str(error).startswith("1 of 3 calls failed")
    assert "403" in str(error)
    assert len(error.results) == 2
    assert all(r.finals_sent == 3 for r in error.results)
    ((failed_id, _exc),) = error.failures
    assert any(line.startswith(f"call {failed_id} failed: ") for line in lines)


async def test_simulate_calls_rejects_zero_calls(endpoint: FakeEndpoint) -> None:
    """calls must be at least 1."""
    with pytest.raises(ValueError, match="calls must be >= 1"):
        await simulate_calls(endpoint.url, script=load_script(SHORT_CALL), calls=0, token=None)
