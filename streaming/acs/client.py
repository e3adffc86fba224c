"""A thin, synchronous wrapper over the Azure Communication Services Call Automation SDK.

Every function here makes one REST call through ``azure-communication-callautomation`` and turns
whatever goes wrong (an error status, a refused connection, a malformed connection string) into
:class:`CallAutomationError`, so callers handle one exception type whose message says what failed.

The SDK client is built from ``settings.ACS_CONNECTION_STRING`` and cached per connection string:
it holds a pooled HTTP session, and building it per call would open a new TLS connection each
time. ``from_connection_string`` always talks HTTPS (the SDK drops the scheme the string names).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, urlencode, urlsplit

from azure.communication.callautomation import (
    AudioFormat,
    CallAutomationClient,
    CallConnectionClient,
    CallConnectionProperties,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    StreamingTransportType,
    TranscriptionOptions,
)
from azure.communication.callautomation._generated.models import (
    WebSocketTranscriptionOptions as _RestTranscriptionOptions,
)
from azure.core.exceptions import AzureError, HttpResponseError
from django.conf import settings

__all__ = [
    "AnswerResult",
    "CallAutomationError",
    "CallAutomationNotConfigured",
    "call_answer",
    "call_hang_up",
    "connection_result",
    "get_client",
    "media_streaming_start",
    "media_streaming_stop",
    "on_call",
    "on_client",
    "reset_clients",
    "streaming_options",
    "streaming_urls",
    "transcription_start",
    "transcription_stop",
]

# azure-core waits 300 s for a connection or a response by default, which would pin a worker
# for minutes while an incoming call rings out; ACS answers in well under a second.
_CONNECTION_TIMEOUT = 5
_READ_TIMEOUT = 15
# Every request here is a POST, which azure-core retries only on 500/503/504 (or a Retry-After
# header), never on a failed connection. The SDK puts Repeatability-Request-ID on answer and
# terminate, so a retry cannot act twice. Two retries (at once, then after 1 s) cover a blip
# without outliving the ringing call; the default is three, up to 3.2 s apart.
_RETRY_TOTAL = 2
_RETRY_BACKOFF = 0.5


# What a call into the SDK can raise when ACS cannot be reached or says no: azure-core errors,
# OSError from the transport below it (e.g. an unreadable CA bundle), and ValueError for
# arguments or keys the SDK rejects (a non-base64 access key fails only when signing).
_SDK_FAILURES = (AzureError, OSError, ValueError)


class CallAutomationError(Exception):
    """A Call Automation request failed.

    ``status`` is the HTTP status ACS returned (None when no response arrived), ``code`` the
    error code from the response body when it had one, ``reason`` a human-readable cause.
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.reason = reason or message


class CallAutomationNotConfigured(CallAutomationError):
    """Call Automation is off or misconfigured (no connection string, no public URL)."""


@dataclass(frozen=True)
class AnswerResult:
    """What ACS returned for an answered call."""

    call_connection_id: str
    server_call_id: str | None
    correlation_id: str | None


T = TypeVar("T")

_clients: dict[str, CallAutomationClient] = {}
_clients_lock = threading.Lock()


def get_client() -> CallAutomationClient:
    """The SDK client for ``settings.ACS_CONNECTION_STRING``, built once per connection string.

    Raises :class:`CallAutomationNotConfigured` when the setting is empty or unparsable.
    """
    connection_string = settings.ACS_CONNECTION_STRING
    if not connection_string:
        raise CallAutomationNotConfigured(
            "Call Automation is not configured: ACS_CONNECTION_STRING is empty"
        )
    with _clients_lock:
        client = _clients.get(connection_string)
        if client is None:
            try:
                client = CallAutomationClient.from_connection_string(
                    connection_string,
                    connection_timeout=_CONNECTION_TIMEOUT,
                    read_timeout=_READ_TIMEOUT,
                    retry_total=_RETRY_TOTAL,
                    retry_backoff_factor=_RETRY_BACKOFF,
                )
            except ValueError as exc:
                # The SDK's message names the expected format; it never echoes the key.
                raise CallAutomationNotConfigured(
                    f"ACS_CONNECTION_STRING is not a valid connection string: {exc}"
                ) from exc
            _clients[connection_string] = client
        return client


