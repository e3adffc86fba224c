"""Calls Callsite joins or places at a supervisor's request: room calls and outbound calls.

Both are stored first, as a ringing managed call with its callback id and the supervisor
who asked (``placed_by``), so ACS's callbacks and streams find it; then ACS is asked with the
same streaming options an answered call gets, so the call streams into Callsite and is
transcribed like any other. ``CallConnected`` connects it; ``ConnectFailed`` or
``CreateCallFailed`` (or ACS refusing the request) end it as not connected.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from streaming.acs import client, control
from streaming.acs.identities import address_raw_id
from streaming.automation.lifecycle import call_action_failed, call_answered, streaming_request
from streaming.automation.outcomes import action_settle
from streaming.models import (
    ActionStatus,
    Call,
    CallEndReason,
    CallOrigin,
    CallState,
    ControlAction,
)
from streaming.services import call_broadcast_on_commit

logger = logging.getLogger(__name__)

MAX_ROOM_ID = 200


def _joined(
    *,
    user: Any,
    origin: CallOrigin,
    label: str,
    slug: str,
    request: dict[str, Any],
    fields: dict[str, Any],
    connect: Callable[[control.StreamingRequest, str], client.AnswerResult],
) -> Call:
    """Store the call and its action, ask ACS, and attach the connection id it returns."""
    streaming = None
    with transaction.atomic():
        call = Call.objects.create(
            state=CallState.RINGING,
            managed=True,
            origin=origin,
            callback_id=uuid.uuid4(),
            placed_by=user if getattr(user, "pk", None) else None,
            **fields,
        )
        action = ControlAction.objects.create(
            call=call,
            user=call.placed_by,
            username=getattr(user, "username", "") or "",
            action=slug,
            label=label,
            request=request,
            operation_context=f"callsite-{uuid.uuid4()}",
        )
        call_broadcast_on_commit(call)
    try:
        streaming = streaming_request(call)
        Call.objects.filter(pk=call.pk).update(bidirectional=streaming.bidirectional)
        result = connect(streaming, action.operation_context)
    except client.CallAutomationError as error:
        logger.warning("call %s: %s refused: %s", call.pk, label.lower(), error)
        action_settle(action.pk, ActionStatus.REFUSED, str(error), code=error.status)
        call_action_failed(call_id=call.pk, action=f"{label} failed", error=error)
        with transaction.atomic():
            Call.objects.filter(pk=call.pk).update(
                state=CallState.ENDED,
                ended_at=timezone.now(),
                end_reason=CallEndReason.NOT_CONNECTED,
            )
            call_broadcast_on_commit(Call.objects.get(pk=call.pk))
        raise
    call = call_answered(call_id=call.pk, result=result)
    action_settle(action.pk, ActionStatus.ACCEPTED, "ACS is connecting the call")
    logger.info("call %s: %s by %s", call.connection_id, label.lower(), action.username)
    return call


def room_call_connect(*, room_id: str, user: Any = None) -> Call:
    """Join the ACS room call ``room_id`` and have it stream into Callsite.

    Raises ``ValueError`` for an unusable room id and ``CallAutomationError`` when ACS
    refuses (the call is then kept, ended, with the failure among its problems).
    """
    room_id = room_id.strip()
    if not room_id or len(room_id) > MAX_ROOM_ID or any(ch.isspace() for ch in room_id):
        raise ValueError("give the ACS room id (from the Rooms API or the ACS portal)")
    return _joined(
        user=user,
        origin=CallOrigin.ROOM,
        label="Connect to a room",
        slug="connect-room",
        request={"room_id": room_id},
        fields={"room_id": room_id},
        connect=lambda streaming, context: control.room_connect(
            room_id=room_id, streaming=streaming, operation_context=context
        ),
    )


def call_place(*, target: str, user: Any = None) -> Call:
    """Call a phone number or ACS user; it streams into Callsite once they answer.

    Raises ``ValueError`` for an unusable address and ``CallAutomationError`` when ACS
    refuses, as :func:`room_call_connect`.
    """
    raw_id, number = address_raw_id(target)
    caller_id = settings.CALLSITE_ACS_CALLER_ID or None
    return _joined(
        user=user,
        origin=CallOrigin.PLACED,
        label="Place a call",
        slug="place-call",
        request={"participant": raw_id, "caller_id": caller_id or ""},
        fields={"callee": number or raw_id, "caller": caller_id or ""},
        connect=lambda streaming, context: control.call_create(
            target=raw_id, caller_id=caller_id, streaming=streaming, operation_context=context
        ),
    )
