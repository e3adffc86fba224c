"""Build a call's ``Transcript`` (``streaming.history.exports``) from the database."""

from __future__ import annotations

from django.db.models import F

from streaming import selectors
from streaming.history.exports import (
    DTMF,
    UNKNOWN_SPEAKER,
    Transcript,
    TranscriptLine,
    tone_text,
)
from streaming.models import Call, CallEvent, Participant, ParticipantRole, Utterance


def transcript_for_call(call_id: int) -> Transcript | None:
    """The call's transcript, or ``None`` when there is no such call. Four queries.

    DTMF tones are lines of their own (``kind`` "dtmf"), after the finals, placed by their
    time like every other line.

    Lines come in the order they were stored (``seq``); ``exports.ordered_lines`` puts them in
    spoken order, keeping each line without timings after the one stored before it.
    """
    call = (
        Call.objects.filter(pk=call_id)
        .only("pk", "connection_id", "started_at", "ended_at", "locale")
        .first()
    )
    if call is None:
        return None
    participant_rows = list(
        Participant.objects.filter(call_id=call_id).order_by("created_at", "pk")
    )
    participants = [
        (p.raw_id, p.display_label or UNKNOWN_SPEAKER, p.role) for p in participant_rows
    ]
    utterances = (
        Utterance.objects.filter(call_id=call_id)
        .select_related("participant")
        .order_by(F("seq").asc(nulls_last=True), "pk")
    )
    lines = []
    for u in utterances:
        person = u.participant
        start = u.offset_ticks
        lines.append(
            TranscriptLine(
                speaker_key=person.raw_id if person else "",
                speaker=(person.display_label if person else "") or UNKNOWN_SPEAKER,
                role=person.role if person else ParticipantRole.UNKNOWN.value,
                start_ticks=start,
                end_ticks=(
                    start + u.duration_ticks
                    if start is not None and u.duration_ticks is not None
                    else None
                ),
                text=u.text,
                confidence=u.confidence,
                words=(
                    [w for w in u.words if isinstance(w, dict)] if isinstance(u.words, list) else []
                ),
                sentiment=u.sentiment,
                sentiment_source=u.sentiment_source,
                language=u.language,
                redacted=u.redacted,
            )
        )
    people = {p.raw_id: p for p in participant_rows}
    for event in CallEvent.objects.filter(call_id=call_id, type=selectors.DTMF_EVENT).order_by(
        "time", "pk"
    ):
        raw_id = event.data.get("participant") if isinstance(event.data, dict) else None
        person = people.get(raw_id) if isinstance(raw_id, str) else None
        tone = selectors.tone_payload(event, person)
        key = person.raw_id if person else ""
        label = person.display_label if person else ""
        role = person.role if person else ParticipantRole.UNKNOWN.value
        start = tone["offset_ticks"]
        lines.append(
            TranscriptLine(
                speaker_key=key,
                speaker=label or UNKNOWN_SPEAKER,
                role=role,
                start_ticks=start,
                end_ticks=start,
                text=tone_text(tone["tone"]),
                kind=DTMF,
            )
        )
    return Transcript(
        call_id=call.pk,
        connection_id=call.connection_id,
        started_at=call.started_at,
        ended_at=call.ended_at,
        locale=call.locale,
        participants=participants,
        lines=lines,
    )