def reset_clients() -> None:
    """Close and forget every cached client (tests point settings at new endpoints)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def _failure(action: str, exc: Exception) -> CallAutomationError:
    """Turn an SDK or transport exception into a :class:`CallAutomationError` for ``action``."""
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        error = exc.error  # the parsed {"error": {"code", "message"}} body, if there was one
        code = error.code if error is not None and error.code else None
        reason = (error.message if error is not None else None) or exc.reason or str(exc.message)
        head = f"{status} {code}" if code else f"{status}"
        return CallAutomationError(
            f"{action} failed: {head}: {reason}", status=status, code=code, reason=reason
        )
    reason = str(exc.message) if isinstance(exc, AzureError) else str(exc)
    return CallAutomationError(f"{action} failed: {reason}", reason=reason)


class _RestTranscriptionOptionsWithExtras(_RestTranscriptionOptions):
    """The REST transcription options with fields this SDK version cannot send yet.

    The extras are serialised into the request body with the rest (so they are signed with
    it): ``additional_properties`` is the generated models' own mechanism for that.
    """

    _attribute_map = {
        **_RestTranscriptionOptions._attribute_map,
        "additional_properties": {"key": "", "type": "{object}"},
    }


class _TranscriptionOptionsWithExtras(TranscriptionOptions):
    """``TranscriptionOptions`` plus REST fields the Python SDK does not model yet."""

    def __init__(self, *, extras: dict[str, object], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.extras = extras

    def _to_generated(self) -> _RestTranscriptionOptions:
        generated = _RestTranscriptionOptionsWithExtras(
            transport_url=self.transport_url,
            transport_type=self.transport_type,
            locale=self.locale,
            start_transcription=self.start_transcription,
            speech_recognition_model_endpoint_id=self.speech_recognition_model_endpoint_id,
            enable_intermediate_results=self.enable_intermediate_results,
        )
        generated.additional_properties = dict(self.extras)
        return generated


def transcription_extras() -> dict[str, object]:
    """What ``CALLSITE_TRANSCRIPTION_*`` adds to the answer's ``transcriptionOptions``: the
    REST API's sentiment, PII redaction, summarization and language-identification fields."""
    extras: dict[str, object] = {}
    if settings.CALLSITE_TRANSCRIPTION_SENTIMENT:
        extras["enableSentimentAnalysis"] = True
    if settings.CALLSITE_TRANSCRIPTION_PII_REDACTION:
        extras["piiRedactionOptions"] = {
            "enable": True,
            "redactionType": settings.CALLSITE_TRANSCRIPTION_PII_REDACTION,
        }
    if settings.CALLSITE_TRANSCRIPTION_SUMMARIZATION:
        summary: dict[str, object] = {"enableEndCallSummary": True}
        if settings.CALLSITE_TRANSCRIPTION_LOCALE:
            summary["locale"] = settings.CALLSITE_TRANSCRIPTION_LOCALE
        extras["summarizationOptions"] = summary
    if settings.CALLSITE_TRANSCRIPTION_LOCALES:
        extras["locales"] = list(settings.CALLSITE_TRANSCRIPTION_LOCALES)
    return extras


def streaming_options(
    *,
    media_url: str | None,
    transcription_url: str | None,
    locale: str | None,
    bidirectional: bool = False,
) -> tuple[MediaStreamingOptions | None, TranscriptionOptions | None]:
    """The streaming options every call Callsite joins is given (answered, room or placed).

    ``media_url`` asks for unmixed 16 kHz mono PCM audio and DTMF tones, started at once (and
    audio back into the call when ``bidirectional``); ``transcription_url`` asks for ACS live
    transcription in ``locale`` (required then), with intermediate results and whatever
    ``transcription_extras`` adds.
    """
    media = None
    if media_url:
        media = MediaStreamingOptions(
            transport_url=media_url,
            transport_type=StreamingTransportType.WEBSOCKET,
            content_type=MediaStreamingContentType.AUDIO,
            audio_channel_type=MediaStreamingAudioChannelType.UNMIXED,
            start_media_streaming=True,
            enable_bidirectional=True if bidirectional else None,
            audio_format=AudioFormat.PCM16_K_MONO,
            enable_dtmf_tones=True,
        )
    transcription = None
    if transcription_url:
        if not locale:
            # ACS rejects transcription options without a locale; fail before the call rings out.
            raise CallAutomationNotConfigured("live transcription needs a locale")
        transcription = _TranscriptionOptionsWithExtras(
            extras=transcription_extras(),
            transport_url=transcription_url,
            transport_type=StreamingTransportType.WEBSOCKET,
            locale=locale,
            start_transcription=True,
            enable_intermediate_results=True,
        )
    return media, transcription


def connection_result(properties: CallConnectionProperties, action: str) -> AnswerResult:
    """The ids of a call connection ACS returned for ``action``; an error if it has none."""
    if not properties.call_connection_id:
        raise CallAutomationError(
            f"{action} failed: ACS returned no call connection id",
            status=200,
            reason="ACS returned no call connection id",
        )
    return AnswerResult(
        call_connection_id=properties.call_connection_id,
        server_call_id=properties.server_call_id,
        correlation_id=properties.correlation_id,
    )


