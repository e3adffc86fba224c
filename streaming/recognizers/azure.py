"""Azure AI Speech: one ``ConversationTranscriber`` of the vendor SDK per recognition session.

Each session feeds a ``PushAudioInputStream`` (16-bit mono PCM at the session's sample rate)
and asks for detailed output with word timestamps, so finals carry the service's confidence
(``NBest[0].Confidence``) and timed words. ``feed()`` only copies audio into the push stream;
the SDK's own threads send it over the service's WebSocket, and its event callbacks run on
those threads too. Callbacks convert SDK events into ``Recognition`` values there and hand them
to the session's event loop with ``call_soon_threadsafe``; all session state lives on the
loop. Blocking SDK calls (start, stop) run in threads, never on the loop.

Offsets: the SDK reports ``offset``/``duration`` (and word offsets) in ticks from the first
sample pushed into the stream, which is the contract's timeline, so they pass through.

Connection loss, as the SDK (1.53) handles it:

* A connection that breaks (TCP reset, or the service closing with 1011) is reopened by the
  SDK within about a quarter of a second. Once more audio is pushed it sends ``speech.config``
  and ``speech.context`` again, replays the audio that no final result has covered yet, and
  rebases the service's offsets (words included), so results simply continue on the same
  timeline and the session notices nothing. Its retry count restarts after every reconnect
  that makes progress, so a long call survives any number of such drops.
* When reopening fails four times in a row (about a second; e.g. every upgrade answered 503),
  when the service closes with a client-error code (1007 bad request), or when the first
  upgrade is refused for the key (401), the SDK cancels with ``CancellationReason.Error``;
  ``results()`` then raises ``RecognizerError`` naming the ``CancellationErrorCode``
  (``ServiceUnavailable``, ``BadRequest``, ``AuthenticationFailure``...) and the SDK's
  details.
* An upgrade that is never answered makes the SDK wait about ten seconds per attempt, and it
  keeps buffering pushed audio meanwhile. So a session also fails once more than
  ``CALLSITE_RECOGNIZER_BACKLOG_SECONDS`` of audio was fed while the SDK had no connection
  (connection state from the SDK's ``Connection`` events): the audio path then opens a new
  session and marks the gap, instead of memory growing and results arriving minutes late.
  While connected the SDK sends audio as it is pushed, so there is no other backlog to bound.

Closing: ``close()`` closes the push stream; the SDK sends the end-of-audio message, the
service answers with the last finals and ``turn.end``, and the SDK reports the session stopped,
which ends ``results()``. The wait is bounded (``close_timeout``); after it the transcriber is
stopped in a thread. ``abort()`` ends ``results()`` at once and stops the SDK in the
background. A failed session leaves the SDK to finish by itself first (bounded): a stop
requested while the SDK is reconnecting sits out its 10 s service timeout. ``aclose()`` on the
recognizer waits for sessions still stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from streaming.recognizers import azure_sdk
from streaming.recognizers.azure_sdk import (
    BYTES_PER_SAMPLE,
    Connection,
    Failed,
    SdkTranscription,
    Stopped,
)
from streaming.recognizers.base import (
    END_OF_RESULTS,
    QueuedSession,
    Recognition,
    Recognizer,
    RecognizerConfigurationError,
    RecognizerError,
    SessionConfig,
)

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 30.0  # seconds to wait for the last finals after the end of audio
STOP_TIMEOUT = 15.0  # seconds to wait for the SDK to stop (its own service timeout is 10 s)
# The SDK insists on a key; a local ws:// endpoint (the test stand-in) ignores it.
PLACEHOLDER_KEY = "unused-local-endpoint"


class AzureRecognizer(Recognizer):
    """Opens Azure AI Speech sessions with one key and either a region or an endpoint."""

    name = "azure"

    def __init__(
        self,
        *,
        key: str = "",
        region: str = "",
        endpoint: str = "",
        backlog_seconds: int = 20,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        endpoint = endpoint.strip()
        if not key and not endpoint.lower().startswith("ws://"):
            raise RecognizerConfigurationError(
                "the azure recognizer needs SPEECH_KEY with SPEECH_REGION or SPEECH_ENDPOINT "
                "(an endpoint alone only for a local ws:// service)"
            )
        if not region and not endpoint:
            raise RecognizerConfigurationError(
                "the azure recognizer needs SPEECH_REGION (e.g. westeurope) or SPEECH_ENDPOINT "
                "along with SPEECH_KEY"
            )
        self.key = key or PLACEHOLDER_KEY
        self.region = region
        self.endpoint = endpoint
        self.backlog_seconds = backlog_seconds
        self.close_timeout = close_timeout
        self._stoppers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.speech_config(SessionConfig(sample_rate=16000))  # fail now on a malformed endpoint

    @classmethod
    def from_settings(cls) -> AzureRecognizer:
        from django.conf import settings

        return cls(
            key=settings.SPEECH_KEY,
            region=settings.SPEECH_REGION,
            endpoint=settings.SPEECH_ENDPOINT,
            backlog_seconds=settings.CALLSITE_RECOGNIZER_BACKLOG_SECONDS,
        )

    def speech_config(self, config: SessionConfig) -> Any:
        """The SDK configuration for one session."""
        speechsdk = azure_sdk.speechsdk()
        try:
            if self.endpoint:
                speech_config = speechsdk.SpeechConfig(
                    subscription=self.key, endpoint=self.endpoint
                )
            else:
                speech_config = speechsdk.SpeechConfig(subscription=self.key, region=self.region)
        except (ValueError, RuntimeError) as error:
            raise RecognizerConfigurationError(
                f"Azure Speech rejected the configuration: {error}"
            ) from error
        speech_config.speech_recognition_language = config.locale
        speech_config.output_format = speechsdk.OutputFormat.Detailed
        speech_config.request_word_level_timestamps()
        if config.diarize:
            speech_config.set_property(
                speechsdk.PropertyId.SpeechServiceResponse_DiarizeIntermediateResults, "true"
            )
        for name, value in config.options.items():
            speech_config.set_property_by_name(name, value)  # SDK property names, verbatim
        return speech_config

    def open(self, config: SessionConfig) -> AzureSession:
        return AzureSession(self, config)

    def track(self, thread: threading.Thread) -> None:
        with self._lock:
            self._stoppers = {t for t in self._stoppers if t.is_alive()}
            self._stoppers.add(thread)

    async def aclose(self) -> None:
        """Wait (bounded) for sessions that are still stopping their SDK objects."""
        with self._lock:
            stoppers = list(self._stoppers)
            self._stoppers.clear()

        def join() -> None:
            deadline = time.monotonic() + STOP_TIMEOUT
            for thread in stoppers:
                thread.join(max(deadline - time.monotonic(), 0))

        if stoppers:
            await asyncio.to_thread(join)


class AzureSession(QueuedSession):
    """One ``ConversationTranscriber`` fed through a push stream; see the module docstring."""

    def __init__(self, recognizer: AzureRecognizer, config: SessionConfig) -> None:
        super().__init__(config)
        self.recognizer = recognizer
        self.fed_bytes = 0
        self.max_backlog_bytes = recognizer.backlog_seconds * config.sample_rate * BYTES_PER_SAMPLE
        self.disconnected_at: int | None = 0  # fed_bytes when the SDK lost its connection
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sdk: SdkTranscription | None = None
        self._started = False
        self._closing = False
        self._ended = False  # results() has its last item (end or error) queued
        self._sdk_done = asyncio.Event()  # session stopped or canceled, as the SDK said
        self._released = asyncio.Event()  # the SDK objects are stopped and let go
        self._stopper: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        sdk = SdkTranscription(self.recognizer.speech_config(self.config), self.config, self._post)
        try:
            await asyncio.to_thread(sdk.start)
        except RecognizerError:
            self._end()
            raise
        except Exception as error:  # the SDK raises RuntimeError with its own message
            self._end()
            raise RecognizerError(f"Azure Speech could not start: {error}") from error
        finally:
            if sdk.transcriber is not None:
                self._sdk = sdk

    async def feed(self, pcm: bytes) -> None:
        if self._sdk is None or self._closing or self._ended or not pcm:
            return
        self.fed_bytes += len(pcm)
        if (
            self.disconnected_at is not None
            and self.fed_bytes - self.disconnected_at > self.max_backlog_bytes
        ):
            self._fail(
                f"Azure Speech had no connection for more than "
                f"{self.recognizer.backlog_seconds} s of audio"
            )
            return
        self._sdk.write(pcm)

    async def close(self) -> None:
        if self._closing:  # closed, aborted or failed: nothing left to flush
            return
        self._closing = True
        if self._sdk is None:
            self._end()
            return
        if not self._ended:
            self._sdk.end_audio()
            try:
                await asyncio.wait_for(self._sdk_done.wait(), self.recognizer.close_timeout)
            except TimeoutError:
                self._fail(
                    f"Azure Speech did not finish within {self.recognizer.close_timeout:g} s "
                    "of the end of audio"
                )
        self._stop_sdk()
        await self._wait_released()
        self._end()

    async def abort(self) -> None:
        self._closing = True
        self._end()
        if self._sdk is not None:
            self._stop_sdk()

    # --- SDK threads -> event loop --------------------------------------------------------

    def _post(self, item: object) -> None:
        """Hand ``item`` to the event loop; runs on SDK threads."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads any more
            loop.call_soon_threadsafe(self._deliver, item)

    # --- on the event loop ----------------------------------------------------------------

    def _deliver(self, item: object) -> None:
        if isinstance(item, Recognition):
            if not self._ended:
                self.queue.put_nowait(item)
        elif isinstance(item, Connection):
            if item.connected:
                self.connections += 1
                self.disconnected_at = None
            elif self.disconnected_at is None:
                self.disconnected_at = self.fed_bytes
        elif isinstance(item, Failed):
            self._sdk_done.set()
            self._fail(item.reason)
        elif isinstance(item, Stopped):
            self._sdk_done.set()
            if not self._closing:
                self._fail("Azure Speech stopped the session unexpectedly")
            else:
                self._end()

    def _fail(self, reason: str) -> None:
        if self._ended:
            return
        logger.warning("%s: Azure Speech session failed: %s", self.config.label, reason)
        self._ended = True
        self.queue.put_nowait(RecognizerError(reason))
        if not self._closing:
            self._closing = True
            self._stop_sdk(end_audio=False)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self.queue.put_nowait(END_OF_RESULTS)

    def _stop_sdk(self, *, end_audio: bool = True) -> None:
        """Stop and let go of the SDK objects in a thread (stopping blocks until it is done)."""
        sdk, loop = self._sdk, self._loop
        if self._stopper is not None or loop is None or sdk is None:
            return
        timeout = self.recognizer.close_timeout

        def stop() -> None:
            try:
                sdk.stop(end_audio=end_audio, timeout=timeout)
            finally:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._let_go)

        self._stopper = threading.Thread(
            target=stop, name=f"azure-speech-stop {self.config.label}", daemon=True
        )
        self.recognizer.track(self._stopper)
        self._stopper.start()

    def _let_go(self) -> None:
        self._sdk = None
        self._released.set()

    async def _wait_released(self) -> None:
        if self._stopper is None:
            return
        try:
            await asyncio.wait_for(self._released.wait(), STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("%s: Azure Speech did not stop in time", self.config.label)
