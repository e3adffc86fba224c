"""Write-side operations on a call itself: its state, its streams' formats, its events."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from streaming import events
from streaming.acs.packets import TranscriptionMetadata
from streaming.acs.reading import UNSTORABLE
from streaming.acs.webhooks import stream_callback_id
from streaming.events import (
    CallPayload,
    DtmfPayload,
)
from streaming.models import (
    Call,
    CallEndReason,
    CallEvent,
    CallState,
    TranscriptSource,
)
from streaming.selectors import (
    DTMF_EVENT,
    call_payload,
    call_timeline_origin,
    tone_payload,
)
from streaming.services.utterances import call_next_seq, participant_get_or_create
from streaming.units import TICKS_PER_SECOND


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
            "callback_id": stream_callback_id(connection_id),
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
def call_transcription_started(*, call_id: int, metadata: TranscriptionMetadata) -> None:
    """Apply a ``TranscriptionMetadata`` packet: ACS is now the call's transcript source."""
    call = Call.objects.select_for_update().get(pk=call_id)
    call.transcript_source = TranscriptSource.ACS
    call.locale = (metadata.locale or call.locale)[:35]
    options = dict(metadata.options)
    model = metadata.speech_model_endpoint_id
    if model and not UNSTORABLE.search(model):
        options["speech_model_endpoint_id"] = model[:100]
    if options:
        call.transcription_options = options
    if metadata.correlation_id and not call.correlation_id:
        call.correlation_id = metadata.correlation_id[:200]
    call.save()
    call_broadcast_on_commit(call)


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


MASK = "•"  # what a masked DTMF tone is shown, stored and exported as


def call_tone_record(
    *,
    call_id: int,
    tone: str,
    participant_raw_id: str | None,
    at: datetime | None,
) -> DtmfPayload | None:
    """Store a DTMF tone once (keyed by who pressed it when) and broadcast it after commit.

    Under ``CALLSITE_DTMF_DIGITS=mask`` (the default) the digit is replaced before anything is
    written: the stored event, its id and the page keep only the fact, the time and the
    participant. Returns None for a replayed tone.
    """
    # Under redaction a keypad's digits are masked whatever CALLSITE_DTMF_DIGITS says.
    keep = settings.CALLSITE_DTMF_DIGITS == "keep" and settings.CALLSITE_REDACT != "on"
    shown = tone[:20] if keep else MASK
    with transaction.atomic():
        participant = None
        if participant_raw_id:
            participant = participant_get_or_create(call_id=call_id, raw_id=participant_raw_id)
        # No digit in the id: a tone pressed twice at one moment by one person is one tone.
        event_id = None
        if at is not None:
            event_id = f"dtmf|{call_id}|{participant_raw_id or ''}|{at.isoformat()}"[:200]
            if CallEvent.objects.filter(event_id=event_id).exists():
                return None
        origin = call_timeline_origin(call_id=call_id)
        offset = None
        if at is not None and origin is not None and at >= origin:
            offset = round((at - origin).total_seconds() * TICKS_PER_SECOND)
        data: dict[str, object] = {
            "tone": shown,
            "masked": not keep,
            "participant": participant_raw_id,
            "offset_ticks": offset,
            "seq": call_next_seq(call_id),
        }
        event = CallEvent.objects.create(
            call_id=call_id,
            event_id=event_id or f"callsite:{uuid.uuid4()}",
            type=DTMF_EVENT,
            data=data,
            time=at or timezone.now(),
        )
        payload = tone_payload(event, participant)
        transaction.on_commit(
            partial(events.send_event, (events.call_group(call_id),), events.dtmf_tone(payload))
        )
    return payload