def call_answer(
    *,
    incoming_call_context: str,
    callback_url: str,
    media_url: str | None,
    transcription_url: str | None,
    locale: str | None,
    cognitive_services_endpoint: str | None,
    operation_context: str | None = None,
    bidirectional: bool = False,
) -> AnswerResult:
    """Answer an incoming call, asking ACS to stream to the given WebSocket URLs
    (:func:`streaming_options`)."""
    try:
        media, transcription = streaming_options(
            media_url=media_url,
            transcription_url=transcription_url,
            locale=locale,
            bidirectional=bidirectional,
        )
    except CallAutomationNotConfigured as error:
        raise CallAutomationNotConfigured(f"answering with {error}") from error
    client = get_client()
    try:
        properties = client.answer_call(
            incoming_call_context,
            callback_url,
            cognitive_services_endpoint=cognitive_services_endpoint or None,
            operation_context=operation_context,
            media_streaming=media,
            transcription=transcription,
        )
    except _SDK_FAILURES as exc:
        raise _failure("answering the call", exc) from exc
    return connection_result(properties, "answering the call")


def on_call(
    action: str, call_connection_id: str, request: Callable[[CallConnectionClient], T]
) -> T:
    """Run ``request`` on the call's connection client, reporting failures as ``action``."""
    client = get_client()
    try:
        return request(client.get_call_connection(call_connection_id))
    except _SDK_FAILURES as exc:
        raise _failure(action, exc) from exc


def on_client(action: str, request: Callable[[CallAutomationClient], T]) -> T:
    """Run ``request`` on the SDK client itself, reporting failures as ``action``."""
    client = get_client()
    try:
        return request(client)
    except _SDK_FAILURES as exc:
        raise _failure(action, exc) from exc


def transcription_start(
    call_connection_id: str, *, locale: str | None = None, operation_context: str | None = None
) -> None:
    """Start ACS live transcription on a call answered with a transcription URL.

    ``locale`` switches the language; None keeps the one given when answering.
    """
    on_call(
        "starting transcription",
        call_connection_id,
        lambda call: call.start_transcription(locale=locale, operation_context=operation_context),
    )


def transcription_stop(call_connection_id: str, *, operation_context: str | None = None) -> None:
    """Stop ACS live transcription on a call."""
    on_call(
        "stopping transcription",
        call_connection_id,
        lambda call: call.stop_transcription(operation_context=operation_context),
    )


def media_streaming_start(call_connection_id: str, *, operation_context: str | None = None) -> None:
    """Start audio streaming on a call answered with a media streaming URL."""
    on_call(
        "starting media streaming",
        call_connection_id,
        lambda call: call.start_media_streaming(operation_context=operation_context),
    )


def media_streaming_stop(call_connection_id: str, *, operation_context: str | None = None) -> None:
    """Stop audio streaming on a call."""
    on_call(
        "stopping media streaming",
        call_connection_id,
        lambda call: call.stop_media_streaming(operation_context=operation_context),
    )


def call_hang_up(call_connection_id: str) -> None:
    """End the call for every participant (``POST .../{id}:terminate``)."""
    on_call(
        "hanging up the call",
        call_connection_id,
        lambda call: call.hang_up(is_for_everyone=True),
    )


def streaming_urls(*, callback_id: str, token: str | None) -> tuple[str, str]:
    """The ``(callback_url, websocket_url)`` pair ACS is given, built from CALLSITE_PUBLIC_URL.

    The callback URL is ``<public>/acs/callbacks/<callback_id>/`` and the WebSocket URL
    ``<public>/ws/acs/`` with the scheme switched to ws/wss; both carry ``?token=`` when a token
    is given, since ACS sends back exactly the URLs it was handed.
    """
    public_url = settings.CALLSITE_PUBLIC_URL
    if not public_url:
        raise CallAutomationNotConfigured(
            "Call Automation is not configured: CALLSITE_PUBLIC_URL is empty"
        )
    parts = urlsplit(public_url)
    ws_schemes = {"http": "ws", "https": "wss"}
    if parts.scheme not in ws_schemes or not parts.netloc:
        raise CallAutomationNotConfigured(
            f"CALLSITE_PUBLIC_URL must be an http:// or https:// URL, not {public_url!r}"
        )
    base = f"{parts.netloc}{parts.path.rstrip('/')}"
    query = f"?{urlencode({'token': token})}" if token else ""
    callback_url = f"{parts.scheme}://{base}/acs/callbacks/{quote(callback_id, safe='')}/{query}"
    websocket_url = f"{ws_schemes[parts.scheme]}://{base}/ws/acs/{query}"
    return callback_url, websocket_url
