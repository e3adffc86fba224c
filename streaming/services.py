"""Write-side operations on calls and utterances.

Services are synchronous and transactional; consumers call them through
``database_sync_to_async``. Each one broadcasts what it changed with
``transaction.on_commit``, so a browser never sees an event for data that was rolled back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from streaming import events
from streaming.events import CallPayload, CaptionPayload, ParticipantPayload, WordPayload
from streaming.identities import identity_from_raw_id
from streaming.models import Call, CallState, Participant, TranscriptSource, Utterance
from streaming.packets import TranscriptionMetadata, Word
from streaming.selectors import call_payload, caption_payload, participant_payload


def call_broadcast_on_commit(call: Call) -> None:
    """Send the call's new state to its page and the wall once the transaction commits."""
    payload = call_payload(call)
    transaction.on_commit(
        partial(events.send_event, events.groups_for_call(call.pk), events.call_updated(payload))
    )


@transaction.atomic
def call_stream_opened(*, connection_id: str, correlation_id: str = "") -> CallPayload:
    """Record that ACS opened a stream for a call; creates the call on first sight.

    A reconnect of an ended call's stream brings it back to ``connected``: ACS reconnects the
    same call connection after a network blip. A call answered through Call Automation is
    different: its callbacks own its state, so a stream only moves it out of ``ringing``.
    """
    now = timezone.now()
    call, _created = Call.objects.select_for_update().get_or_create(
        connection_id=connection_id,
        defaults={
            "correlation_id": correlation_id,
            "state": CallState.CONNECTED,
            "started_at": now,
        },
    )
    if not call.managed:
        call.state = CallState.CONNECTED
        call.ended_at = None
    elif call.state == CallState.RINGING:
        call.state = CallState.CONNECTED
    call.started_at = call.started_at or now
    if correlation_id and not call.correlation_id:
        call.correlation_id = correlation_id
    call.save()
    call_broadcast_on_commit(call)
    return call_payload(call)


@transaction.atomic
def call_stream_closed(*, call_id: int) -> None:
    """Record that the call's stream closed: without Call Automation, that ends the call.

    A managed call ends with its ``CallDisconnected`` callback instead: a stream can close
    while the call goes on (streaming stopped by a supervisor, or a reconnect under way).
    """
    call = Call.objects.select_for_update().get(pk=call_id)
    if call.state == CallState.ENDED or call.managed:
        return
    call.state = CallState.ENDED
    call.ended_at = timezone.now()
    call.save(update_fields=["state", "ended_at", "updated_at"])
    call_broadcast_on_commit(call)


@transaction.atomic
def call_transcription_started(*, call_id: int, metadata: TranscriptionMetadata) -> None:
    """Apply a ``TranscriptionMetadata`` packet: ACS is now the call's transcript source."""
    call = Call.objects.select_for_update().get(pk=call_id)
    call.transcript_source = TranscriptSource.ACS
    call.locale = (metadata.locale or call.locale)[:35]
    if metadata.correlation_id and not call.correlation_id:
        call.correlation_id = metadata.correlation_id[:200]
    call.save()
    call_broadcast_on_commit(call)


def participant_ensure(*, call_id: int, raw_id: str) -> ParticipantPayload:
    """Return the call's participant for ``raw_id``, creating it on first sight."""
    with transaction.atomic():
        participant, created = _participant_get_or_create(call_id=call_id, raw_id=raw_id)
        if created:
            call_broadcast_on_commit(Call.objects.get(pk=call_id))
    return participant_payload(participant)


def _participant_get_or_create(*, call_id: int, raw_id: str) -> tuple[Participant, bool]:
    identity = identity_from_raw_id(raw_id)
    return Participant.objects.get_or_create(
        call_id=call_id,
        raw_id=raw_id,
        defaults={"kind": identity.kind, "role": identity.role, "display_label": identity.label},
    )


def utterance_dedupe_key(
    *, source: str, participant_raw_id: str | None, offset_ticks: int | None, text: str
) -> str:
    """What identifies a final result whatever the packet that carried it.

    The offset pins a phrase in the stream; packets without one fall back to a digest of the
    text, which still collapses exact replays.
    """
    speaker = participant_raw_id or ""
    if offset_ticks is not None:
        anchor = f"t{offset_ticks}"
    else:
        anchor = "h" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    key = f"{source}|{anchor}|{speaker}"
    return key[:400]


def words_payload(words: Sequence[Word]) -> list[WordPayload]:
    return [{"text": w.text, "offset": w.offset, "duration": w.duration} for w in words]


def utterance_record(
    *,
    call_id: int,
    participant_raw_id: str | None,
    text: str,
    confidence: float | None,
    offset_ticks: int | None,
    duration_ticks: int | None,
    words: Sequence[Word],
    source: str,
) -> tuple[CaptionPayload, bool]:
    """Store a final result exactly once and broadcast it after commit.

    Returns the caption and whether it was new; a replayed result returns the stored one and
    broadcasts nothing.
    """
    key = utterance_dedupe_key(
        source=source, participant_raw_id=participant_raw_id, offset_ticks=offset_ticks, text=text
    )
    with transaction.atomic():
        participant = None
        if participant_raw_id:
            participant, created_participant = _participant_get_or_create(
                call_id=call_id, raw_id=participant_raw_id
            )
            if created_participant:
                call_broadcast_on_commit(Call.objects.get(pk=call_id))
        existing = Utterance.objects.filter(call_id=call_id, dedupe_key=key).first()
        if existing is not None:
            return caption_payload(existing, existing.participant), False
        try:
            # The savepoint keeps the outer transaction usable if a concurrent writer (a
            # reconnected stream replaying the same packet) inserted the row first.
            with transaction.atomic():
                utterance = Utterance.objects.create(
                    call_id=call_id,
                    participant=participant,
                    text=text,
                    confidence=confidence,
                    offset_ticks=offset_ticks,
                    duration_ticks=duration_ticks,
                    words=words_payload(words),
                    source=source,
                    dedupe_key=key,
                )
        except IntegrityError:
            existing = Utterance.objects.select_related("participant").get(
                call_id=call_id, dedupe_key=key
            )
            return caption_payload(existing, existing.participant), False
        caption = caption_payload(utterance, participant)
        transaction.on_commit(
            partial(events.send_event, (events.call_group(call_id),), events.caption_final(caption))
        )
    return caption, True
