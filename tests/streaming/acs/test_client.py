"""The Call Automation client wrapper, driving the real SDK against the local stand-in service."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from streaming.acs import client
from streaming.acs.client import (
    AnswerResult,
    CallAutomationError,
    CallAutomationNotConfigured,
    call_answer,
    call_hang_up,
    media_streaming_start,
    media_streaming_stop,
    streaming_urls,
    transcription_start,
    transcription_stop,
)

# Imported so pytest finds the fixture here too (tests/conftest.py may also provide it).
from tests.standins.call_automation import (
    CallAutomationStandIn,
    call_automation_standin,  # noqa: F401
)

CALLBACK = "https://callsite.example.com/acs/callbacks/cb-1/?token=t0k"
MEDIA_WS = "wss://callsite.example.com/ws/acs/?token=t0k"
TRANSCRIPTION_WS = "wss://callsite.example.com/ws/acs/?token=t0k&kind=transcription"
COGNITIVE = "https://callsite-ai.cognitiveservices.azure.com/"
HMAC_PREFIX = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Each test builds its SDK client from its own settings, and closes it afterwards."""
    client.reset_clients()
    yield
    client.reset_clients()


@pytest.fixture
def standin(request: pytest.FixtureRequest, settings: Any) -> CallAutomationStandIn:
    """The ``call_automation_standin`` fixture, with ACS_CONNECTION_STRING pointing at it."""
    standin: CallAutomationStandIn = request.getfixturevalue("call_automation_standin")
    settings.ACS_CONNECTION_STRING = standin.connection_string
    return standin


def _answer(**overrides: Any) -> AnswerResult:
    arguments: dict[str, Any] = {
        "incoming_call_context": "eyJhbGciOiJub25lIn0.incoming-context",
        "callback_url": CALLBACK,
        "media_url": MEDIA_WS,
        "transcription_url": TRANSCRIPTION_WS,
        "locale": "en-US",
        "cognitive_services_endpoint": COGNITIVE,
        **overrides,
    }
    return call_answer(**arguments)


# --- answering ------------------------------------------------------------------------------


def test_answer_sends_streaming_transcription_and_intelligence_options(
    standin: CallAutomationStandIn,
) -> None:
    """The answer request carries exactly the media, transcription and cognitive options."""
    _answer(operation_context="call-7")

    [request] = standin.requests
    assert (request.method, request.path) == ("POST", "/calling/callConnections:answer")
    assert request.body == {
        "incomingCallContext": "eyJhbGciOiJub25lIn0.incoming-context",
        "callbackUri": CALLBACK,
        "operationContext": "call-7",
        "mediaStreamingOptions": {
            "transportUrl": MEDIA_WS,
            "transportType": "websocket",
            "contentType": "audio",
            "audioChannelType": "unmixed",
            "startMediaStreaming": True,
            "audioFormat": "pcm16KMono",
            "enableDtmfTones": True,
        },
        "transcriptionOptions": {
            "transportUrl": TRANSCRIPTION_WS,
            "transportType": "websocket",
            "locale": "en-US",
            "startTranscription": True,
            "enableIntermediateResults": True,
        },
        "callIntelligenceOptions": {"cognitiveServicesEndpoint": COGNITIVE},
    }


