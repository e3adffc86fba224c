"""Alert triage: a supervisor acknowledges, resolves or reopens an alert.

Each change is made under a lock on the alert's row and broadcast after commit as
``alert.updated`` to the call's pages and the wall, so every supervisor watching sees it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from streaming import events
from streaming.events import AlertPayload
from streaming.models import Alert, AlertState
from streaming.selectors import ALERT_RELATED, alert_payload

NOTE_MAX = 500

# What each triage step does, and the states it may start from.
TRIAGE_STEPS: dict[str, tuple[str, frozenset[str]]] = {
    "acknowledge": (AlertState.ACKNOWLEDGED, frozenset({AlertState.OPEN, AlertState.ACKNOWLEDGED})),
    "resolve": (AlertState.RESOLVED, frozenset({AlertState.OPEN, AlertState.ACKNOWLEDGED})),
    "reopen": (AlertState.OPEN, frozenset({AlertState.ACKNOWLEDGED, AlertState.RESOLVED})),
}


class TriageError(ValueError):
    """A triage step that cannot be taken: the reason is for the supervisor."""


def alert_triage(*, alert_id: int, step: str, user: Any, note: str = "") -> AlertPayload:
    """Take ``step`` (acknowledge, resolve or reopen) on an alert as ``user``.

    Acknowledging records who and when (an acknowledged alert may be acknowledged again to
    change its note); resolving records who and when, keeping the acknowledgement; reopening
    clears both. ``note``, if given, replaces the alert's note. Raises :class:`TriageError`
    for a step the alert's state does not allow or a note that is too long, and
    ``Alert.DoesNotExist`` for no such alert.
    """
    if step not in TRIAGE_STEPS:
        raise TriageError(f"no such step {step!r}: acknowledge, resolve or reopen")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise TriageError(f"the note is {len(note)} characters long; at most {NOTE_MAX}")
    if "\x00" in note:
        raise TriageError("the note holds a NUL character")
    target, sources = TRIAGE_STEPS[step]
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        if alert.state not in sources:
            raise TriageError(f"the alert is {alert.state}: it cannot be {step}d")
        now = timezone.now()
        alert.state = target
        if step == "acknowledge":
            alert.acknowledged_by, alert.acknowledged_at = user, now
        elif step == "resolve":
            alert.resolved_by, alert.resolved_at = user, now
        else:
            alert.acknowledged_by = alert.acknowledged_at = None
            alert.resolved_by = alert.resolved_at = None
        if note:
            alert.note = note
        alert.save(
            update_fields=[
                "state",
                "acknowledged_by",
                "acknowledged_at",
                "resolved_by",
                "resolved_at",
                "note",
            ]
        )
        fresh = Alert.objects.select_related(*ALERT_RELATED).get(pk=alert_id)
        payload = alert_payload(fresh)
        transaction.on_commit(
            partial(
                events.send_event,
                events.groups_for_call(fresh.call_id),
                events.alert_updated(payload),
            )
        )
    return payload
