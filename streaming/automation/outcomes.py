"""What Call Automation reports back about supervisors' actions, applied to the call.

The callback endpoint stores each event once by its id (``lifecycle.callback_events_apply``)
and, inside the same transaction, calls :func:`settle` and the handler here for its type:

* the action whose ``operation_context`` the event carries moves forward (``accepted`` →
  ``succeeded``, ``failed`` or ``cancelled``), never back, whatever order events come in;
* participants Callsite invited move forward too (``invited`` → ``joined``, ``failed`` or
  ``cancelled``), and appear on the page as they join;
* ``RecordingStateChanged`` is kept as the call's recording state, unless a later one has been
  seen, or the recording was stopped;
* ``ConnectFailed`` / ``CreateCallFailed`` end a room or placed call that never connected.

Hold, unhold and mute have no success callback: the ``ParticipantsUpdated`` that shows the
participant held, released or muted settles them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from django.db import transaction
from django.utils import timezone

from streaming import events
from streaming.acs.webhooks import CloudEvent, result_information
from streaming.models import (
    FINAL_STATUSES,
    ActionStatus,
    Call,
    CallEndReason,
    CallEvent,
    CallState,
    ControlAction,
    Invitation,
    Participant,
    RecordingState,
)
from streaming.selectors import action_payload
from streaming.services import participant_get_or_create

logger = logging.getLogger(__name__)

_STATUS_RANK = {
    ActionStatus.PENDING: 0,
    ActionStatus.ACCEPTED: 1,
    **dict.fromkeys(FINAL_STATUSES, 2),
}

SUCCEEDED = {
    "AddParticipantSucceeded",
    "CancelAddParticipantSucceeded",
    "RemoveParticipantSucceeded",
    "CallTransferAccepted",
    "SendDtmfTonesCompleted",
    "PlayCompleted",
    "CallConnected",
}
FAILED = {
    "AddParticipantFailed",
    "CancelAddParticipantFailed",
    "RemoveParticipantFailed",
    "HoldFailed",
    "CallTransferFailed",
    "SendDtmfTonesFailed",
    "PlayFailed",
    "ConnectFailed",
    "CreateCallFailed",
}
CANCELLED = {"PlayCanceled"}


def action_broadcast_on_commit(action: ControlAction) -> None:
    """Send the action's new status to the call's page once the transaction commits."""
    event = events.call_action(action_payload(action))
    transaction.on_commit(partial(events.send_event, (events.call_group(action.call_id),), event))


def action_settle(
    action_id: int, status: ActionStatus, outcome: str, *, code: int | None = None
) -> ControlAction | None:
    """Move an action forward to ``status`` (never back); None when it already was further.

    Joins the caller's transaction when there is one.
    """
    with transaction.atomic():
        action = ControlAction.objects.select_for_update().get(pk=action_id)
        if _STATUS_RANK[ActionStatus(action.status)] >= _STATUS_RANK[status]:
            return None
        action.status = status
        action.outcome = outcome[:2000]
        action.result_code = code if code is not None else action.result_code
        if status in FINAL_STATUSES:
            action.settled_at = timezone.now()
        action.save(update_fields=["status", "outcome", "result_code", "settled_at"])
        action_broadcast_on_commit(action)
    return action


def _described(event: CloudEvent) -> tuple[str, int | None]:
    code, subcode, message = result_information(event.data)
    shown = f"{event.name}" + (f" {code}/{subcode}" if code is not None else "")
    return (f"{shown}: {message}" if message else shown), code


def settle(call: Call, event: CloudEvent) -> None:
    """Settle the action whose operation context ``event`` carries, if it is one of ours."""
    context = event.data.get("operationContext")
    if event.name in SUCCEEDED:
        status = ActionStatus.SUCCEEDED
    elif event.name in FAILED:
        status = ActionStatus.FAILED
    elif event.name in CANCELLED:
        status = ActionStatus.CANCELLED
    else:
        return
    if not isinstance(context, str) or not context:
        return
    action = ControlAction.objects.filter(call=call, operation_context=context[:100]).first()
    if action is None:
        return
    outcome, code = _described(event)
    action_settle(action.pk, status, outcome, code=code)


# --- participants ------------------------------------------------------------------------------


def _raw_id(event: CloudEvent, key: str = "participant") -> str | None:
    identifier = event.data.get(key)
    raw_id = identifier.get("rawId") if isinstance(identifier, dict) else None
    return raw_id[:300] if isinstance(raw_id, str) and raw_id else None


def _invitation(participant: Participant, state: Invitation) -> None:
    """Move an invitation on, only from ``invited`` (or none yet, when the callback is first)."""
    if participant.invitation not in (Invitation.NONE, Invitation.INVITED):
        return
    participant.invitation = state
    fields = ["invitation"]
    if state == Invitation.JOINED:
        participant.in_call = True
        fields.append("in_call")
    participant.save(update_fields=fields)
    events_participant_on_commit(participant)


def events_participant_on_commit(participant: Participant) -> None:
    from streaming.selectors import participant_payload

    event = events.call_participant(participant.call_id, participant_payload(participant))
    groups = events.groups_for_call(participant.call_id)
    transaction.on_commit(partial(events.send_event, groups, event))


def _on_added(call: Call, event: CloudEvent) -> None:
    raw_id = _raw_id(event)
    participant = participant_get_or_create(call_id=call.pk, raw_id=raw_id) if raw_id else None
    if participant is not None:
        _invitation(participant, Invitation.JOINED)


def _on_add_failed(call: Call, event: CloudEvent) -> None:
    raw_id = _raw_id(event)
    participant = call.participants.filter(raw_id=raw_id).first() if raw_id else None
    if participant is not None and participant.invitation == Invitation.INVITED:
        _invitation(participant, Invitation.FAILED)


def _on_cancelled(call: Call, event: CloudEvent) -> None:
    invitation_id = event.data.get("invitationId")
    if not isinstance(invitation_id, str) or not invitation_id:
        return
    participant = call.participants.filter(invitation_id=invitation_id[:200]).first()
    if participant is not None and participant.invitation == Invitation.INVITED:
        _invitation(participant, Invitation.CANCELLED)


def _on_removed(call: Call, event: CloudEvent) -> None:
    raw_id = _raw_id(event)
    participant = call.participants.filter(raw_id=raw_id).first() if raw_id else None
    if participant is not None and participant.in_call:
        participant.in_call = False
        participant.save(update_fields=["in_call"])
        events_participant_on_commit(participant)


# What a participant's state must be for an accepted action on them to have taken effect.
_SHOWN_BY_PARTICIPANTS: dict[str, Callable[[Participant], bool]] = {
    "hold": lambda p: p.is_on_hold,
    "unhold": lambda p: not p.is_on_hold,
    "mute": lambda p: p.is_muted,
}


def participants_settle(call: Call, event: CloudEvent) -> None:
    """Settle accepted hold, unhold and mute actions that a ``ParticipantsUpdated`` shows."""
    waiting = ControlAction.objects.filter(
        call=call, status=ActionStatus.ACCEPTED, action__in=list(_SHOWN_BY_PARTICIPANTS)
    )
    for action in waiting:
        participant = call.participants.filter(raw_id=action.target).first()
        if participant is not None and _SHOWN_BY_PARTICIPANTS[action.action](participant):
            action_settle(action.pk, ActionStatus.SUCCEEDED, "ParticipantsUpdated shows it")


# --- recording ---------------------------------------------------------------------------------


def _on_recording(call: Call, event: CloudEvent) -> None:
    recording_id = event.data.get("recordingId")
    state = event.data.get("state")
    if not isinstance(recording_id, str) or state not in ("active", "inactive"):
        return
    recording_id = recording_id[:300]
    if call.recording_id == recording_id and call.recording_state == RecordingState.STOPPED:
        return  # stopped is final for a recording
    if (
        call.recording_id
        and call.recording_id != recording_id
        and call.recording_state != RecordingState.STOPPED
    ):
        logger.info("call %s: state of another recording %s ignored", call.pk, recording_id)
        return
    if event.time is not None:
        later = CallEvent.objects.filter(
            call=call, type="RecordingStateChanged", time__gt=event.time
        ).exclude(event_id=event.id)
        if any(e.data.get("recordingId") == recording_id for e in later):
            return
    call.recording_id = recording_id
    call.recording_state = RecordingState.ACTIVE if state == "active" else RecordingState.PAUSED
    settled_by = "resume-recording" if state == "active" else "pause-recording"
    for action in ControlAction.objects.filter(
        call=call, action=settled_by, status=ActionStatus.ACCEPTED
    ):
        action_settle(action.pk, ActionStatus.SUCCEEDED, f"RecordingStateChanged: {state}")


# --- calls Callsite joined or placed -----------------------------------------------------------


def _on_not_connected(call: Call, event: CloudEvent) -> None:
    if call.state == CallState.ENDED:
        return
    call.state = CallState.ENDED
    call.ended_at = event.time or timezone.now()
    call.end_reason = CallEndReason.NOT_CONNECTED


HANDLERS: dict[str, Callable[[Call, CloudEvent], None]] = {
    "AddParticipantSucceeded": _on_added,
    "AddParticipantFailed": _on_add_failed,
    "CancelAddParticipantSucceeded": _on_cancelled,
    "RemoveParticipantSucceeded": _on_removed,
    "RecordingStateChanged": _on_recording,
    "ConnectFailed": _on_not_connected,
    "CreateCallFailed": _on_not_connected,
}
