"""Supervisor actions on a live call: one registry, one road from the request to its outcome.

Every action is an :class:`ActionSpec`: its label, the kind of permission it needs, whether it
is destructive (asks for a confirmation), how its parameters are checked, and the Call
Automation request it makes. :func:`control_run` runs any of them the same way:

1. the parameters are checked (``ValueError`` with a reason for the page);
2. a :class:`~streaming.models.ControlAction` is stored *before* the request, with a fresh
   ``operation_context`` that ACS hands back on the outcome callbacks;
3. the request is made outside any transaction; a refusal marks the action ``refused`` and is
   kept among the call's problems, as earlier actions' failures were;
4. what ACS accepted is marked ``accepted`` (a callback settles it: ``streaming.automation.
   outcomes``) or ``succeeded`` when the HTTP answer is the outcome.

Statuses only move forward, so a callback that beats the HTTP answer is never undone by it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction

from streaming.acs import client, control
from streaming.acs.identities import address_raw_id
from streaming.automation import announcements
from streaming.automation.lifecycle import call_action_failed, callback_url
from streaming.automation.outcomes import (
    action_broadcast_on_commit,
    action_settle,
    events_participant_on_commit,
)
from streaming.models import (
    ActionStatus,
    Call,
    CallState,
    ControlAction,
    Invitation,
    Participant,
    RecordingState,
    Stream,
)
from streaming.services import call_broadcast_on_commit, participant_get_or_create

logger = logging.getLogger(__name__)


class ActionKind(StrEnum):
    """The permission an action needs (``dashboard.permissions.can_act``)."""

    CONTROL = "control"
    PARTICIPANTS = "participants"
    RECORDING = "recording"
    PLACE = "place"


@dataclass(frozen=True)
class Sent:
    """What came of a request ACS accepted: the action's status now, and what to show."""

    status: ActionStatus
    outcome: str
    result: dict[str, Any] = field(default_factory=dict)


Prepare = Callable[[Call, Mapping[str, str]], dict[str, Any]]
Send = Callable[[Call, dict[str, Any], str], Sent]
Applied = Callable[[Call, dict[str, Any], Sent], None]


@dataclass(frozen=True)
class ActionSpec:
    slug: str
    label: str
    kind: ActionKind
    send: Send
    prepare: Prepare = lambda call, params: {}
    applied: Applied | None = None
    destructive: bool = False
    per_participant: bool = False


# --- checking parameters -----------------------------------------------------------------------


def _participant(call: Call, params: Mapping[str, str], *, in_call: bool = True) -> str:
    raw_id = (params.get("participant") or "").strip()
    if not raw_id:
        raise ValueError("choose a participant")
    found = Participant.objects.filter(call=call, raw_id=raw_id).first()
    if found is None:
        raise ValueError("that participant is not on this call")
    if in_call and not found.in_call:
        raise ValueError(f"{found.display_label} is not in the call now")
    return raw_id


def _address(params: Mapping[str, str], name: str = "address") -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise ValueError("give a phone number (+15551230000) or an ACS id (8:acs:...)")
    return address_raw_id(value)[0][:300]


def _caller_id() -> str | None:
    return settings.CALLSITE_ACS_CALLER_ID or None


