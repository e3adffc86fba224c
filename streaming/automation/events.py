"""Parsing of Event Grid and CloudEvents payloads from ACS into small typed records.

Pure functions: a malformed payload raises :class:`EventError` with a reason that the HTTP
endpoint returns as a 400, so a sender (or an attacker) learns what was wrong and nothing
half-applied is left behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_PREFIX = "Microsoft.Communication."
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
INCOMING_CALL = "Microsoft.Communication.IncomingCall"
MAX_EVENTS_PER_REQUEST = 100


class EventError(ValueError):
    """A webhook payload Callsite cannot use; ``str(error)`` says why."""


@dataclass(frozen=True)
class CloudEvent:
    """One Call Automation callback event; ``name`` is the type without its namespace."""

    id: str
    type: str
    time: datetime | None
    data: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.type.removeprefix(EVENT_PREFIX)


@dataclass(frozen=True)
class IncomingCall:
    """What Callsite needs from an Event Grid ``IncomingCall`` event."""

    event_id: str
    caller: str
    caller_display_name: str
    callee: str
    incoming_call_context: str
    correlation_id: str
    server_call_id: str


def event_list(body: Any) -> list[Mapping[str, Any]]:
    """The events of a webhook body: a JSON array of objects (a lone object is accepted)."""
    events = [body] if isinstance(body, Mapping) else body
    if not isinstance(events, list):
        raise EventError("the body must be a JSON array of events")
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise EventError(f"at most {MAX_EVENTS_PER_REQUEST} events per request")
    for index, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise EventError(f"event {index} is not a JSON object")
    return events


def _text(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise EventError(f"{where}.{key} must be a non-empty string")
    return value


def parse_time(value: Any) -> datetime | None:
    """An event time (ISO 8601; .NET writes 7 fractional digits); ``None`` when unusable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_cloud_event(event: Mapping[str, Any], index: int = 0) -> CloudEvent:
    where = f"event {index}"
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise EventError(f"{where}.data must be an object")
    return CloudEvent(
        id=_text(event, "id", where)[:200],
        type=_text(event, "type", where)[:120],
        time=parse_time(event.get("time")),
        data=data,
    )


def identifier_text(identifier: Any) -> str:
    """A readable id from an ACS identifier: the phone number if any, else the raw id."""
    if not isinstance(identifier, Mapping):
        return ""
    phone = identifier.get("phoneNumber")
    if isinstance(phone, Mapping) and isinstance(phone.get("value"), str):
        return str(phone["value"])
    raw = identifier.get("rawId")
    return raw if isinstance(raw, str) else ""


def parse_incoming_call(event: Mapping[str, Any]) -> IncomingCall:
    where = "IncomingCall"
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise EventError(f"{where}.data must be an object")
    return IncomingCall(
        event_id=_text(event, "id", where)[:200],
        caller=identifier_text(data.get("from"))[:300],
        caller_display_name=_text(data, "callerDisplayName", where, required=False)[:300],
        callee=identifier_text(data.get("to"))[:300],
        incoming_call_context=_text(data, "incomingCallContext", f"{where}.data"),
        correlation_id=_text(data, "correlationId", f"{where}.data", required=False)[:200],
        server_call_id=_text(data, "serverCallId", f"{where}.data", required=False)[:1000],
    )


def result_information(data: Mapping[str, Any]) -> tuple[int | None, int | None, str]:
    """``(code, subcode, message)`` of an event's ``resultInformation``, when present."""
    info = data.get("resultInformation")
    if not isinstance(info, Mapping):
        return None, None, ""

    def number(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    message = info.get("message")
    return number(info.get("code")), number(info.get("subCode")), str(message or "")[:2000]
