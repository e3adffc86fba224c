"""Re-redaction of stored utterances after the rules change (``manage.py redact_history``).

Batched by primary key, so it runs in bounded memory on any history and can be stopped and
run again: an utterance the rules in force already mask is left as it is (idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from streaming.models import CallEvent, Utterance
from streaming.redaction.applied import (
    BY_ACS,
    BY_CALLSITE,
    recording_silence,
    rules_from_settings,
    words_from_payload,
)
from streaming.redaction.core import TimeSpan, redact
from streaming.selectors import DTMF_EVENT
from streaming.services import words_payload
from streaming.services.calls import MASK

FIELDS = (
    "pk", "call_id", "text", "words", "offset_ticks", "duration_ticks", "redacted", "redaction"
)
Progress = Callable[[int, int, int], None]  # checked, total, changed


@dataclass(frozen=True, slots=True)
class RedactionRun:
    checked: int
    changed: int
    silenced: int  # time spans passed to the recordings


def utterances_redact(
    *, batch_size: int = 500, dry_run: bool = False, progress: Progress | None = None
) -> RedactionRun:
    """Apply the rules in force to every stored utterance; returns what it did (or, dry,
    what it would do). Utterances ACS redacted are left as ACS sent them."""
    rules = rules_from_settings()
    total = Utterance.objects.count()
    checked = changed = silenced = 0
    last_pk = 0
    while True:
        batch = list(
            Utterance.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .only(*FIELDS)[:batch_size]
        )
        if not batch:
            break
        last_pk = batch[-1].pk
        updates = []
        for utterance in batch:
            checked += 1
            record = utterance.redaction if isinstance(utterance.redaction, dict) else {}
            if record.get("by") == BY_ACS:
                continue
            result = redact(
                utterance.text,
                words_from_payload(utterance.words if isinstance(utterance.words, list) else []),
                rules,
                offset_ticks=utterance.offset_ticks,
                duration_ticks=utterance.duration_ticks,
            )
            words = words_payload(result.words)
            kinds = sorted({*record.get("kinds", []), *result.kinds})
            redacted = bool(kinds)
            if (
                result.text == utterance.text
                and words == utterance.words
                and utterance.redacted is redacted
            ):
                continue
            changed += 1
            known = record.get("times", [])
            times = [
                {"kind": t.kind, "start_ticks": t.start_ticks, "end_ticks": t.end_ticks}
                for t in result.times
            ]
            utterance.text = result.text
            utterance.words = words
            utterance.redacted = redacted
            utterance.redaction = {
                "by": BY_CALLSITE,
                "kinds": kinds,
                "times": [*known, *(t for t in times if t not in known)],
            }
            updates.append((utterance, result.times))
        if updates and not dry_run:
            with transaction.atomic():
                Utterance.objects.bulk_update(
                    [u for u, _ in updates], ["text", "words", "redacted", "redaction"]
                )
            for utterance, spans in updates:
                silenced += _silence(utterance.call_id, spans)
        if progress is not None:
            progress(checked, total, changed)
    return RedactionRun(checked=checked, changed=changed, silenced=silenced)


def _silence(call_id: int, spans: tuple[TimeSpan, ...]) -> int:
    return recording_silence(call_id=call_id, times=spans) if spans else 0


def tones_mask(*, batch_size: int = 500, dry_run: bool = False) -> int:
    """Mask the digits of DTMF tones stored as pressed (``CALLSITE_DTMF_DIGITS=keep`` before
    redaction was on); returns how many there were."""
    found = 0
    last_pk = 0
    while True:
        batch = list(
            CallEvent.objects.filter(pk__gt=last_pk, type=DTMF_EVENT).order_by("pk")[:batch_size]
        )
        if not batch:
            return found
        last_pk = batch[-1].pk
        kept = [e for e in batch if isinstance(e.data, dict) and e.data.get("masked") is False]
        found += len(kept)
        if kept and not dry_run:
            for event in kept:
                event.data = {**event.data, "tone": MASK, "masked": True}
            CallEvent.objects.bulk_update(kept, ["data"])