def test_answer_is_signed_and_versioned(standin: CallAutomationStandIn) -> None:
    """The request is HMAC-signed with the access key, over HTTPS, with an api-version."""
    _answer()

    [request] = standin.requests
    assert request.headers["authorization"].startswith(HMAC_PREFIX)
    assert request.signature_valid
    assert request.headers["x-ms-date"].endswith(" GMT")
    assert request.headers["host"] == f"127.0.0.1:{standin.port}"
    # Answering is idempotent on the service side thanks to these two headers.
    assert request.headers["repeatability-request-id"]
    assert request.headers["repeatability-first-sent"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", request.query["api-version"])


def test_answer_result_comes_from_the_response(standin: CallAutomationStandIn) -> None:
    """call_connection_id, server_call_id and correlation_id are those ACS returned."""
    standin.call_connection_id = "4c1f0000-aaaa-bbbb-cccc-000000000001"
    standin.server_call_id = "aHR0cHM6Ly9zZXJ2ZXItY2FsbA=="
    standin.correlation_id = "b2cc74bf-be72-4a6f-88da-f2107fc6780f"

    result = _answer()

    assert result == AnswerResult(
        call_connection_id="4c1f0000-aaaa-bbbb-cccc-000000000001",
        server_call_id="aHR0cHM6Ly9zZXJ2ZXItY2FsbA==",
        correlation_id="b2cc74bf-be72-4a6f-88da-f2107fc6780f",
    )


def test_answer_with_media_only_omits_transcription_and_intelligence(
    standin: CallAutomationStandIn,
) -> None:
    """Without a transcription URL or cognitive endpoint, only media streaming is requested."""
    _answer(transcription_url=None, locale=None, cognitive_services_endpoint=None)

    [request] = standin.requests
    assert set(request.body) == {"incomingCallContext", "callbackUri", "mediaStreamingOptions"}


def test_answer_with_no_streams_sends_only_context_and_callback(
    standin: CallAutomationStandIn,
) -> None:
    """With every option off the body is just the incoming call context and the callback."""
    _answer(media_url=None, transcription_url=None, locale=None, cognitive_services_endpoint=None)

    [request] = standin.requests
    assert request.body == {
        "incomingCallContext": "eyJhbGciOiJub25lIn0.incoming-context",
        "callbackUri": CALLBACK,
    }


def test_answer_transcription_without_locale_is_refused_before_sending(
    standin: CallAutomationStandIn,
) -> None:
    """ACS needs a locale for transcription, so a missing one fails without a request."""
    with pytest.raises(CallAutomationNotConfigured, match="locale"):
        _answer(locale=None)
    assert standin.requests == []


# --- actions on a call ----------------------------------------------------------------------

ACTIONS: list[tuple[Callable[..., None], dict[str, Any], str, str, Any]] = [
    (
        transcription_start,
        {"locale": "fr-FR", "operation_context": "op"},
        "POST",
        ":startTranscription",
        {"locale": "fr-FR", "operationContext": "op"},
    ),
    (
        transcription_stop,
        {"operation_context": "op"},
        "POST",
        ":stopTranscription",
        {"operationContext": "op"},
    ),
    (media_streaming_start, {}, "POST", ":startMediaStreaming", {}),
    (
        media_streaming_stop,
        {"operation_context": "op"},
        "POST",
        ":stopMediaStreaming",
        {"operationContext": "op"},
    ),
    (call_hang_up, {}, "POST", ":terminate", None),
]


@pytest.mark.parametrize(
    ("action", "kwargs", "method", "suffix", "body"),
    ACTIONS,
    ids=[action[0].__name__ for action in ACTIONS],
)
def test_action_hits_the_call_connection_route(
    standin: CallAutomationStandIn,
    action: Callable[..., None],
    kwargs: dict[str, Any],
    method: str,
    suffix: str,
    body: Any,
) -> None:
    """Each action sends one signed request to /calling/callConnections/<id><suffix>."""
    action("4c1f0000-aaaa-bbbb-cccc-000000000001", **kwargs)

    [request] = standin.requests
    assert request.method == method
    assert request.path == f"/calling/callConnections/4c1f0000-aaaa-bbbb-cccc-000000000001{suffix}"
    assert request.body == body
    assert request.signature_valid
    assert "api-version" in request.query


# --- failures -------------------------------------------------------------------------------


def test_bad_request_becomes_call_automation_error(standin: CallAutomationStandIn) -> None:
    """A 400 carries its status, the ACS error code and message into the exception."""
    standin.fail_next(status=400, code="BadRequest", message="Invalid incoming call context.")

    with pytest.raises(CallAutomationError) as caught:
        _answer()

    error = caught.value
    assert (error.status, error.code, error.reason) == (
        400,
        "BadRequest",
        "Invalid incoming call context.",
    )
    assert str(error) == "answering the call failed: 400 BadRequest: Invalid incoming call context."
    assert len(standin.requests) == 1, "a 400 is not retried"


def test_server_error_is_retried_then_reported(standin: CallAutomationStandIn) -> None:
    """A 500 that outlasts the SDK's retries surfaces with the action in the message."""
    standin.fail_next(status=500, code="InternalServerError", message="Transient failure.", times=3)

    with pytest.raises(CallAutomationError) as caught:
        call_hang_up("call-1")

    assert (caught.value.status, caught.value.code) == (500, "InternalServerError")
    assert str(caught.value).startswith("hanging up the call failed: 500 InternalServerError")
    assert len(standin.requests) == 3


def test_single_server_error_is_retried_with_the_same_repeatability_id(
    standin: CallAutomationStandIn,
) -> None:
    """One 500 is absorbed by a retry that reuses the Repeatability-Request-ID."""
    standin.fail_next(status=500)

    result = _answer()

    first, second = standin.requests
    assert result.call_connection_id
    assert first.headers["repeatability-request-id"] == second.headers["repeatability-request-id"]


def test_wrong_access_key_is_rejected(standin: CallAutomationStandIn, settings: Any) -> None:
    """A key the service does not hold gets 401, reported as a CallAutomationError."""
    wrong_key = base64.b64encode(b"not the stand-in's key, 32 bytes").decode()
    settings.ACS_CONNECTION_STRING = f"endpoint={standin.url}/;accesskey={wrong_key}"

    with pytest.raises(CallAutomationError) as caught:
        media_streaming_start("call-1")

    assert (caught.value.status, caught.value.code) == (401, "Unauthorized")
    assert not standin.requests[0].signature_valid


def test_refused_connection_becomes_call_automation_error(standin: CallAutomationStandIn) -> None:
    """With the service gone, the error has no status and says the connection failed."""
    standin.stop()

    with pytest.raises(CallAutomationError) as caught:
        _answer()

    assert caught.value.status is None
    assert caught.value.code is None
    assert "refused" in caught.value.reason.lower()
    assert str(caught.value).startswith("answering the call failed: ")


def test_standin_answers_unknown_routes_with_an_acs_error(standin: CallAutomationStandIn) -> None:
    """Routes the stand-in does not serve get 404 with an ``{"error": {code, message}}`` body."""
    connection = client.get_client().get_call_connection("call-1")

    with pytest.raises(ResourceNotFoundError) as caught:
        connection.get_call_properties()

    assert caught.value.error is not None
    assert caught.value.error.code == "NotFound"
    assert standin.requests[0].route == "unknown"


@pytest.mark.parametrize(
    "call",
    [_answer, lambda: call_hang_up("call-1"), lambda: transcription_start("call-1")],
    ids=["answer", "hang_up", "transcription_start"],
)
def test_no_connection_string_is_not_configured(settings: Any, call: Callable[[], Any]) -> None:
    """With ACS_CONNECTION_STRING empty every call raises CallAutomationNotConfigured."""
    settings.ACS_CONNECTION_STRING = ""

    with pytest.raises(CallAutomationNotConfigured, match="ACS_CONNECTION_STRING"):
        call()


def test_malformed_connection_string_is_not_configured(settings: Any) -> None:
    """A connection string without an access key is a configuration error, key never echoed."""
    settings.ACS_CONNECTION_STRING = "endpoint=https://acs.example.com/"

    with pytest.raises(CallAutomationNotConfigured, match="not a valid connection string"):
        call_hang_up("call-1")


def test_client_is_cached_per_connection_string(
    standin: CallAutomationStandIn, settings: Any
) -> None:
    """The same connection string reuses one SDK client; a new one builds another."""
    first = client.get_client()
    assert client.get_client() is first

    settings.ACS_CONNECTION_STRING = standin.connection_string.replace("127.0.0.1", "localhost")
    assert client.get_client() is not first

    client.reset_clients()
    settings.ACS_CONNECTION_STRING = standin.connection_string
    assert client.get_client() is not first


# --- streaming_urls -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "token", "callback", "websocket"),
    [
        (
            "https://callsite.example.com",
            None,
            "https://callsite.example.com/acs/callbacks/cb-1/",
            "wss://callsite.example.com/ws/acs/",
        ),
        (
            "https://callsite.example.com",
            "s3cret",
            "https://callsite.example.com/acs/callbacks/cb-1/?token=s3cret",
            "wss://callsite.example.com/ws/acs/?token=s3cret",
        ),
        (
            "http://127.0.0.1:8000",
            None,
            "http://127.0.0.1:8000/acs/callbacks/cb-1/",
            "ws://127.0.0.1:8000/ws/acs/",
        ),
        (
            "http://127.0.0.1:8000",
            "a b&c=d",
            "http://127.0.0.1:8000/acs/callbacks/cb-1/?token=a+b%26c%3Dd",
            "ws://127.0.0.1:8000/ws/acs/?token=a+b%26c%3Dd",
        ),
        (
            "https://example.com/callsite",
            "t",
            "https://example.com/callsite/acs/callbacks/cb-1/?token=t",
            "wss://example.com/callsite/ws/acs/?token=t",
        ),
    ],
    ids=["https", "https-token", "http", "http-token-escaped", "path-prefix"],
)
def test_streaming_urls(
    settings: Any, public_url: str, token: str | None, callback: str, websocket: str
) -> None:
    """Callback and WebSocket URLs follow the public URL's scheme, host and path prefix."""
    settings.CALLSITE_PUBLIC_URL = public_url

    assert streaming_urls(callback_id="cb-1", token=token) == (callback, websocket)


@pytest.mark.parametrize("public_url", ["", "ftp://callsite.example.com", "callsite.example.com"])
def test_streaming_urls_need_an_http_public_url(settings: Any, public_url: str) -> None:
    """An empty or non-HTTP CALLSITE_PUBLIC_URL is a configuration error."""
    settings.CALLSITE_PUBLIC_URL = public_url

    with pytest.raises(CallAutomationNotConfigured, match="CALLSITE_PUBLIC_URL"):
        streaming_urls(callback_id="cb-1", token="t")
