"""Write-side operations on calls and utterances.

Services are synchronous and transactional; consumers call them through
``database_sync_to_async``. Each one broadcasts what it changed with
``transaction.on_commit``, so a browser never sees an event for data that was rolled back.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
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
    CallEndReason,
    CallEvent,
    CallState,
    Participant,
    Stream,
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
        call.end_reason = CallEndReason.NONE
    elif call.state == CallState.RINGING:
        call.state = CallState.CONNECTED
    call.started_at = call.started_at or now
    if correlation_id and not call.correlation_id:
        call.correlation_id = correlation_id
    call.save()
    call_broadcast_on_commit(call)
    return call_payload(call)


@transaction.atomic
def stream_opened(
    *, connection_id: str, correlation_id: str = "", worker: str
) -> tuple[CallPayload, int]:
    """A stream opened on ``worker``: the call goes on (see ``call_stream_opened``), and the
    stream's heartbeat starts. Returns the call and the stream's id.

    Open streams of the call whose worker stopped answering are closed: this one replaces
    them (ACS reconnected after their worker died).
    """
    call = call_stream_opened(connection_id=connection_id, correlation_id=correlation_id)
    now = timezone.now()
    Stream.objects.silent_since(now - _stuck()).filter(call_id=call["id"]).update(closed_at=now)
    stream = Stream.objects.create(call_id=call["id"], worker=worker[:100], opened_at=now)
    return call, stream.pk


def _stuck() -> timedelta:
    return timedelta(seconds=settings.CALLSITE_STUCK_SECONDS)


@transaction.atomic
def call_stream_closed(*, call_id: int, stream_id: int | None = None) -> CallPayload:
    """Record that a stream of the call closed: without Call Automation, the call's last
    open stream closing ends the call. Returns the call as it is now.

    A managed call ends with its ``CallDisconnected`` callback instead: a stream can close
    while the call goes on (streaming stopped by a supervisor, or a reconnect under way).
    """
    call = Call.objects.select_for_update().get(pk=call_id)
    now = timezone.now()
    if stream_id is not None:
        Stream.objects.filter(pk=stream_id, closed_at__isnull=True).update(closed_at=now)
    others = Stream.objects.heard_since(now - _stuck()).filter(call_id=call_id)
    if call.state != CallState.ENDED and not call.managed and not others.exists():
        _call_ends(call, at=now, reason=CallEndReason.STREAM_CLOSED)
    return call_payload(call)


def _call_ends(call: Call, *, at: datetime | None, reason: str) -> None:
    """End the call at ``at`` for ``reason`` (``at=None``: it goes on after all), and say so
    once the transaction commits."""
    call.state = CallState.CONNECTED if at is None else CallState.ENDED
    call.ended_at = at
    call.end_reason = reason
    call.save(update_fields=["state", "ended_at", "end_reason", "updated_at"])
    call_broadcast_on_commit(call)


def streams_heartbeat(*, beats: Sequence[tuple[int, datetime | None]]) -> int:
    """This worker still holds these streams: (stream id, time of its newest packet).

    A stream that another worker gave up for lost while this one was stalled is open again,
    and its call with it: the call goes on as one call.
    """
    if not beats:
        return 0
    now = timezone.now()
    ids = [stream_id for stream_id, _ in beats]
    with transaction.atomic():
        Stream.objects.bulk_update(
            [Stream(pk=i, seen_at=now, last_packet_at=at) for i, at in beats],
            ["seen_at", "last_packet_at"],
        )
        revived = Stream.objects.filter(pk__in=ids, lost=True)
        calls = list(revived.values_list("call_id", flat=True))
        revived.update(lost=False, closed_at=None)
        for call in Call.objects.select_for_update().filter(
            pk__in=calls, end_reason=CallEndReason.STREAM_LOST
        ):
            _call_ends(call, at=None, reason=CallEndReason.NONE)
    return len(ids)


def streams_replaced(*, seen_before: datetime) -> int:
    """Close open streams not seen since ``seen_before`` whose call streams elsewhere now.

    ACS reconnected the call to another worker before this stream's worker was found dead:
    the call goes on, and the old stream is closed, not lost.
    """
    return (
        Stream.objects.silent_since(seen_before)
        .whose_call_is_heard_since(seen_before)
        .update(closed_at=timezone.now())
    )


def stream_lost(*, stream_id: int, seen_before: datetime) -> bool:
    """Give up a stream whose worker has not been heard of since ``seen_before``.

    The call ends as lost (``end_reason`` "stream_lost", ended at its last packet) unless
    another stream of it is alive. A managed call's state belongs to its callbacks: it gets
    a failure event saying the stream was lost instead. False if the stream was closed or
    heard of meanwhile (another worker got there first, or it came back).
    """
    call_id = Stream.objects.filter(pk=stream_id).values_list("call_id", flat=True).first()
    if call_id is None:
        return False
    with transaction.atomic():
        # The call's row first, as every other service that touches streams locks it.
        call = Call.objects.select_for_update().get(pk=call_id)
        stream = (
            Stream.objects.select_for_update()
            .filter(pk=stream_id, closed_at__isnull=True, seen_at__lt=seen_before)
            .first()
        )
        if stream is None:
            return False
        now = timezone.now()
        stream.closed_at = now
        stream.lost = True
        stream.save(update_fields=["closed_at", "lost"])
        alive = Stream.objects.heard_since(seen_before).filter(call_id=call_id)
        if call.state == CallState.ENDED or alive.exists():
            return True
        last = stream.last_packet_at or stream.seen_at
        if call.managed:
            call_event_record(
                call_id=call_id,
                type="stream.lost",
                data={"worker": stream.worker, "last_packet_at": last.isoformat()},
                is_failure=True,
                message=f"stream lost: its worker {stream.worker} stopped answering",
            )
            call_broadcast_on_commit(call)
            return True
        ended = max(last, call.started_at) if call.started_at else last
        _call_ends(call, at=ended, reason=CallEndReason.STREAM_LOST)
    return True


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
