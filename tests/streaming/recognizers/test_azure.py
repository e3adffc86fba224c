"""The azure recognizer backend, end to end: the real Speech SDK against a local stand-in.

``tests/standins/speech.py`` speaks the Speech service's WebSocket protocol on a loopback
port; the backend is pointed at it with a ``ws://`` endpoint and otherwise runs unchanged: the
SDK's native code connects, streams the pushed audio, parses the service's messages and
reconnects on its own. Each test scripts what the "service" recognises (on the session's audio
timeline) and checks what comes out of ``results()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from streaming.recognizers import recognizer_from_settings
from streaming.recognizers.azure import PLACEHOLDER_KEY, AzureRecognizer, AzureSession
from streaming.recognizers.base import (
    Recognition,
    RecognizedWord,
    RecognizerConfigurationError,
    RecognizerError,
    SessionConfig,
)
from streaming.units import TICKS_PER_SECOND
from tests.standins.speech import ScriptedPhrase, SpeechStandIn

WAIT = 15.0  # upper bound for anything one test waits on


def ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


@pytest.fixture
def standin() -> Iterator[SpeechStandIn]:
    with SpeechStandIn() as service:
        yield service


@pytest.fixture
async def recognizer(standin: SpeechStandIn) -> AsyncIterator[AzureRecognizer]:
    backend = AzureRecognizer(endpoint=standin.url, backlog_seconds=20)
    yield backend
    await backend.aclose()


async def feed_seconds(session: AzureSession, seconds: float, frame_ms: int = 20) -> None:
    """Feed ``seconds`` of silence in 20 ms frames, as the audio path does."""
    rate = session.config.sample_rate
    frame = bytes(rate * 2 * frame_ms // 1000)
    for _ in range(round(seconds * 1000 / frame_ms)):
        await session.feed(frame)


async def until(condition: Callable[[], bool], within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def connections_reach(count: int) -> Callable[[SpeechStandIn], bool]:
    return lambda standin: len(standin.connections) >= count


class Collector:
    """Drains ``session.results()`` in a task; ``error`` holds a RecognizerError it raised."""

    def __init__(self, session: AzureSession) -> None:
        self.results: list[Recognition] = []
        self.error: RecognizerError | None = None
        self.task = asyncio.create_task(self._drain(session))

    async def _drain(self, session: AzureSession) -> None:
        try:
            async for result in session.results():
                self.results.append(result)
        except RecognizerError as error:
            self.error = error

    async def done(self, within: float = WAIT) -> Collector:
        await asyncio.wait_for(self.task, within)
        return self

    async def until_finals(self, count: int) -> None:
        await until(lambda: len(self.finals) >= count)

    @property
    def finals(self) -> list[Recognition]:
        return [r for r in self.results if r.final]

    @property
    def interims(self) -> list[Recognition]:
        return [r for r in self.results if not r.final]


async def started(recognizer: AzureRecognizer, config: SessionConfig) -> AzureSession:
    session = recognizer.open(config)
    await asyncio.wait_for(session.start(), WAIT)
    return session


def expected_words(phrase: ScriptedPhrase) -> tuple[RecognizedWord, ...]:
    return tuple(
        RecognizedWord(word, offset, duration, phrase.confidence)
        for word, offset, duration in phrase.words()
    )


# --- results ----------------------------------------------------------------------------------


async def test_interim_then_final_results_with_confidence_and_timed_words(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    first = ScriptedPhrase("Hello there, Callsite.", 0.5, 1.7, confidence=0.87)
    second = ScriptedPhrase("Please hold.", 2.0, 2.8, confidence=0.61)
    standin.script = [first, second]
    session = await started(recognizer, SessionConfig(sample_rate=16000, label="mixed"))
    collector = Collector(session)

    await feed_seconds(session, 3.0)
    await asyncio.wait_for(session.close(), WAIT)
    await collector.done()

    assert collector.error is None
    assert [r.text for r in collector.results] == [
        "hello",
        "hello there",
        "Hello there, Callsite.",
        "please",
        "Please hold.",
    ]
    hello, hello_there, final_one, _, final_two = collector.results
    assert not hello.final
    assert (hello.offset, hello.duration) == (ticks(0.5), ticks(0.4))
    assert (hello_there.offset, hello_there.duration) == (ticks(0.5), ticks(0.8))
    assert hello.confidence is None
    assert hello.words == ()
    assert final_one == Recognition(
        text="Hello there, Callsite.",
        final=True,
        offset=ticks(0.5),
        duration=ticks(1.2),
        confidence=0.87,
        words=expected_words(first),
        speaker=None,  # the service labels speakers, but this session did not ask
    )
    assert final_one.words[2] == RecognizedWord("callsite", ticks(1.3), ticks(0.4), 0.87)
    assert final_two.offset == ticks(2.0)
    assert final_two.confidence == 0.61
    assert final_two.words == expected_words(second)


async def test_speaker_labels_when_diarizing(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    standin.script = [
        ScriptedPhrase("Thanks for calling.", 0.2, 1.0, speaker="Guest-1"),
        ScriptedPhrase("Hi, I have a question.", 1.2, 2.4, speaker="Guest-2"),
        ScriptedPhrase("Sure.", 2.6, 3.0, speaker=None),  # the service could not tell
    ]
    session = await started(recognizer, SessionConfig(sample_rate=16000, diarize=True))
    collector = Collector(session)

    await feed_seconds(session, 3.2)
    await asyncio.wait_for(session.close(), WAIT)
    await collector.done()

    assert collector.error is None
    assert [(r.text, r.speaker) for r in collector.finals] == [
        ("Thanks for calling.", "Guest-1"),
        ("Hi, I have a question.", "Guest-2"),
        ("Sure.", None),
    ]
    # Intermediate results are diarized too, because the session asks for it.
    assert {r.speaker for r in collector.interims} == {"Guest-1", "Guest-2"}
    (context,) = standin.connections[0].speech_contexts
    diarization = context["phraseDetection"]["speakerDiarization"]
    assert diarization["mode"] == "Anonymous"
    assert diarization["diarizeIntermediates"] == "True"  # the SDK sends a string


async def test_what_the_sdk_asked_the_service_for(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    """Locale, detailed output with word timings, the audio format; at 8 kHz offsets still fit."""
    phrase = ScriptedPhrase("Guten Tag.", 0.4, 1.0, confidence=0.7)
    standin.script = [phrase]
    config = SessionConfig(sample_rate=8000, locale="de-DE", label="call 7 / 4:+4930")
    session = await started(recognizer, config)
    collector = Collector(session)

    await feed_seconds(session, 1.5)
    await asyncio.wait_for(session.close(), WAIT)
    await collector.done()

    await standin.wait_for(lambda s: s.connections[0].ended != "")  # all it sent has arrived
    (connection,) = standin.connections
    assert connection.ended == "closed by the client"
    assert connection.path == SpeechStandIn.path
    assert connection.query["language"] == "de-DE"
    assert connection.query["format"] == "detailed"
    assert connection.query["wordLevelTimestamps"] == "true"
    assert connection.headers["sec-websocket-protocol"] == "USP"
    assert connection.headers["ocp-apim-subscription-key"] == PLACEHOLDER_KEY  # no key: ws://
    assert connection.speech_config is not None
    source = connection.speech_config["context"]["audio"]["source"]
    assert (source["samplerate"], source["bitspersample"], source["channelcount"]) == (
        "8000",
        "16",
        "1",
    )
    (context,) = connection.speech_contexts
    assert context["phraseDetection"]["mode"] == "Conversation"
    assert context["phraseDetection"]["language"] == "de-DE"
    assert context["phraseOutput"]["format"] == "Detailed"
    assert set(context["phraseOutput"]["detailed"]["options"]) >= {"WordTimings"}
    assert connection.sample_rate == 8000
    assert connection.audio_bytes == 1.5 * 8000 * 2
    assert connection.end_of_audio
    assert connection.telemetry >= 1

    (final,) = collector.finals
    assert (final.text, final.offset, final.duration) == ("Guten Tag.", ticks(0.4), ticks(0.6))
    assert final.words == expected_words(phrase)


async def test_close_waits_for_the_last_final(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    """A phrase still open when the audio ends is finalised by the service after the end."""
    standin.script = [ScriptedPhrase("Goodbye for now.", 1.0, 3.0)]
    standin.end_of_audio_delay = 0.4
    session = await started(recognizer, SessionConfig(sample_rate=16000))
    collector = Collector(session)

    await feed_seconds(session, 2.0)
    await until(lambda: len(collector.interims) >= 1)
    assert collector.finals == []

    began = time.monotonic()
    await asyncio.wait_for(session.close(), WAIT)
    assert time.monotonic() - began >= 0.4  # close() waited for the service's answer
    await collector.done(within=1.0)  # close() has flushed: results() ends right away

    assert collector.error is None
    (final,) = collector.finals
    assert (final.text, final.offset) == ("Goodbye for now.", ticks(1.0))
    assert collector.results[-1] is final
    assert standin.connections[0].end_of_audio
    await session.feed(bytes(640))  # feeding a closed session is ignored
    await session.close()  # and closing twice is harmless


async def test_abort_ends_results_without_flushing(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    standin.script = [ScriptedPhrase("This call never really finishes.", 0.5, 5.0)]
    session = await started(recognizer, SessionConfig(sample_rate=16000))
    collector = Collector(session)
    await feed_seconds(session, 2.0)
    await until(lambda: len(collector.interims) >= 1)

    await asyncio.wait_for(session.abort(), 1.0)
    await collector.done(within=1.0)

    assert collector.error is None
    assert collector.finals == []
    await asyncio.wait_for(recognizer.aclose(), 5.0)  # the SDK let go in the background
    await standin.wait_for(lambda s: s.connections[0].ended != "")
    assert standin.connections[0].ended == "closed by the client"


# --- connection failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "ended"),
    [(None, "dropped"), (1011, "closed with 1011")],  # TCP reset; the service's internal error
)
async def test_dropped_connection_is_reopened_and_results_continue(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
    code: int | None,
    ended: str,
) -> None:
    """The SDK reconnects by itself, replays unacknowledged audio, and rebases offsets."""
    phrases = [
        ScriptedPhrase("First things first.", 0.2, 1.0, speaker="Guest-1"),
        ScriptedPhrase("Then the second.", 2.0, 3.0, speaker="Guest-2"),
        ScriptedPhrase("And a third.", 3.5, 4.5, speaker="Guest-1"),
    ]
    standin.script = phrases
    standin.drop_at = 1.5  # mid-stream, between the first and the second phrase
    standin.drop_code = code
    session = await started(recognizer, SessionConfig(sample_rate=16000, diarize=True))
    collector = Collector(session)

    await feed_seconds(session, 3.0)
    await standin.wait_for(lambda s: len(s.connections) == 2)
    # The SDK sends on the new connection once more audio arrives (ACS audio never pauses).
    await feed_seconds(session, 2.0)
    await until(lambda: len(collector.finals) == 3)
    await asyncio.wait_for(session.close(), WAIT)
    await collector.done()

    assert collector.error is None
    assert [(r.text, r.offset, r.duration, r.speaker) for r in collector.finals] == [
        (p.text, ticks(p.start), ticks(p.end - p.start), p.speaker) for p in phrases
    ]
    assert [r.words for r in collector.finals] == [expected_words(p) for p in phrases]

    await standin.wait_for(lambda s: s.connections[1].ended != "")
    first, second = standin.connections
    assert first.ended == ended
    assert second.ended == "closed by the client"
    assert second.speech_config is not None  # sent again on the new connection
    # The new connection starts where the last final ended and replays from there.
    (context,) = second.speech_contexts
    assert context["phraseDetection"]["speakerDiarization"]["audioOffsetMS"] == 1000
    assert second.audio_bytes == 4.0 * 16000 * 2
    assert session.connections == 2


async def test_the_sdk_survives_repeated_drops_while_it_makes_progress(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    """More drops than the SDK's four retries: its retry count restarts after a success."""
    phrases = [ScriptedPhrase(f"Phrase number {n}.", n + 0.2, n + 0.8) for n in range(6)]
    standin.script = phrases
    session = await started(recognizer, SessionConfig(sample_rate=16000))
    collector = Collector(session)

    for count in range(1, 7):
        await feed_seconds(session, 1.0)
        await collector.until_finals(count)
        standin.drop()
        await standin.wait_for(connections_reach(count + 1))
    await asyncio.wait_for(session.close(), WAIT)
    await collector.done()

    assert collector.error is None
    assert [(r.text, r.offset) for r in collector.finals] == [
        (p.text, ticks(p.start)) for p in phrases
    ]
    assert session.connections == 7


