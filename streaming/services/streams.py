"""A call's streams: opened and closed, their heartbeats, and the streams of workers that died
(``streaming.live.heartbeat`` finds them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from streaming.events import (
    CallPayload,
)
from streaming.models import (
    Call,
    CallEndReason,
    CallState,
    Stream,
)
from streaming.selectors import (
    call_payload,
)
from streaming.services.calls import call_broadcast_on_commit, call_event_record, call_stream_opened


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
