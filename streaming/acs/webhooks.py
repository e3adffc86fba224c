"""Parsing of Event Grid and CloudEvents payloads from ACS into small typed records.

Pure functions: a malformed payload raises :class:`EventError` with a reason that the HTTP
endpoint returns as a 400, so a sender (or an attacker) learns what was wrong and nothing
half-applied is left behind.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_PREFIX = "Microsoft.Communication."
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
INCOMING_CALL = "Microsoft.Communication.IncomingCall"
# Event Grid delivers up to 5000 events per batch (a subscription's "max events per batch"),
# within the 1 MB body; a 4xx would drop the batch rather than retry it.
MAX_EVENTS_PER_REQUEST = 5000
# ACS events nest about six levels deep; far deeper bodies only cost time and stack.
MAX_DEPTH = 32
_INT32 = 2**31  # resultInformation codes are stored in IntegerFields
_INT64 = 2**63  # and sequence numbers in a BigIntegerField


# Calls that Callsite did not answer have a callback id derived from their call connection id,
# so a Call Automation app of their own (or the simulator) can post their callbacks
# (ParticipantsUpdated: holds and mutes) to /acs/callbacks/<id>/, authenticated as ever.
STREAM_CALLBACK_NAMESPACE = uuid.UUID("6f1d3c52-8b0e-4c7a-9d2f-3e5a7b9c1d40")


def stream_callback_id(call_connection_id: str) -> uuid.UUID:
    """The callback id of a call first seen on its stream (docs/acs-setup.md#callbacks)."""
    return uuid.uuid5(STREAM_CALLBACK_NAMESPACE, call_connection_id)


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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _storable(text: str) -> bool:
    """Whether both databases can store ``text``: PostgreSQL refuses NUL, UTF-8 surrogates."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def body_json(body: bytes) -> Any:
    """The JSON document of a webhook body, checked so that storing its events cannot fail.

    Strict JSON (no ``NaN`` or ``Infinity``, no number beyond a float's range), nested at most
    ``MAX_DEPTH`` levels, and no string holding NUL or an unpaired surrogate.
    """
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise EventError(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the hooks' errors
        raise EventError(f"the body is not valid JSON ({exc})") from None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _storable(item):
                raise EventError(
                    "the body holds a string with a NUL character or an unpaired surrogate"
                )
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise EventError(f"the body is nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                item = list(item.values())
            stack.extend((child, depth + 1) for child in item)
    return value


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


def event_type(event: Mapping[str, Any], index: int) -> str:
    """An Event Grid event's type: ``eventType``, or ``type`` in the CloudEvents schema."""
    value = event.get("eventType") or event.get("type")
    if not isinstance(value, str) or not value:
        raise EventError(f"event {index}.eventType must be a non-empty string")
    return value[:200]


def parse_time(value: Any) -> datetime | None:
    """An event time in UTC (ISO 8601; .NET writes 7 fractional digits); ``None`` when unusable.

    A time that has no UTC equivalent (0001-01-01 east of Greenwich) is unusable too.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _integer(obj: Mapping[str, Any], key: str, where: str, bound: int) -> None:
    value = obj.get(key)
    if value is not None and (type(value) is not int or not -bound <= value < bound):
        raise EventError(f"{where}.{key} must be an integer between {-bound} and {bound - 1}")


def parse_cloud_event(event: Mapping[str, Any], index: int = 0) -> CloudEvent:
    where = f"event {index}"
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise EventError(f"{where}.data must be an object")
    # The fields that are stored in integer columns or iterated must have the right type.
    info = data.get("resultInformation")
    if info is not None:
        if not isinstance(info, Mapping):
            raise EventError(f"{where}.data.resultInformation must be an object")
        _integer(info, "code", f"{where}.data.resultInformation", _INT32)
        _integer(info, "subCode", f"{where}.data.resultInformation", _INT32)
    _integer(data, "sequenceNumber", f"{where}.data", _INT64)
    if data.get("participants") is not None and not isinstance(data["participants"], list):
        raise EventError(f"{where}.data.participants must be an array")
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
