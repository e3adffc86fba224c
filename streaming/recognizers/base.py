"""The contract every speech recognizer backend implements.

A backend (``Recognizer``) opens one ``RecognitionSession`` per audio stream: one per call for
mixed audio, one per participant for unmixed audio. The audio path feeds the session 16-bit
little-endian mono PCM at the session's sample rate, in the order it was spoken, and reads
``Recognition`` results from it:

    session = recognizer.open(SessionConfig(sample_rate=16000, locale="en-US", diarize=False))
    await session.start()
    await session.feed(pcm)          # as often as frames arrive; never blocks the event loop
    async for result in session.results():
        ...                          # interim and final results, in order
    await session.close()            # flushes: the last finals arrive before results() ends

Offsets and durations are exact 100-ns ticks counted from the first sample fed to the session;
the audio path maps them onto the call's timeline. A session that fails (its worker process
died, its service connection dropped for good) ends ``results()`` by raising
``RecognizerError``; the audio path then opens a new session and marks the gap on the call.
Backends must never run blocking work on the event loop: decoders run in a worker process
(pocketsphinx holds the GIL while decoding) or in the vendor SDK's own threads.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


class RecognizerError(Exception):
    """A recognition session failed; ``reason`` says why, for logs and the call's gap marker."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecognizerConfigurationError(RecognizerError):
    """The backend cannot run with the current settings (missing key, missing package)."""


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    """One word; offset and duration in 100-ns ticks from the session's first sample."""

    text: str
    offset: int
    duration: int
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Recognition:
    """One interim (``final=False``) or final result.

    ``speaker`` is a label from the backend's own diarization ("Guest-1"), set only on sessions
    opened with ``diarize=True``; per-participant sessions already know who speaks.
    ``confidence`` is in [0, 1] or None when the backend gives none (interim results).
    An interim with empty ``text`` says only that speech is in progress over its span: it
    counts as talk for the live figures and nothing is shown.
    """

    text: str
    final: bool
    offset: int
    duration: int
    confidence: float | None = None
    words: tuple[RecognizedWord, ...] = ()
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a session needs to know about its audio.

    ``label`` names the stream in logs ("call 12 / 4:+15551230000"); ``diarize`` asks the
    backend to tell speakers apart (mixed audio).
    """

    sample_rate: int
    locale: str = "en-US"
    diarize: bool = False
    label: str = ""
    options: dict[str, str] = field(default_factory=dict)


class RecognitionSession(abc.ABC):
    """One stream's recognition; see the module docstring for the life cycle."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config

    @abc.abstractmethod
    async def start(self) -> None:
        """Get ready to take audio; raises RecognizerError if that is impossible."""

    @abc.abstractmethod
    async def feed(self, pcm: bytes) -> None:
        """Queue PCM for recognition; returns at once (bounded buffering inside)."""

    @abc.abstractmethod
    def results(self) -> AsyncIterator[Recognition]:
        """Yield results in order; ends after ``close()`` has flushed, raises RecognizerError."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush what was fed (finals still arrive through ``results()``) and release."""

    async def abort(self) -> None:
        """Drop the session without flushing (the stream is gone for good); default: close."""
        await self.close()


END_OF_RESULTS = object()  # queued by a session after its last result


class QueuedSession(RecognitionSession):
    """A session whose backend hands results to an asyncio queue (from any thread, through
    ``loop.call_soon_threadsafe``): results, then ``END_OF_RESULTS`` or a ``RecognizerError``."""

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    async def results(self) -> AsyncIterator[Recognition]:
        while True:
            item = await self.queue.get()
            if item is END_OF_RESULTS:
                return
            if isinstance(item, RecognizerError):
                raise item
            assert isinstance(item, Recognition)
            yield item


class Recognizer(abc.ABC):
    """A backend: opens sessions. One instance serves the whole process."""

    name: str = ""

    @abc.abstractmethod
    def open(self, config: SessionConfig) -> RecognitionSession:
        """Create a session (not started yet)."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release process-wide resources (worker pools, SDK objects); default: nothing."""
