"""A call page's socket: the call's snapshot from the database, then its events in order.

Stored events of a call (finals, alerts and DTMF tones) carry the call's sequence number
``seq``. The socket sends them strictly in ``seq`` order, each once:

* a browser that reconnects passes ``?after=<seq>``, the last one it has, and gets only what
  it missed;
* an event that arrives over the channel layer with a ``seq`` already sent (it was in the
  snapshot) is dropped;
* an event that arrives after a hole (the channel layer is best-effort and may drop a
  message) first fills the hole from the database.

DTMF tones are stored events too. Interim captions, speaking, call state, analytics and
health are state, not history: each message
replaces what the page shows, so they carry no ``seq``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from dashboard import messages
from dashboard.consumers.base import SupervisorSocket
from dashboard.messages import LIVE_ANALYTICS
from dashboard.permissions import can_view_call
from streaming import events, selectors
from streaming.live.registry import analytics_from_history
from streaming.models import CallState

logger = logging.getLogger(__name__)


def _after(scope: dict[str, Any]) -> int | None:
    """The ``?after=`` sequence number a reconnecting page passes, if any."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        value = int(query.get("after", [""])[0])
    except ValueError:
        return None
    return value if value >= 0 else None


class CallPageConsumer(SupervisorSocket):
    """``/ws/dashboard/calls/<id>/``: one call's page."""

    call_id = 0
    last_seq = 0

    async def join(self) -> str | None:
        call_id = self.scope["url_route"]["kwargs"]["call_id"]
        if not await database_sync_to_async(can_view_call)(self.scope["user"], call_id):
            return None  # another team's call is as absent as one that does not exist
        if not await database_sync_to_async(selectors.call_exists)(call_id=call_id):
            return None
        self.call_id = call_id
        return events.call_group(call_id)

    def may_still_watch(self, user: Any) -> bool:
        return can_view_call(user, self.call_id)

    async def send_snapshot(self) -> None:
        snapshot, analytics = await database_sync_to_async(self.snapshot)(_after(self.scope))
        await self.send_message(snapshot)
        await self.send_message(messages.analytics_whole(analytics))

    def snapshot(self, after: int | None) -> tuple[messages.CallSnapshot, events.AnalyticsPayload]:
        call_id = self.call_id
        call = selectors.call_get(call_id=call_id)
        if after is None:
            captions = selectors.call_captions(call_id=call_id)
            alerts = selectors.call_alerts(call_id=call_id)
        else:
            captions = selectors.call_captions_after(call_id=call_id, after_seq=after)
            # Every alert, not only the new ones: triage may have changed the older ones'
            # state while the page was away, and the page replaces each by its id.
            alerts = selectors.call_alerts(call_id=call_id)
        tones = selectors.call_tones(call_id=call_id, after_seq=after)
        seqs = [c["seq"] for c in captions if c["seq"]] + [a["seq"] for a in alerts if a["seq"]]
        seqs += [t["seq"] for t in tones if t["seq"]]
        self.last_seq = max([after or 0, *seqs])
        analytics = selectors.stored_analytics(call_id=call_id)
        if analytics is None and call is not None and call["state"] == CallState.ENDED:
            analytics = analytics_from_history(
                call_id=call_id, final=True, duration_ms=call["duration_ms"]
            )
        snapshot = messages.call_snapshot(
            call=call,
            captions=captions,
            alerts=alerts,
            actions=selectors.call_actions(call_id=call_id),
            tones=tones,
            last_seq=self.last_seq,
            resume=after is not None,
            low_confidence=settings.CALLSITE_LOW_CONFIDENCE_PERCENT / 100,
        )
        return snapshot, analytics or events.analytics_empty(call_id)

    # --- stored events, in seq order -----------------------------------------------------------

    async def in_order(self, seq: int | None, event: dict[str, Any]) -> None:
        if seq is None:
            await self.send_message(event)
            return
        if seq <= self.last_seq:
            return  # already sent (in the snapshot, or filled in)
        if seq > self.last_seq + 1:
            missing = await database_sync_to_async(self.missing)(self.last_seq)
            for fill_seq, fill in missing:
                if fill_seq < seq:
                    await self.send_message(fill)
            logger.info(
                "call %s: filled a hole of %d events before seq %d",
                self.call_id,
                seq - self.last_seq - 1,
                seq,
            )
        self.last_seq = seq
        await self.send_message(event)

    def missing(self, after: int) -> list[tuple[int, events.Event]]:
        """The call's stored events after ``after``, as the live events they were sent as."""
        found: list[tuple[int, events.Event]] = []
        for caption in selectors.call_captions_after(call_id=self.call_id, after_seq=after):
            found.append((caption["seq"] or 0, events.caption_final(caption)))
        for alert in selectors.call_alerts(call_id=self.call_id, after_seq=after):
            found.append((alert["seq"] or 0, events.alert_fired(alert)))
        for tone in selectors.call_tones(call_id=self.call_id, after_seq=after):
            found.append((tone["seq"] or 0, events.dtmf_tone(tone)))
        return sorted(found, key=lambda item: item[0])

    async def caption_final(self, event: dict[str, Any]) -> None:
        await self.in_order(event["caption"].get("seq"), event)

    async def alert_fired(self, event: dict[str, Any]) -> None:
        await self.in_order(event["alert"].get("seq"), event)

    async def dtmf_tone(self, event: dict[str, Any]) -> None:
        await self.in_order(event["tone"].get("seq"), event)

    # --- state ---------------------------------------------------------------------------------

    async def call_updated(self, event: dict[str, Any]) -> None:
        await self.send_message(event)

    async def call_action(self, event: dict[str, Any]) -> None:
        await self.send_message(event)

    async def call_participant(self, event: dict[str, Any]) -> None:
        await self.send_message(event)

    async def alert_updated(self, event: dict[str, Any]) -> None:
        """A triage change: state, not history (the page replaces the alert it names)."""
        await self.send_message(event)

    async def caption_interim(self, event: dict[str, Any]) -> None:
        await self.send_message(event)

    async def speaking_changed(self, event: dict[str, Any]) -> None:
        await self.send_message(event)

    async def analytics_updated(self, event: dict[str, Any]) -> None:
        await self.send(text_data=LIVE_ANALYTICS.text(event["analytics"]))