async def test_service_closing_with_an_error_code_fails_the_session(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    standin.script = [ScriptedPhrase("Before the error.", 0.2, 0.8)]
    standin.drop_at = 1.0
    standin.drop_code = 1007  # what the service sends for a bad request
    standin.drop_reason = "Invalid audio format"
    session = await started(recognizer, SessionConfig(sample_rate=16000))
    collector = Collector(session)

    await feed_seconds(session, 2.0)
    await collector.done()

    assert [r.text for r in collector.finals] == ["Before the error."]
    assert collector.error is not None
    assert "BadRequest" in collector.error.reason
    assert "1007" in collector.error.reason
    assert "Invalid audio format" in collector.error.reason
    assert len(standin.connections) == 1  # no reconnect for a client error
    await session.feed(bytes(640))  # a failed session ignores audio
    await asyncio.wait_for(session.close(), WAIT)


async def test_unreachable_service_after_a_drop_fails_the_session(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    standin.drop_at = 1.0
    session = await started(recognizer, SessionConfig(sample_rate=16000))
    collector = Collector(session)
    await standin.wait_for(lambda s: len(s.connections) == 1)
    standin.refuse_status = 503  # every reconnect is refused

    began = time.monotonic()
    await feed_seconds(session, 2.0)
    await collector.done()

    assert collector.error is not None
    assert "ServiceUnavailable" in collector.error.reason
    assert "503" in collector.error.reason
    assert standin.handshakes == 5  # the first connection and four retries
    assert time.monotonic() - began < 5
    await asyncio.wait_for(session.close(), WAIT)


async def test_rejected_key_fails_the_session(
    standin: SpeechStandIn,
    recognizer: AzureRecognizer,
) -> None:
    standin.refuse_status = 401
    session = await started(recognizer, SessionConfig(sample_rate=16000))
    collector = Collector(session)
    await feed_seconds(session, 0.5)
    await collector.done()

    assert collector.error is not None
    assert "AuthenticationFailure" in collector.error.reason
    assert "401" in collector.error.reason
    await asyncio.wait_for(session.close(), WAIT)


async def test_audio_piling_up_while_reconnecting_fails_the_session(
    standin: SpeechStandIn,
) -> None:
    """The SDK waits ~10 s on an unanswered upgrade; the backlog bound does not."""
    backend = AzureRecognizer(endpoint=standin.url, backlog_seconds=1)
    try:
        standin.drop_at = 0.5
        session = await started(backend, SessionConfig(sample_rate=16000))
        collector = Collector(session)
        await standin.wait_for(lambda s: len(s.connections) == 1)
        standin.stall_handshakes = True

        await feed_seconds(session, 0.8)
        await until(lambda: session.disconnected_at is not None)
        await standin.wait_for(lambda s: s.handshakes >= 2)  # the SDK is reconnecting
        # Counted from the disconnect: audio fed since then cannot have reached the service.
        await feed_seconds(session, 0.9)
        assert collector.error is None
        await feed_seconds(session, 0.2)
        await collector.done()

        assert collector.error is not None
        assert "no connection for more than 1 s" in collector.error.reason
        await asyncio.wait_for(session.close(), 1.0)  # a failed session has nothing to flush

        # Refuse the held upgrade and any later one: the SDK gives up, and its stop returns.
        standin.refuse_status = 503
        standin.stall_handshakes = False
        await asyncio.wait_for(backend.aclose(), 5.0)
    finally:
        standin.refuse_status = 503
        standin.stall_handshakes = False
        await backend.aclose()


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "region", "endpoint", "complaint"),
    [
        ("", "", "", "SPEECH_KEY"),
        ("", "westeurope", "", "SPEECH_KEY"),
        ("secret", "", "", "SPEECH_REGION"),
        ("", "", "https://westeurope.api.cognitive.microsoft.com/", "SPEECH_KEY"),
    ],
)
def test_missing_configuration_is_reported(
    settings: Any, key: str, region: str, endpoint: str, complaint: str
) -> None:
    settings.SPEECH_KEY = key
    settings.SPEECH_REGION = region
    settings.SPEECH_ENDPOINT = endpoint
    with pytest.raises(RecognizerConfigurationError, match=complaint):
        AzureRecognizer.from_settings()
    with pytest.raises(RecognizerConfigurationError):
        recognizer_from_settings("azure")


@pytest.mark.parametrize(
    ("key", "region", "endpoint"),
    [
        ("secret", "westeurope", ""),
        ("secret", "", "https://westeurope.api.cognitive.microsoft.com/"),
        ("", "", "ws://127.0.0.1:9/speech"),
    ],
)
def test_configured_from_settings(settings: Any, key: str, region: str, endpoint: str) -> None:
    settings.SPEECH_KEY = key
    settings.SPEECH_REGION = region
    settings.SPEECH_ENDPOINT = endpoint
    settings.CALLSITE_RECOGNIZER_BACKLOG_SECONDS = 7
    backend = recognizer_from_settings("azure")
    assert isinstance(backend, AzureRecognizer)
    assert backend.name == "azure"
    assert backend.backlog_seconds == 7
