"""Pause for payment ("secure pause"): while a caller reads out a card number, the call's
audio is neither recorded nor recognized, and ACS's own transcription of it is not kept.

A supervisor pauses and resumes from the call's page (or by POST with a JSON answer); the
pause is stored on the call (``Call.secure_pause_since``, and every pause's start and end in
``Call.secure_pause_periods``, drawn on the call's timeline), so a stream that reconnects
mid-pause starts paused, and told to every media socket of the call, whichever worker holds
it, through the channel layer (``streaming.events.streams_group``). Each socket applies it
from its next frame and records where on the call's timeline it did (``secure_pause.started`` and
``secure_pause.ended`` events). Each pause and resume is in the call's audit of supervisor
actions. Unlike the actions in ``control``, it needs no Call Automation: it works on any
call Callsite receives audio of.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from streaming.automation.control import action_record
from streaming.automation.outcomes import action_settle
from streaming.events import streams_group
from streaming.models import ActionStatus, Call, CallState
from streaming.services.calls import call_broadcast_on_commit

logger = logging.getLogger(__name__)

PAUSE, RESUME = "secure-pause", "secure-resume"
LABELS = {PAUSE: "Pause for payment", RESUME: "Resume after payment"}


def _tell_streams(call_id: int, paused: bool) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(
            streams_group(call_id), {"type": "secure_pause", "paused": paused}
        )


def _periods_after(stored: object, now: datetime, paused: bool) -> list[list[str | None]]:
    """The call's pause periods with one opened (or the open one closed) ``now``."""
    periods = [list(p) for p in stored if isinstance(p, list)] if isinstance(stored, list) else []
    if paused:
        return [*periods, [now.isoformat(), None]]
    if periods and len(periods[-1]) == 2 and periods[-1][1] is None:
        periods[-1][1] = now.isoformat()
    return periods


def secure_pause_set(*, call_id: int, paused: bool, user: Any = None) -> Call:
    """Pause (or resume) the call's recording and recognition; the call as it is now.

    Raises ``ValueError`` when the call has ended. Asking for the state the call is already
    in changes nothing and records nothing.
    """
    with transaction.atomic():
        call = Call.objects.select_for_update().get(pk=call_id)
        if call.state == CallState.ENDED:
            raise ValueError("this call has ended")
        if (call.secure_pause_since is not None) == paused:
            return call
        slug = PAUSE if paused else RESUME
        action = action_record(call=call, user=user, spec_slug=slug, label=LABELS[slug], request={})
        now = timezone.now()
        call.secure_pause_since = now if paused else None
        call.secure_pause_periods = _periods_after(call.secure_pause_periods, now, paused)
        call.save(update_fields=["secure_pause_since", "secure_pause_periods"])
        outcome = (
            "audio is not recorded or transcribed until resumed"
            if paused
            else "recording and transcription go on"
        )
        action_settle(action.pk, ActionStatus.SUCCEEDED, outcome)
        call_broadcast_on_commit(call)
        transaction.on_commit(partial(_tell_streams, call.pk, paused))
    logger.info(
        "call %s: %s by %s", call.connection_id or call.pk, LABELS[slug].lower(), action.username
    )
    return call
