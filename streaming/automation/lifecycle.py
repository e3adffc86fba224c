"""Call Automation lifecycle: answering incoming calls and applying callback events.

Event Grid and Call Automation deliver at least once, retry, and do not promise order. So
every event is stored with its id first (a redelivery is recognised and skipped), call state
only moves forward (``ringing`` → ``connected`` → ``ended``), participant lists apply only when
their sequence number is newer, and a streaming status applies only when no later one has
been seen.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from streaming import selectors
from streaming.acs import client
from streaming.acs.control import StreamingRequest
from streaming.acs.webhooks import CloudEvent, IncomingCall, result_information
from streaming.automation import outcomes
from streaming.live.alerts import Rule, hold_firing
from streaming.models import (
    AlertKind,
    Call,
    CallEndReason,
    CallEvent,
    CallOrigin,
    CallState,
    ControlAction,
    Participant,
    StreamState,
)
from streaming.services import (
    alert_record,
    call_broadcast_on_commit,
    participant_get_or_create,
    participant_presence_apply,
)

logger = logging.getLogger(__name__)

_STATE_RANK = {CallState.RINGING: 0, CallState.CONNECTED: 1, CallState.ENDED: 2}


# --- Incoming calls ----------------------------------------------------------------------------


def should_answer(callee: str) -> bool:
    """Apply ``CALLSITE_ANSWER_CALLS``: "all", "none", or the numbers / raw ids to answer."""
    rules = [rule.strip() for rule in settings.CALLSITE_ANSWER_CALLS]
    if "none" in rules:
        return False
    if "all" in rules:
        return True
    wanted = {_normalise(rule) for rule in rules}
    return _normalise(callee) in wanted


def _normalise(identity: str) -> str:
    return identity.removeprefix("4:").replace(" ", "").lower()


@transaction.atomic
def incoming_call_record(incoming: IncomingCall) -> tuple[Call, bool]:
    """Store a ringing call for an ``IncomingCall`` event; a redelivery returns the first one."""
    existing = CallEvent.objects.filter(event_id=incoming.event_id).select_related("call").first()
    if existing is not None:
        return existing.call, False
    call = Call.objects.create(
        state=CallState.RINGING,
        managed=True,
        origin=CallOrigin.ANSWERED,
        bidirectional=settings.CALLSITE_MEDIA_STREAMING and settings.CALLSITE_BIDIRECTIONAL_AUDIO,
        callback_id=uuid.uuid4(),
        caller=incoming.caller,
        caller_display_name=incoming.caller_display_name,
        callee=incoming.callee,
        correlation_id=incoming.correlation_id,
        server_call_id=incoming.server_call_id,
    )
    CallEvent.objects.create(
        call=call,
        event_id=incoming.event_id,
        type="IncomingCall",
        data={"from": incoming.caller, "to": incoming.callee},
    )
    call_broadcast_on_commit(call)
    return call, True


def callback_url(call: Call) -> str:
    """Where ACS sends the call's callbacks (and its recording's state)."""
    return streaming_request(call).callback_url


def streaming_request(call: Call) -> StreamingRequest:
    """The callback and streaming URLs and options ACS is given for a call Callsite joins.

    Raises :class:`~streaming.acs.client.CallAutomationNotConfigured` without a public URL.
    """
    # With ACS tokens verified, the URLs need no secret; otherwise the shared secret rides in
    # the query string, the mechanism ACS's documentation offers for callback URLs.
    token = (
        None if settings.CALLSITE_ACS_RESOURCE_ID else (settings.CALLSITE_ACS_SHARED_SECRET or None)
    )
    locale = settings.CALLSITE_TRANSCRIPTION_LOCALE or None
    callback, websocket_url = client.streaming_urls(callback_id=str(call.callback_id), token=token)
    media = settings.CALLSITE_MEDIA_STREAMING
    return StreamingRequest(
        callback_url=callback,
        media_url=websocket_url if media else None,
        transcription_url=websocket_url if locale else None,
        locale=locale,
        cognitive_services_endpoint=settings.ACS_COGNITIVE_SERVICES_ENDPOINT or None,
        bidirectional=media and settings.CALLSITE_BIDIRECTIONAL_AUDIO,
    )


def incoming_call_handle(incoming: IncomingCall) -> str:
    """Answer an incoming call if the rules say so. Returns what happened, for the response."""
    if not should_answer(incoming.callee):
        logger.info("not answering call to %s (CALLSITE_ANSWER_CALLS)", incoming.callee)
        return "ignored"
    call, created = incoming_call_record(incoming)
    if not created:
        return "duplicate"
    try:
        streaming = streaming_request(call)
        result = client.call_answer(
            incoming_call_context=incoming.incoming_call_context,
            callback_url=streaming.callback_url,
            media_url=streaming.media_url,
            transcription_url=streaming.transcription_url,
            locale=streaming.locale,
            cognitive_services_endpoint=streaming.cognitive_services_endpoint,
            operation_context=str(call.callback_id),
            bidirectional=streaming.bidirectional,
        )
    except client.CallAutomationError as error:
        logger.warning("could not answer call from %s: %s", incoming.caller, error)
        call_action_failed(call_id=call.pk, action="AnswerFailed", error=error)
        with transaction.atomic():
            Call.objects.filter(pk=call.pk).update(state=CallState.ENDED, ended_at=timezone.now())
            call_broadcast_on_commit(Call.objects.get(pk=call.pk))
        return "failed"
    call_answered(call_id=call.pk, result=result)
    return "answered"


@transaction.atomic
def call_answered(*, call_id: int, result: client.AnswerResult) -> Call:
    """Attach the call connection id the answer returned.

    ACS may open the media socket before the answer's response arrives; the socket then
    created a call under that id already, and the ringing record is folded into it.
    """
    call = Call.objects.select_for_update().get(pk=call_id)
    twin = Call.objects.filter(connection_id=result.call_connection_id).exclude(pk=call.pk).first()
    if twin is not None:
        CallEvent.objects.filter(call=call).update(call=twin)
        ControlAction.objects.filter(call=call).update(call=twin)
        fields = (
            "callback_id",
            "caller",
            "caller_display_name",
            "callee",
            "server_call_id",
            "origin",
            "room_id",
            "placed_by_id",
            "bidirectional",
        )
        values = {name: getattr(call, name) for name in fields}
        call.delete()
        for name, value in values.items():
            setattr(twin, name, value)
        twin.managed = True
        call = twin
    call.connection_id = result.call_connection_id
    call.server_call_id = result.server_call_id or call.server_call_id
    call.correlation_id = call.correlation_id or (result.correlation_id or "")
    call.save()
    call_broadcast_on_commit(call)
    return call


def call_action_failed(*, call_id: int, action: str, error: client.CallAutomationError) -> None:
    """Store a failed answer or supervisor action so the call page shows it."""
    with transaction.atomic():
        CallEvent.objects.create(
            call_id=call_id,
            event_id=f"callsite-{uuid.uuid4()}",
            type=action,
            result_code=error.status,
            result_message=str(error)[:2000],
            is_failure=True,
        )
        call_broadcast_on_commit(Call.objects.get(pk=call_id))


# --- Callbacks ---------------------------------------------------------------------------------


@dataclass
class CallbackOutcome:
    applied: int = 0
    duplicates: int = 0


def callback_events_apply(*, callback_id: uuid.UUID, events: list[CloudEvent]) -> CallbackOutcome:
    """Apply a callback delivery, one transaction per event so one event never spoils another.

    Raises ``Call.DoesNotExist`` for an unknown callback id.
    """
    if not Call.objects.filter(callback_id=callback_id).exists():
        raise Call.DoesNotExist(f"no call has callback id {callback_id}")
    outcome = CallbackOutcome()
    for event in events:
        try:
            applied = _apply_event(callback_id, event)
        except IntegrityError:  # the same event delivered twice at once
            applied = False
        if applied:
            outcome.applied += 1
        else:
            outcome.duplicates += 1
    return outcome


@transaction.atomic
def _apply_event(callback_id: uuid.UUID, event: CloudEvent) -> bool:
    call = Call.objects.select_for_update().get(callback_id=callback_id)
    if CallEvent.objects.filter(event_id=event.id).exists():
        return False
    code, subcode, message = result_information(event.data)
    failed = event.name.endswith("Failed") or (code is not None and code >= 400)
    CallEvent.objects.create(
        call=call,
        event_id=event.id,
        type=event.name,
        time=event.time,
        data=dict(event.data),
        result_code=code,
        result_subcode=subcode,
        result_message=message,
        is_failure=failed,
    )
    connection_id = event.data.get("callConnectionId")
    if (
        isinstance(connection_id, str)
        and connection_id
        and not call.connection_id
        and not Call.objects.filter(connection_id=connection_id).exists()
    ):
        call.connection_id = connection_id[:200]
    handler = _HANDLERS.get(event.name)
    if handler is None:
        logger.info("call %s: %s (code %s) recorded", call.connection_id, event.name, code)
    else:
        handler(call, event)
    outcomes.settle(call, event)
    if event.name == "ParticipantsUpdated":
        outcomes.participants_settle(call, event)
    if failed:
        logger.warning(
            "call %s: %s %s/%s %s", call.connection_id, event.name, code, subcode, message
        )
    call.save()
    call_broadcast_on_commit(call)
    return True


def _advance(call: Call, state: CallState) -> None:
    if _STATE_RANK[CallState(call.state)] < _STATE_RANK[state]:
        call.state = state


def _on_connected(call: Call, event: CloudEvent) -> None:
    _advance(call, CallState.CONNECTED)
    # The earliest start: a CallDisconnected delivered first has set it to the call's end.
    moment = event.time or timezone.now()
    call.started_at = min(call.started_at, moment) if call.started_at else moment


def _on_disconnected(call: Call, event: CloudEvent) -> None:
    _advance(call, CallState.ENDED)
    call.ended_at = call.ended_at or event.time or timezone.now()
    call.end_reason = call.end_reason or CallEndReason.DISCONNECTED
    call.started_at = call.started_at or call.ended_at


def _on_participants(call: Call, event: CloudEvent) -> None:
    """The call's participants as they are now: who is in, muted, on hold.

    A hold is timed from the event that starts it to the one that ends it (their ``time``);
    a hold that ended longer than a hold rule allows fires the rule here, in case no live
    stream saw it go past (the same episode a live stream fires is stored once).
    """
    sequence = event.data.get("sequenceNumber")
    if isinstance(sequence, int) and not isinstance(sequence, bool):
        if call.participants_sequence is not None and sequence <= call.participants_sequence:
            logger.info("call %s: stale ParticipantsUpdated %s ignored", call.pk, sequence)
            return
        call.participants_sequence = sequence
    at = event.time or timezone.now()
    present: set[str] = set()
    ended: list[tuple[Participant, tuple[datetime, datetime]]] = []
    for entry in event.data.get("participants") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("identifier"), dict):
            continue
        raw_id = entry["identifier"].get("rawId")
        if not isinstance(raw_id, str) or not raw_id:
            continue
        present.add(raw_id)
        participant = participant_get_or_create(call_id=call.pk, raw_id=raw_id[:300])
        if participant is None:  # past the call's bound of participants
            continue
        name = entry.get("displayName")
        hold = participant_presence_apply(
            participant,
            muted=bool(entry.get("isMuted")),
            on_hold=bool(entry.get("isOnHold")),
            at=at,
            display_name=name if isinstance(name, str) else "",
        )
        if hold is not None:
            ended.append((participant, hold))
    call.participants.exclude(raw_id__in=present).update(in_call=False)
    for participant, (start, end) in ended:
        _hold_rules_check(call, participant, start, end)


def _hold_rules_check(call: Call, participant: Participant, start: datetime, end: datetime) -> None:
    origin = call.audio_origin or call.started_at or start
    for rule in map(Rule.from_model, selectors.enabled_alert_rules()):
        if rule.kind != AlertKind.HOLD or not rule.seconds or not rule.applies_to(participant.role):
            continue
        firing = hold_firing(
            rule,
            key=participant.raw_id,
            label=participant.display_label,
            start=start,
            held_ms=round((end - start).total_seconds() * 1000),
            start_ms=max(0, round((start - origin).total_seconds() * 1000)),
        )
        if firing is not None:
            alert_record(
                call_id=call.pk,
                rule_id=rule.id,
                kind=rule.kind,
                message=firing.message,
                at_ms=firing.at_ms,
                episode=firing.episode,
                participant_raw_id=participant.raw_id,
            )


def _stream_handler(
    field: str, prefix: str, state: StreamState
) -> Callable[[Call, CloudEvent], None]:
    def handle(call: Call, event: CloudEvent) -> None:
        newer = (
            CallEvent.objects.filter(
                call=call, type__startswith=prefix, time__gt=event.time
            ).exists()
            if event.time
            else False
        )
        if newer:
            logger.info("call %s: %s arrived after a later %s event", call.pk, event.name, prefix)
            return
        setattr(call, field, state)

    return handle


_HANDLERS: dict[str, Callable[[Call, CloudEvent], None]] = {
    "CallConnected": _on_connected,
    "CallDisconnected": _on_disconnected,
    "ParticipantsUpdated": _on_participants,
    "MediaStreamingStarted": _stream_handler("media_state", "MediaStreaming", StreamState.STARTED),
    "MediaStreamingStopped": _stream_handler("media_state", "MediaStreaming", StreamState.STOPPED),
    "MediaStreamingFailed": _stream_handler("media_state", "MediaStreaming", StreamState.FAILED),
    "TranscriptionStarted": _stream_handler(
        "transcription_state", "Transcription", StreamState.STARTED
    ),
    "TranscriptionResumed": _stream_handler(
        "transcription_state", "Transcription", StreamState.STARTED
    ),
    "TranscriptionUpdated": _stream_handler(
        "transcription_state", "Transcription", StreamState.STARTED
    ),
    "TranscriptionStopped": _stream_handler(
        "transcription_state", "Transcription", StreamState.STOPPED
    ),
    "TranscriptionFailed": _stream_handler(
        "transcription_state", "Transcription", StreamState.FAILED
    ),
    **outcomes.HANDLERS,
}
