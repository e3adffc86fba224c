"""HTTP endpoints ACS calls: Event Grid deliveries and Call Automation callbacks.

Both answer malformed bodies with 400 and a reason, refuse unauthenticated requests with 401,
and never half-apply a delivery: each event is applied in its own transaction, keyed by its
id, so ACS's retries are safe.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from streaming.auth import acs_request_decision, http_request_decision
from streaming.automation import lifecycle
from streaming.automation.events import (
    INCOMING_CALL,
    VALIDATION_EVENT,
    EventError,
    event_list,
    parse_cloud_event,
    parse_incoming_call,
)
from streaming.models import Call

logger = logging.getLogger(__name__)


def _error(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"error": reason}, status=status)


def _json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"the body is not valid JSON ({exc})") from None


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
        events = event_list(_json_body(request))
        outcomes: list[str] = []
        for event in events:
            event_type = event.get("eventType") or event.get("type")
            if event_type == VALIDATION_EVENT:
                data = event.get("data")
                code = data.get("validationCode") if isinstance(data, dict) else None
                if not isinstance(code, str) or not code:
                    raise EventError("the validation event has no data.validationCode")
                logger.info("answering Event Grid subscription validation")
                return JsonResponse({"validationResponse": code})
            if event_type == INCOMING_CALL:
                outcomes.append(lifecycle.incoming_call_handle(parse_incoming_call(event)))
            else:
                logger.info("ignoring Event Grid event of type %r", event_type)
                outcomes.append("ignored")
    except EventError as error:
        logger.warning("rejected Event Grid delivery: %s", error)
        return _error(400, str(error))
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
    except EventError as error:
        logger.warning("rejected callback for %s: %s", callback_id, error)
        return _error(400, str(error))
    except Call.DoesNotExist:
        return _error(404, "unknown callback id")
    return JsonResponse({"applied": outcome.applied, "duplicates": outcome.duplicates})
