"""Read-side queries that return plain data for consumers, views and events."""

from __future__ import annotations

from django.db.models import Prefetch

from streaming.events import CallPayload, CaptionPayload, ParticipantPayload, ProblemPayload
from streaming.models import Call, CallEvent, CallState, Participant, Utterance

PROBLEMS_SHOWN = 10


def participant_payload(participant: Participant) -> ParticipantPayload:
    return {
        "id": participant.pk,
        "raw_id": participant.raw_id,
        "label": participant.display_label,
        "role": participant.role,
        "kind": participant.kind,
        "is_muted": participant.is_muted,
        "is_on_hold": participant.is_on_hold,
        "in_call": participant.in_call,
    }


def problem_payload(event: CallEvent) -> ProblemPayload:
    return {
        "type": event.type,
        "code": event.result_code,
        "subcode": event.result_subcode,
        "message": event.result_message,
        "at": event.received_at.isoformat(),
    }


def _problems(call: Call) -> list[CallEvent]:
    cached = getattr(call, "failures", None)
    if cached is not None:
        return list(cached)[-PROBLEMS_SHOWN:]
    newest = call.events.filter(is_failure=True).order_by("-received_at", "-pk")[:PROBLEMS_SHOWN]
    return list(reversed(newest))


def call_payload(call: Call, participants: list[Participant] | None = None) -> CallPayload:
    """Serialise a call; pass ``participants`` to avoid a query when they are at hand."""
    people = participants if participants is not None else list(call.participants.all())
    return {
        "id": call.pk,
        "connection_id": call.connection_id,
        "state": call.state,
        "managed": call.managed,
        "caller": call.caller,
        "caller_display_name": call.caller_display_name,
        "callee": call.callee,
        "media_state": call.media_state,
        "transcription_state": call.transcription_state,
        "transcript_source": call.transcript_source,
        "locale": call.locale,
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "participants": [participant_payload(p) for p in people],
        "problems": [problem_payload(e) for e in _problems(call)],
    }


def caption_payload(utterance: Utterance, participant: Participant | None) -> CaptionPayload:
    return {
        "call_id": utterance.call_id,
        "utterance_id": utterance.pk,
        "participant": participant_payload(participant) if participant else None,
        "text": utterance.text,
        "confidence": utterance.confidence,
        "offset_ticks": utterance.offset_ticks,
        "duration_ticks": utterance.duration_ticks,
        "words": utterance.words,
        "final": True,
    }


def call_get(*, call_id: int) -> CallPayload | None:
    """One call with its participants, or ``None`` when it does not exist."""
    call = Call.objects.filter(pk=call_id).prefetch_related("participants").first()
    return call_payload(call) if call else None


def call_list(*, limit: int = 100) -> list[CallPayload]:
    """Live calls first, then the most recent finished ones, for the call wall."""
    calls = Call.objects.prefetch_related(
        Prefetch("participants", queryset=Participant.objects.order_by("created_at", "pk")),
        Prefetch(
            "events",
            queryset=CallEvent.objects.filter(is_failure=True).order_by("received_at", "pk"),
            to_attr="failures",
        ),
    )
    live = list(calls.exclude(state=CallState.ENDED).order_by("-created_at")[:limit])
    recent = list(
        calls.filter(state=CallState.ENDED).order_by("-ended_at")[: max(0, limit - len(live))]
    )
    return [call_payload(call) for call in live + recent]


def call_captions(*, call_id: int) -> list[CaptionPayload]:
    """Every final utterance of a call in spoken order."""
    utterances = (
        Utterance.objects.filter(call_id=call_id)
        .select_related("participant")
        .order_by("offset_ticks", "pk")
    )
    return [caption_payload(u, u.participant) for u in utterances]
