"""The Speech SDK's side of an Azure session: its objects, and callbacks on its own threads.

``SdkTranscription`` builds one ``ConversationTranscriber`` on a ``PushAudioInputStream``,
converts what its callbacks report into plain values (a ``Recognition``, ``Connection``,
``Failed``, ``Stopped``) and hands each to ``post``, which the session (``azure.py``) makes
thread-safe. Every call here may block: the session runs them in threads, never on its loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streaming.recognizers.base import (
    Recognition,
    RecognizedWord,
    RecognizerConfigurationError,
    SessionConfig,
)

logger = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2
UNKNOWN_SPEAKER = "Unknown"


def speechsdk() -> Any:
    try:
        import azure.cognitiveservices.speech as sdk
    except ImportError as error:  # pragma: no cover - the package is a dependency
        raise RecognizerConfigurationError(
            "the azure recognizer needs the azure-cognitiveservices-speech package"
        ) from error
    return sdk


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


@dataclass(frozen=True, slots=True)
class Connection:
    connected: bool


class Stopped:
    """The SDK reported the session stopped."""


class SdkTranscription:
    """One session's SDK objects; see the module docstring."""

    def __init__(
        self, speech_config: Any, config: SessionConfig, post: Callable[[object], None]
    ) -> None:
        self.speech_config = speech_config
        self.config = config
        self.post = post
        self.finished = threading.Event()  # the SDK said the session stopped or was canceled
        self.stream: Any = None
        self.transcriber: Any = None
        self.connection: Any = None

    def start(self) -> None:
        sdk = speechsdk()
        stream_format = sdk.audio.AudioStreamFormat(
            samples_per_second=self.config.sample_rate,
            bits_per_sample=8 * BYTES_PER_SAMPLE,
            channels=1,
        )
        self.stream = sdk.audio.PushAudioInputStream(stream_format)
        audio_config = sdk.audio.AudioConfig(stream=self.stream)
        transcriber = sdk.transcription.ConversationTranscriber(
            speech_config=self.speech_config, audio_config=audio_config
        )
        transcriber.transcribing.connect(self._on_transcribing)
        transcriber.transcribed.connect(self._on_transcribed)
        transcriber.canceled.connect(self._on_canceled)
        transcriber.session_stopped.connect(self._on_session_stopped)
        connection = sdk.Connection.from_recognizer(transcriber)
        connection.connected.connect(self._on_connected)
        connection.disconnected.connect(self._on_disconnected)
        self.transcriber = transcriber
        self.connection = connection
        transcriber.start_transcribing_async().get()

    def write(self, pcm: bytes) -> None:
        self.stream.write(pcm)

    def end_audio(self) -> None:
        """The end of the audio: the service sends its last finals, then the session stops."""
        self.stream.close()

    def stop(self, *, end_audio: bool, timeout: float) -> None:
        """Stop the transcriber and let go of everything (blocks until the SDK is done)."""
        if end_audio:
            with contextlib.suppress(Exception):
                self.stream.close()
        else:
            # A failed session: let the SDK end it by itself first (bounded). A stop (or end
            # of audio) requested while the SDK is reconnecting waits out its 10 s service
            # timeout even when the reconnect fails at once.
            self.finished.wait(timeout)
        transcriber, connection = self.transcriber, self.connection
        try:
            transcriber.stop_transcribing_async().get()
        except Exception:
            logger.exception("%s: stopping Azure Speech failed", self.config.label)
        for signal in (
            transcriber.transcribing,
            transcriber.transcribed,
            transcriber.canceled,
            transcriber.session_stopped,
            connection.connected,
            connection.disconnected,
        ):
            signal.disconnect_all()
        with contextlib.suppress(Exception):
            connection.close()  # else the socket stays open until garbage collection
        self.transcriber = self.connection = self.stream = None

    # --- callbacks, on the SDK's threads -------------------------------------------------------

    def _on_transcribing(self, event: Any) -> None:
        result = event.result
        if result.text:
            self.post(
                Recognition(
                    text=result.text,
                    final=False,
                    offset=int(result.offset),
                    duration=int(result.duration),
                    speaker=self._speaker(result),
                )
            )

    def _on_transcribed(self, event: Any) -> None:
        result = event.result
        if result.reason != speechsdk().ResultReason.RecognizedSpeech or not result.text:
            return  # NoMatch, and the service's empty finals for noise
        try:
            recognition = final_recognition(result, self._speaker(result))
        except (ValueError, KeyError, TypeError) as error:
            self.post(Failed(f"Azure Speech sent a final result that did not parse: {error}"))
            return
        self.post(recognition)

    def _on_canceled(self, event: Any) -> None:
        self.finished.set()
        details = event.cancellation_details
        if details.reason == speechsdk().CancellationReason.Error:
            code = getattr(details.code, "name", str(details.code))
            self.post(
                Failed(f"Azure Speech canceled the session ({code}): {details.error_details}")
            )
        else:
            self.post(Stopped())  # end of stream

    def _on_session_stopped(self, event: Any) -> None:
        self.finished.set()
        self.post(Stopped())

    def _on_connected(self, event: Any) -> None:
        self.post(Connection(connected=True))

    def _on_disconnected(self, event: Any) -> None:
        self.post(Connection(connected=False))

    def _speaker(self, result: Any) -> str | None:
        speaker = result.speaker_id or ""
        if not self.config.diarize or speaker in ("", UNKNOWN_SPEAKER):
            return None
        return str(speaker)


def final_recognition(result: Any, speaker: str | None) -> Recognition:
    """A final ``Recognition`` from a ``RecognizedSpeech`` result and its detailed JSON."""
    detail = json.loads(result.json) if result.json else {}
    best = (detail.get("NBest") or [{}])[0]
    confidence = best.get("Confidence")
    words = tuple(
        RecognizedWord(
            text=str(word["Word"]),
            offset=int(word["Offset"]),
            duration=int(word["Duration"]),
            confidence=unit(word.get("Confidence")),
        )
        for word in best.get("Words") or ()
    )
    return Recognition(
        text=result.text,
        final=True,
        offset=int(result.offset),
        duration=int(result.duration),
        confidence=unit(confidence),
        words=words,
        speaker=speaker,
    )


def unit(value: Any) -> float | None:
    if value is None:
        return None
    return min(max(float(value), 0.0), 1.0)
