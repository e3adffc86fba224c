"""Talk time, live figures and alerts as they are stored."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from django.db import DatabaseError, IntegrityError, transaction

from streaming import events
from streaming.events import (
    AlertPayload,
    AnalyticsPayload,
)
from streaming.models import (
    Alert,
    CallAnalytics,
    Participant,
    TalkSecond,
)
from streaming.selectors import (
    alert_payload,
)
from streaming.services.delivery import deliveries_enqueue
from streaming.services.utterances import call_next_seq
from streaming.units import TICKS_PER_SECOND


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


def talk_seconds_store_each(rows: Sequence[TalkSecond]) -> list[tuple[TalkSecond, str]]:
    """Store rows one at a time, each in a savepoint; return the rows refused, and why."""
    refused: list[tuple[TalkSecond, str]] = []
    for row in rows:
        try:
            with transaction.atomic():
                talk_seconds_store([row])
        except DatabaseError as error:
            refused.append((row, str(error).splitlines()[0][:200]))
    return refused


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
                    "hold_ms": a["hold_ms"],
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
                    seq=call_next_seq(call_id),
                )
                deliveries_enqueue(alert)
        except IntegrityError:
            return None
        alert.participant = participant
        payload = alert_payload(alert)
        transaction.on_commit(
            partial(events.send_event, events.groups_for_call(call_id), events.alert_fired(payload))
        )
    return payload
