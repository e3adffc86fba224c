"""HTTP endpoints ACS calls: Event Grid deliveries and Call Automation callbacks.

Both answer malformed bodies with 400 and a reason (413 for a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE``, 415 for one that is not JSON), refuse unauthenticated requests
with 401, and never half-apply a delivery: every event is checked before any is applied, and
each is applied in its own transaction, keyed by its id, so ACS's retries are safe.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from streaming.acs.auth import acs_request_decision, http_request_decision
from streaming.acs.webhooks import (
    INCOMING_CALL,
    VALIDATION_EVENT,
    EventError,
    IncomingCall,
    body_json,
    event_list,
    event_type,
    parse_cloud_event,
    parse_incoming_call,
)
from streaming.automation import lifecycle
from streaming.models import Call

logger = logging.getLogger(__name__)


def _error(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"error": reason}, status=status)


class BodyRefused(Exception):
    """A body that is not read at all: ``status`` (413 or 415) and ``reason`` for the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _json_body(request: HttpRequest) -> Any:
    # application/json or application/*+json (CloudEvents), the types Werkzeug's is_json
    # accepts: Microsoft's Python samples read these deliveries with request.json.
    media_type = (request.content_type or "").lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        shown = repr(media_type[:100]) if media_type else "none"
        reason = f"the body must be JSON (Content-Type: application/json), not {shown}"
        raise BodyRefused(415, reason)
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        body = request.body
    except RequestDataTooBig:
        body = None
    if body is None or (limit is not None and len(body) > limit):  # the latter if chunked
        raise BodyRefused(413, f"the body is larger than {limit} bytes")
    return body_json(body)


@csrf_exempt
@require_http_methods(["POST", "OPTIONS"])
def event_grid(request: HttpRequest) -> HttpResponse:
    """Event Grid webhook: the subscription handshake and ``IncomingCall`` events.

    Event Grid carries no ACS token, so the subscription URL holds the shared secret as
    ``?token=`` (or DEBUG is on).
    """
    decision = acs_request_decision(authorization=None, token_param=request.GET.get("token"))
    if not decision.allowed:
        logger.warning(
            "refused Event Grid delivery from %s: %s",
            request.META.get("REMOTE_ADDR"),
            decision.reason,
        )
        return _error(401, decision.reason)
    if request.method == "OPTIONS":
        # CloudEvents webhook abuse protection, used by CloudEvents-schema subscriptions.
        response = HttpResponse(status=200)
        origin = request.headers.get("WebHook-Request-Origin")
        if origin:
            response["WebHook-Allowed-Origin"] = origin
        return response
    try:
        deliveries: list[tuple[str, IncomingCall | None]] = []
        for index, event in enumerate(event_list(_json_body(request))):
            kind = event_type(event, index)
            if kind == VALIDATION_EVENT:
                data = event.get("data")
                code = data.get("validationCode") if isinstance(data, dict) else None
                if not isinstance(code, str) or not code:
                    raise EventError("the validation event has no data.validationCode")
                logger.info("answering Event Grid subscription validation")
                return JsonResponse({"validationResponse": code})
            incoming = parse_incoming_call(event) if kind == INCOMING_CALL else None
            deliveries.append((kind, incoming))
    except BodyRefused as refused:
        logger.warning("refused Event Grid delivery: %s", refused.reason)
        return _error(refused.status, refused.reason)
    except EventError as error:
        logger.warning("rejected Event Grid delivery: %s", error)
        return _error(400, str(error))
    outcomes: list[str] = []
    for kind, incoming in deliveries:
        if incoming is not None:
            outcomes.append(lifecycle.incoming_call_handle(incoming))
        else:
            # Event Grid retries what is not acknowledged: an unknown type is logged and taken.
            logger.info("ignoring Event Grid event of type %r", kind)
            outcomes.append("ignored")
    return JsonResponse({"outcomes": outcomes})


@csrf_exempt
@require_http_methods(["POST"])
def callbacks(request: HttpRequest, callback_id: uuid.UUID) -> HttpResponse:
    """Call Automation callbacks for one call: a JSON array of CloudEvents."""
    decision = http_request_decision(request)
    if not decision.allowed:
        logger.warning("refused callback for %s: %s", callback_id, decision.reason)
        return _error(401, decision.reason)
    try:
        events = [
            parse_cloud_event(event, index)
            for index, event in enumerate(event_list(_json_body(request)))
        ]
        outcome = lifecycle.callback_events_apply(callback_id=callback_id, events=events)
    except BodyRefused as refused:
        logger.warning("refused callback for %s: %s", callback_id, refused.reason)
        return _error(refused.status, refused.reason)
    except EventError as error:
        logger.warning("rejected callback for %s: %s", callback_id, error)
        return _error(400, str(error))
    except Call.DoesNotExist:
        return _error(404, "unknown callback id")
    return JsonResponse({"applied": outcome.applied, "duplicates": outcome.duplicates})