def _target(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    return {"participant": _participant(call, params)}


# --- the actions -------------------------------------------------------------------------------


def _whole_call(
    operation: Callable[..., None], status: ActionStatus = ActionStatus.ACCEPTED
) -> Send:
    """A request on the call as a whole that takes only an operation context."""

    def send(call: Call, request: dict[str, Any], context: str) -> Sent:
        operation(call.connection_id, operation_context=context)
        return Sent(status, "ACS accepted the request")

    return send


def _hang_up(call: Call, request: dict[str, Any], context: str) -> Sent:
    client.call_hang_up(str(call.connection_id))
    return Sent(ActionStatus.SUCCEEDED, "the call was ended for everyone")


def _prepare_add(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    target = _address(params)
    if call.participants.filter(raw_id=target, in_call=True).exists():
        raise ValueError("they are already in the call")
    return {"participant": target}


def _add(call: Call, request: dict[str, Any], context: str) -> Sent:
    invitation = control.participant_add(
        str(call.connection_id),
        target=request["participant"],
        caller_id=_caller_id(),
        operation_context=context,
    )
    return Sent(ActionStatus.ACCEPTED, "invited", {"invitation_id": invitation})


def _added(call: Call, request: dict[str, Any], sent: Sent) -> None:
    raw_id = request["participant"]
    # Unless AddParticipantSucceeded came first and they are in the call already.
    joined = Participant.objects.filter(call=call, raw_id=raw_id, in_call=True).exists()
    participant = participant_get_or_create(call_id=call.pk, raw_id=raw_id)
    if participant is None:
        return
    changed = ["invitation_id"]
    participant.invitation_id = str(sent.result.get("invitation_id") or "")[:200]
    if not joined and participant.invitation in (Invitation.NONE, Invitation.INVITED):
        participant.invitation = Invitation.INVITED
        participant.in_call = False
        changed += ["invitation", "in_call"]
    participant.save(update_fields=changed)
    events_participant_on_commit(participant)


def _prepare_cancel(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    raw_id = _participant(call, params, in_call=False)
    participant = call.participants.get(raw_id=raw_id)
    if participant.invitation != Invitation.INVITED or not participant.invitation_id:
        raise ValueError(f"{participant.display_label} has no pending invitation")
    return {"participant": raw_id, "invitation_id": participant.invitation_id}


def _cancel(call: Call, request: dict[str, Any], context: str) -> Sent:
    control.participant_add_cancel(
        str(call.connection_id), invitation_id=request["invitation_id"], operation_context=context
    )
    return Sent(ActionStatus.ACCEPTED, "cancelling the invitation")


def _on_participant(operation: Callable[..., None], status: ActionStatus) -> Send:
    def send(call: Call, request: dict[str, Any], context: str) -> Sent:
        operation(str(call.connection_id), target=request["participant"], operation_context=context)
        return Sent(status, "ACS accepted the request")

    return send


def _hold(call: Call, request: dict[str, Any], context: str) -> Sent:
    control.participant_hold(
        str(call.connection_id),
        target=request["participant"],
        music_url=settings.CALLSITE_HOLD_MUSIC_URL or None,
        operation_context=context,
    )
    return Sent(ActionStatus.ACCEPTED, "ACS is putting them on hold")


def _prepare_transfer(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    transferee = _participant(call, params)
    target = _address(params)
    if target == transferee:
        raise ValueError("a participant cannot be transferred to themselves")
    return {"participant": transferee, "transfer_to": target}


def _transfer(call: Call, request: dict[str, Any], context: str) -> Sent:
    control.call_transfer(
        str(call.connection_id),
        target=request["transfer_to"],
        transferee=request["participant"],
        caller_id=_caller_id(),
        operation_context=context,
    )
    return Sent(ActionStatus.ACCEPTED, "transfer requested")


def _prepare_dtmf(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    target = _participant(call, params)
    keys = (params.get("tones") or "").replace(" ", "").upper()
    return {"participant": target, "tones": control.dtmf_tones(keys), "keys": keys}


def _dtmf(call: Call, request: dict[str, Any], context: str) -> Sent:
    control.dtmf_send(
        str(call.connection_id),
        tones=request["tones"],
        target=request["participant"],
        operation_context=context,
    )
    return Sent(ActionStatus.ACCEPTED, "sending tones")


MAX_PROMPT_TEXT = 400


def _prepare_prompt(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    text = (params.get("text") or "").strip()
    file_url = (params.get("file_url") or "").strip()
    if bool(text) == bool(file_url):
        raise ValueError("give a prompt's text or the URL of an audio file, not both")
    if len(text) > MAX_PROMPT_TEXT:
        raise ValueError(f"a prompt's text is at most {MAX_PROMPT_TEXT} characters")
    if file_url and not file_url.startswith("https://"):
        raise ValueError("ACS fetches prompt files over https://")
    play_to = [_participant(call, params)] if params.get("participant") else []
    request: dict[str, Any] = {"play_to": play_to}
    if text:
        request.update(text=text, voice=settings.CALLSITE_PROMPT_VOICE)
    else:
        request["file_url"] = file_url[:1000]
    return request


def _prompt(call: Call, request: dict[str, Any], context: str) -> Sent:
    control.prompt_play(
        str(call.connection_id),
        text=request.get("text"),
        file_url=request.get("file_url"),
        voice=request.get("voice"),
        play_to=request["play_to"],
        operation_context=context,
    )
    return Sent(ActionStatus.ACCEPTED, "playing")


def _stop_prompts(call: Call, request: dict[str, Any], context: str) -> Sent:
    control.media_cancel(str(call.connection_id))
    return Sent(ActionStatus.SUCCEEDED, "prompts stopped")


def _prepare_recording(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    if call.recording_state in (RecordingState.ACTIVE, RecordingState.PAUSED):
        raise ValueError("the call is being recorded already")
    channel = params.get("channel") or "mixed"
    file_format = params.get("format") or "wav"
    if channel not in control.RECORDING_CHANNELS or file_format not in control.RECORDING_FORMATS:
        raise ValueError("recording channel must be mixed or unmixed, format wav or mp3")
    if channel == "unmixed" and file_format != "wav":
        raise ValueError("unmixed recordings are WAV only")
    storage = settings.CALLSITE_RECORDING_CONTAINER_URL or ""
    return {"channel": channel, "format": file_format, "container_url": storage}


def _record(call: Call, request: dict[str, Any], context: str) -> Sent:
    started = control.recording_start(
        call_connection_id=str(call.connection_id),
        callback_url=callback_url(call),
        channel=request["channel"],
        file_format=request["format"],
        container_url=request["container_url"] or None,
    )
    return Sent(
        ActionStatus.SUCCEEDED,
        f"recording {started.recording_id} ({started.state})",
        {"recording_id": started.recording_id, "state": started.state},
    )


def _recording_started(call: Call, request: dict[str, Any], sent: Sent) -> None:
    fresh = Call.objects.select_for_update().get(pk=call.pk)
    fresh.recording_id = sent.result["recording_id"][:300]
    state = sent.result.get("state")
    fresh.recording_state = RecordingState.ACTIVE if state == "active" else RecordingState.STARTING
    fresh.save(update_fields=["recording_id", "recording_state", "updated_at"])
    call_broadcast_on_commit(fresh)


def _prepare_recording_change(*states: RecordingState) -> Prepare:
    def prepare(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        if not call.recording_id or call.recording_state not in states:
            shown = call.get_recording_state_display().lower()
            raise ValueError(f"the recording cannot do that now ({shown})")
        return {"recording_id": call.recording_id}

    return prepare


def _on_recording(operation: Callable[[str], None], status: ActionStatus, outcome: str) -> Send:
    def send(call: Call, request: dict[str, Any], context: str) -> Sent:
        operation(request["recording_id"])
        return Sent(status, outcome)

    return send


def _recording_stopped(call: Call, request: dict[str, Any], sent: Sent) -> None:
    # DELETE answered 204 is the outcome: the later "inactive" state cannot bring it back.
    fresh = Call.objects.select_for_update().get(pk=call.pk)
    if fresh.recording_id == request["recording_id"]:
        fresh.recording_state = RecordingState.STOPPED
        fresh.save(update_fields=["recording_state", "updated_at"])
        call_broadcast_on_commit(fresh)


def _prepare_announcement(call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    if not call.bidirectional:
        raise ValueError("this call's media stream carries no audio back (bidirectional is off)")
    if not Stream.objects.open().filter(call=call).exists():
        raise ValueError("no media stream of this call is open")
    name = params.get("clip") or announcements.DEFAULT_CLIP
    announcements.clip_pcm(name, 16000)  # ValueError for an unknown clip, before anything is sent
    return {"clip": name}


def _announce(call: Call, request: dict[str, Any], context: str) -> Sent:
    announcements.announce(call_id=call.pk, clip=request["clip"], operation_context=context)
    return Sent(ActionStatus.ACCEPTED, "playing into the call")


def _stop_announcement(call: Call, request: dict[str, Any], context: str) -> Sent:
    announcements.stop(call_id=call.pk)
    return Sent(ActionStatus.SUCCEEDED, "announcement stopped")


_SPECS = [
    ActionSpec(
        "start-transcription",
        "Start transcription",
        ActionKind.CONTROL,
        _whole_call(client.transcription_start),
    ),
    ActionSpec(
        "stop-transcription",
        "Stop transcription",
        ActionKind.CONTROL,
        _whole_call(client.transcription_stop),
    ),
    ActionSpec(
        "start-media",
        "Start media streaming",
        ActionKind.CONTROL,
        _whole_call(client.media_streaming_start),
    ),
    ActionSpec(
        "stop-media",
        "Stop media streaming",
        ActionKind.CONTROL,
        _whole_call(client.media_streaming_stop),
    ),
    ActionSpec("hang-up", "Hang up", ActionKind.CONTROL, _hang_up, destructive=True),
    ActionSpec(
        "play-prompt", "Play a prompt", ActionKind.CONTROL, _prompt, prepare=_prepare_prompt
    ),
    ActionSpec("stop-prompts", "Stop prompts", ActionKind.CONTROL, _stop_prompts),
    ActionSpec(
        "send-dtmf",
        "Send DTMF",
        ActionKind.CONTROL,
        _dtmf,
        prepare=_prepare_dtmf,
        per_participant=True,
    ),
    ActionSpec(
        "announce",
        "Play an announcement",
        ActionKind.CONTROL,
        _announce,
        prepare=_prepare_announcement,
    ),
    ActionSpec(
        "stop-announcement", "Stop the announcement", ActionKind.CONTROL, _stop_announcement
    ),
    ActionSpec(
        "add-participant",
        "Add a participant",
        ActionKind.PARTICIPANTS,
        _add,
        prepare=_prepare_add,
        applied=_added,
    ),
    ActionSpec(
        "join-call",
        "Join this call",
        ActionKind.PARTICIPANTS,
        _add,
        prepare=_prepare_add,
        applied=_added,
    ),
    ActionSpec(
        "cancel-add",
        "Cancel the invitation",
        ActionKind.PARTICIPANTS,
        _cancel,
        prepare=_prepare_cancel,
        per_participant=True,
    ),
    ActionSpec(
        "remove",
        "Remove",
        ActionKind.PARTICIPANTS,
        _on_participant(control.participant_remove, ActionStatus.ACCEPTED),
        prepare=_target,
        destructive=True,
        per_participant=True,
    ),
    ActionSpec(
        "mute",
        "Mute",
        ActionKind.PARTICIPANTS,
        _on_participant(control.participant_mute, ActionStatus.ACCEPTED),
        prepare=_target,
        per_participant=True,
    ),
    ActionSpec(
        "hold", "Hold", ActionKind.PARTICIPANTS, _hold, prepare=_target, per_participant=True
    ),
    ActionSpec(
        "unhold",
        "Unhold",
        ActionKind.PARTICIPANTS,
        _on_participant(control.participant_unhold, ActionStatus.ACCEPTED),
        prepare=_target,
        per_participant=True,
    ),
    ActionSpec(
        "transfer",
        "Transfer",
        ActionKind.PARTICIPANTS,
        _transfer,
        prepare=_prepare_transfer,
        destructive=True,
        per_participant=True,
    ),
    ActionSpec(
        "start-recording",
        "Start recording",
        ActionKind.RECORDING,
        _record,
        prepare=_prepare_recording,
        applied=_recording_started,
    ),
    ActionSpec(
        "pause-recording",
        "Pause recording",
        ActionKind.RECORDING,
        _on_recording(control.recording_pause, ActionStatus.ACCEPTED, "pausing"),
        prepare=_prepare_recording_change(RecordingState.ACTIVE, RecordingState.STARTING),
    ),
    ActionSpec(
        "resume-recording",
        "Resume recording",
        ActionKind.RECORDING,
        _on_recording(control.recording_resume, ActionStatus.ACCEPTED, "resuming"),
        prepare=_prepare_recording_change(RecordingState.PAUSED),
    ),
    ActionSpec(
        "stop-recording",
        "Stop recording",
        ActionKind.RECORDING,
        _on_recording(control.recording_stop, ActionStatus.SUCCEEDED, "recording stopped"),
        prepare=_prepare_recording_change(
            RecordingState.ACTIVE, RecordingState.PAUSED, RecordingState.STARTING
        ),
        applied=_recording_stopped,
        destructive=True,
    ),
]
ACTIONS: dict[str, ActionSpec] = {spec.slug: spec for spec in _SPECS}


# --- running one -------------------------------------------------------------------------------


def new_operation_context() -> str:
    return f"callsite-{uuid.uuid4()}"


def action_record(
    *, call: Call, user: Any, spec_slug: str, label: str, request: dict[str, Any]
) -> ControlAction:
    """Store an action before its request is made (committed: its callback may come first)."""
    with transaction.atomic():
        action = ControlAction.objects.create(
            call=call,
            user=user if getattr(user, "pk", None) else None,
            username=getattr(user, "username", "") or "",
            action=spec_slug,
            label=label,
            target=str(request.get("participant") or "")[:300],
            request=request,
            operation_context=new_operation_context(),
        )
        action_broadcast_on_commit(action)
    return action


def live_call(call_id: int) -> Call:
    """The call, if Callsite can act on it now; ``ValueError`` says why not."""
    call = Call.objects.get(pk=call_id)
    if not call.managed or not call.connection_id:
        raise ValueError("this call was not answered through Call Automation")
    if call.state == CallState.ENDED:
        raise ValueError("this call has ended")
    return call


def control_run(
    *, call_id: int, action: str, user: Any = None, params: Mapping[str, str] | None = None
) -> ControlAction:
    """Run a supervisor action on a live call Callsite controls.

    Raises ``KeyError`` for an unknown action, ``ValueError`` when the call cannot take it or
    a parameter is wrong (nothing is stored), and ``CallAutomationError`` when ACS refuses
    (the action is stored as refused and the failure among the call's problems).
    """
    spec = ACTIONS[action]
    call = live_call(call_id)
    request = spec.prepare(call, params or {})
    stored = action_record(
        call=call, user=user, spec_slug=spec.slug, label=spec.label, request=request
    )
    try:
        sent = spec.send(call, request, stored.operation_context)
    except client.CallAutomationError as error:
        action_settle(stored.pk, ActionStatus.REFUSED, str(error), code=error.status)
        call_action_failed(call_id=call.pk, action=f"{spec.label} failed", error=error)
        raise
    with transaction.atomic():
        if spec.applied is not None:
            spec.applied(call, request, sent)
        if sent.result:
            ControlAction.objects.filter(pk=stored.pk).update(
                request={**request, "result": sent.result}
            )
        action_settle(stored.pk, sent.status, sent.outcome)
    logger.info("call %s: %s requested by %s", call.connection_id, spec.label, stored.username)
    stored.refresh_from_db()
    return stored
