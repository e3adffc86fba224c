"""Write-side operations on calls and utterances.

Services are synchronous and transactional; consumers call them through
``database_sync_to_async``. Each one broadcasts what it changed with
``transaction.on_commit``, so a browser never sees an event for data that was rolled back.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from streaming import events
from streaming.events import (
    AlertPayload,
    AnalyticsPayload,
    CallPayload,
    CaptionPayload,
    ParticipantPayload,
    WordPayload,
)
from streaming.identities import identity_from_raw_id
from streaming.models import (
    Alert,
    Call,
    CallAnalytics,
    CallEvent,
    CallState,
    Participant,
    TalkSecond,
    TranscriptSource,
    Utterance,
)
from streaming.packets import TICKS_PER_SECOND, TranscriptionMetadata, Word
from streaming.selectors import (
    alert_payload,
    call_payload,
    caption_payload,
    participant_payload,
)


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


def _next_seq(call_id: int) -> int:
    """The call's next event sequence number, inside the caller's transaction.

    The update locks the call's row until commit, so a call's events commit in ``seq`` order
    and a browser resuming after ``seq`` *n* misses nothing that commits later.
    """
    Call.objects.filter(pk=call_id).update(last_seq=F("last_seq") + 1)
    return Call.objects.filter(pk=call_id).values_list("last_seq", flat=True).get()


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
    return [
        {"text": w.text, "offset": w.offset, "duration": w.duration, "confidence": w.confidence}
        for w in words
    ]


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
                seq = _next_seq(call_id)
                utterance = Utterance.objects.create(
                    seq=seq,
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


@transaction.atomic
def call_audio_started(*, call_id: int, sample_rate: int, origin: datetime) -> datetime:
    """Record the audio format; fix the call's audio origin on its first frame ever.

    Returns the origin in force: a stream that reconnects keeps the first one, so its frames
    land at the same place on the call's timeline.
    """
    call = Call.objects.select_for_update().get(pk=call_id)
    changed = []
    if call.audio_origin is None:
        call.audio_origin = origin
        changed.append("audio_origin")
    if call.sample_rate != sample_rate:
        call.sample_rate = sample_rate
        changed.append("sample_rate")
    if changed:
        call.save(update_fields=[*changed, "updated_at"])
    assert call.audio_origin is not None
    return call.audio_origin


@transaction.atomic
def call_recognizer_attached(*, call_id: int) -> None:
    """A recognizer transcribes the call's audio (unless ACS transcription already does)."""
    call = Call.objects.select_for_update().get(pk=call_id)
    if call.transcript_source == TranscriptSource.NONE:
        call.transcript_source = TranscriptSource.RECOGNIZER
        call.save(update_fields=["transcript_source", "updated_at"])
        call_broadcast_on_commit(call)


def call_event_record(
    *,
    call_id: int,
    type: str,
    data: dict[str, object],
    event_id: str | None = None,
    is_failure: bool = False,
    message: str = "",
    time: datetime | None = None,
) -> bool:
    """Store an event on the call (a DTMF tone, a recognition gap); False if already stored.

    ``event_id`` makes a replayed event a no-op; without one the event is always new.
    """
    with transaction.atomic():
        _event, created = CallEvent.objects.get_or_create(
            event_id=(event_id or f"callsite:{uuid.uuid4()}")[:200],
            defaults={
                "call_id": call_id,
                "type": type[:120],
                "data": data,
                "is_failure": is_failure,
                "result_message": message,
                "time": time or timezone.now(),
            },
        )
    return created


def talk_seconds_store(rows: Sequence[TalkSecond]) -> int:
    """Insert or refresh per-second talk buckets in one statement; returns the row count.

    A bucket written again (a stream that reconnected inside the same second) is replaced
    by the newer count, which holds the frames the new connection saw.
    """
    if not rows:
        return 0
    TalkSecond.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["call", "stream", "second"],
        update_fields=["frames", "voiced_frames", "voiced_mask", "mean_db", "peak_db"],
        batch_size=500,
    )
    return len(rows)


def stream_resume_point(*, call_id: int, stream: str) -> int | None:
    """Where a reconnecting stream's new audio starts: the end of its last stored second.

    Audio before it was received by an earlier connection; a replay of it is dropped.
    """
    last = (
        TalkSecond.objects.filter(call_id=call_id, stream=stream)
        .order_by("-second")
        .values_list("second", flat=True)
        .first()
    )
    return None if last is None else (last + 1) * TICKS_PER_SECOND


def call_analytics_store(payloads: Sequence[AnalyticsPayload]) -> None:
    """Save calls' latest figures (the live ticker batches them every few seconds)."""
    with transaction.atomic():
        for a in payloads:
            agents = [s["ratio"] for s in a["speakers"] if s["role"] == "agent"]
            CallAnalytics.objects.update_or_create(
                call_id=a["call_id"],
                defaults={
                    "source": a["source"],
                    "final": a["final"],
                    "duration_ms": a["duration_ms"],
                    "talk_ms": a["talk_ms"],
                    "overlap_ms": a["overlap_ms"],
                    "silence_ms": a["silence_ms"],
                    "longest_silence_ms": a["longest_silence_ms"],
                    "longest_monologue_ms": max(
                        (s["longest_monologue_ms"] for s in a["speakers"]), default=0
                    ),
                    "interruptions": a["interruptions"],
                    "agent_talk_ratio": round(sum(agents), 4) if agents else None,
                    "speakers": a["speakers"],
                    "timeline": a["timeline"]["rows"],
                },
            )


def alert_record(
    *,
    call_id: int,
    rule_id: int | None,
    kind: str,
    message: str,
    at_ms: int,
    episode: str,
    participant_raw_id: str | None = None,
) -> AlertPayload | None:
    """Store a fired alert once per episode and broadcast it; None if it was already stored."""
    with transaction.atomic():
        if Alert.objects.filter(call_id=call_id, episode=episode[:400]).exists():
            return None
        participant = None
        if participant_raw_id:
            participant = Participant.objects.filter(
                call_id=call_id, raw_id=participant_raw_id
            ).first()
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    call_id=call_id,
                    rule_id=rule_id,
                    kind=kind,
                    message=message[:500],
                    at_ms=max(0, at_ms),
                    episode=episode[:400],
                    participant=participant,
                    seq=_next_seq(call_id),
                )
        except IntegrityError:
            return None
        alert.participant = participant
        payload = alert_payload(alert)
        transaction.on_commit(
            partial(events.send_event, events.groups_for_call(call_id), events.alert_fired(payload))
        )
    return payload
