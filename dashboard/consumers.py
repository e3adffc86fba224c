"""The supervisor's live socket: a snapshot from the database, then deltas.

The consumer joins its group *before* reading the snapshot, so nothing that commits in
between is missed.

Stored events of a call (finals and alerts) carry the call's sequence number ``seq``. A
call-page socket sends them strictly in ``seq`` order, each once:

* a browser that reconnects passes ``?after=<seq>``, the last one it has, and gets only
  what it missed;
* an event that arrives over the channel layer with a ``seq`` already sent (it was in the
  snapshot) is dropped;
* an event that arrives after a hole (the channel layer is best-effort and may drop a
  message) first fills the hole from the database.

Interim captions, call state, analytics and health are state, not history: each message
replaces what the page shows, so they carry no ``seq``.
"""

from __future__ import annotations

import json
import logging
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from dashboard import charts
from dashboard.permissions import can_view_call, can_view_calls, sees_all_calls, visible_calls
from streaming import selectors
from streaming.events import OVERVIEW_GROUP, AnalyticsPayload, call_group
from streaming.heartbeat import WATCH
from streaming.live import analytics_from_history
from streaming.models import CallState

logger = logging.getLogger(__name__)

# Close code of a page whose user has logged out, been deactivated or lost the right to see
# the calls since the socket opened (3000-4999 are the application's; 4403: forbidden).
ACCESS_REVOKED = 4403


def _after(scope: dict[str, Any]) -> int | None:
    """The ``?after=`` sequence number a reconnecting page passes, if any."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        value = int(query.get("after", [""])[0])
    except ValueError:
        return None
    return value if value >= 0 else None


def analytics_message(analytics: AnalyticsPayload, *, full: bool) -> dict[str, Any]:
    """What the browser gets: the figures without their raw timeline, and the charts."""
    summary = {k: v for k, v in analytics.items() if k != "timeline"}
    if full:
        return {"type": "analytics", "analytics": summary, "charts": charts.figures(analytics)}
    return {
        "type": "analytics.updated",
        "analytics": summary,
        "charts": charts.live_update(analytics),
    }


class _LatestText:
    """Each call's latest live analytics message, encoded once for every page of the process.

    Every page watching a call gets the same ``analytics.updated`` once a second; building
    its charts and JSON once instead of once per page saves most of that work. A tick is
    known by the call's duration and whether it is final, which change from one to the next.
    A call's final tick is its last: its entry is dropped then, so the cache holds live calls
    only (a day of ended calls would otherwise stay until the 2000th).
    """

    MAX_CALLS = 2000

    def __init__(self) -> None:
        self.latest: dict[int, tuple[tuple[int, bool, int], str]] = {}

    def get(self, analytics: AnalyticsPayload) -> str:
        key = (analytics["duration_ms"], analytics["final"], analytics["timeline"]["since_ms"])
        found = self.latest.get(analytics["call_id"])
        if found is not None and found[0] == key:
            return found[1]
        text = json.dumps(analytics_message(analytics, full=False))
        if analytics["final"]:
            self.latest.pop(analytics["call_id"], None)
            return text
        if len(self.latest) >= self.MAX_CALLS:
            self.latest.clear()
        self.latest[analytics["call_id"]] = (key, text)
        return text


LIVE_ANALYTICS = _LatestText()


def empty_analytics(call_id: int) -> AnalyticsPayload:
    return {
        "call_id": call_id,
        "source": "none",
        "final": False,
        "duration_ms": 0,
        "talk_ms": 0,
        "overlap_ms": 0,
        "silence_ms": 0,
        "longest_silence_ms": 0,
        "current_silence_ms": 0,
        "interruptions": 0,
        "speakers": [],
        "timeline": {"since_ms": 0, "rows": {}},
    }


class SupervisorConsumer(AsyncJsonWebsocketConsumer):
    """Feeds the call wall (no call id) or one call page (``call_id`` in the route)."""

    group: str | None = None
    call_id: int | None = None
    last_seq = 0
    # The wall of a supervisor who sees only their teams' calls: the ids they may see (None:
    # every call). The overview group carries every call, so the wall filters what it relays.
    visible: set[int] | None = None
    hidden: set[int]
    # When the user's right to this socket is next checked again (time.monotonic()).
    recheck_at = 0.0

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message database housekeeping.

        Channels hands every message to the database thread first to close stale connections
        (``aclose_old_connections``). On this socket that is a thread hop per caption, queued
        behind the finals' transactions on the same thread. Every database call here goes
        through ``database_sync_to_async``, which does the same housekeeping itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if (
            self.recheck_at
            and message["type"] != "websocket.disconnect"
            and time.monotonic() >= self.recheck_at
        ):
            self.recheck_at = time.monotonic() + settings.CALLSITE_DASHBOARD_RECHECK_SECONDS
            if not await database_sync_to_async(self.still_allowed)():
                logger.info("closed dashboard socket of %s: access revoked", self.scope["user"])
                self.recheck_at = 0.0
                await self.close(code=ACCESS_REVOKED)
                return
        await handler(message)

    def still_allowed(self) -> bool:
        """Whether the socket's session still logs its user in, and the user may still watch.

        The session and user were checked when the socket opened; a page stays open for
        hours, across a logout (the session is deleted), a deactivation or a change of teams.
        Checked again before relaying anything, at most every
        ``CALLSITE_DASHBOARD_RECHECK_SECONDS``.
        """
        user = self.scope.get("user")
        key = getattr(self.scope.get("session"), "session_key", None)
        if user is None or key is None:
            return False
        session = import_module(settings.SESSION_ENGINE).SessionStore(key)
        if str(session.get(SESSION_KEY)) != str(user.pk):
            return False
        fresh = get_user_model()._default_manager.filter(pk=user.pk, is_active=True).first()
        if fresh is None or not constant_time_compare(
            session.get(HASH_SESSION_KEY, ""), fresh.get_session_auth_hash()
        ):
            return False
        if not can_view_calls(fresh):
            return False
        return self.call_id is None or can_view_call(fresh, self.call_id)

    async def connect(self) -> None:
        # Any worker a supervisor watches from finds the calls of workers that died.
        WATCH.ensure_running()
        user = self.scope.get("user")
        if not await database_sync_to_async(can_view_calls)(user):
            logger.info("refused dashboard socket: user %s may not view calls", user)
            await self.close()
            return
        call_id = self.scope["url_route"]["kwargs"].get("call_id")
        self.hidden = set()
        if call_id is not None:
            call = None
            if await database_sync_to_async(can_view_call)(user, call_id):
                call = await database_sync_to_async(selectors.call_get)(call_id=call_id)
            if call is None:
                await self.close()
                return
            self.call_id = call_id
            self.group = call_group(call_id)
        else:
            self.group = OVERVIEW_GROUP
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.recheck_at = time.monotonic() + settings.CALLSITE_DASHBOARD_RECHECK_SECONDS
        if call_id is None:
            await self.send_json(await self.wall_snapshot())
        else:
            snapshot, analytics = await self.call_snapshot(call_id, _after(self.scope))
            await self.send_json(snapshot)
            await self.send_json(analytics_message(analytics, full=True))

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Browsers only listen; anything they send is ignored."""

    @database_sync_to_async
    def wall_snapshot(self) -> dict[str, Any]:
        user = self.scope["user"]
        scoped = None if sees_all_calls(user) else visible_calls(user)
        calls = selectors.call_list(calls=scoped)
        if scoped is not None:
            self.visible = set(scoped.values_list("pk", flat=True))
        return {
            "type": "snapshot",
            "calls": calls,
            "summaries": selectors.wall_summaries(call_ids=[c["id"] for c in calls]),
            "stuck_seconds": settings.CALLSITE_STUCK_SECONDS,
        }

    @database_sync_to_async
    def call_snapshot(
        self, call_id: int, after: int | None
    ) -> tuple[dict[str, Any], AnalyticsPayload]:
        call = selectors.call_get(call_id=call_id)
        if after is None:
            captions = selectors.call_captions(call_id=call_id)
            alerts = selectors.call_alerts(call_id=call_id)
        else:
            captions = selectors.call_captions_after(call_id=call_id, after_seq=after)
            alerts = selectors.call_alerts(call_id=call_id, after_seq=after)
        seqs = [c["seq"] for c in captions if c["seq"]] + [a["seq"] for a in alerts if a["seq"]]
        self.last_seq = max([after or 0, *seqs])
        analytics = selectors.stored_analytics(call_id=call_id)
        if analytics is None and call is not None and call["state"] == CallState.ENDED:
            analytics = analytics_from_history(
                call_id=call_id, final=True, duration_ms=call["duration_ms"]
            )
        if analytics is None:  # a call that has just begun: empty charts until the first tick
            analytics = empty_analytics(call_id)
        snapshot = {
            "type": "snapshot",
            "resume": after is not None,
            "call": call,
            "captions": captions,
            "alerts": alerts,
            "last_seq": self.last_seq,
            "low_confidence": settings.CALLSITE_LOW_CONFIDENCE_PERCENT / 100,
        }
        return snapshot, analytics

    # --- stored events, in seq order -----------------------------------------------------------

    async def _may_see(self, call_id: int) -> bool:
        """On a team-scoped wall: whether this call is one of the user's teams' calls.

        A call can become visible (a team's number joins it), never the other way round, so
        only calls not yet known to be visible are checked, each at most once a call update.
        """
        if self.visible is None or call_id in self.visible:
            return True
        if call_id in self.hidden:
            return False
        if await database_sync_to_async(can_view_call)(self.scope["user"], call_id):
            self.visible.add(call_id)
            return True
        self.hidden.add(call_id)
        return False

    async def _in_order(self, seq: int | None, event: dict[str, Any]) -> None:
        if self.call_id is None or seq is None:  # the wall: no ordering to keep
            call_id = event.get("alert", event.get("caption", {})).get("call_id")
            if call_id is None or await self._may_see(call_id):
                await self.send_json(event)
            return
        if seq <= self.last_seq:
            return  # already sent (in the snapshot, or filled in)
        if seq > self.last_seq + 1:
            missing = await database_sync_to_async(self._missing)(self.call_id, self.last_seq)
            for fill_seq, fill in missing:
                if fill_seq < seq:
                    await self.send_json(fill)
            logger.info(
                "call %s: filled a hole of %d events before seq %d",
                self.call_id,
                seq - self.last_seq - 1,
                seq,
            )
        self.last_seq = seq
        await self.send_json(event)

    @staticmethod
    def _missing(call_id: int, after: int) -> list[tuple[int, dict[str, Any]]]:
        found: list[tuple[int, dict[str, Any]]] = []
        for caption in selectors.call_captions_after(call_id=call_id, after_seq=after):
            found.append((caption["seq"] or 0, {"type": "caption.final", "caption": caption}))
        for alert in selectors.call_alerts(call_id=call_id, after_seq=after):
            found.append((alert["seq"] or 0, {"type": "alert.fired", "alert": alert}))
        return sorted(found, key=lambda item: item[0])

    async def caption_final(self, event: dict[str, Any]) -> None:
        await self._in_order(event["caption"].get("seq"), event)

    async def alert_fired(self, event: dict[str, Any]) -> None:
        await self._in_order(event["alert"].get("seq"), event)

    # --- state ---------------------------------------------------------------------------------

    async def call_updated(self, event: dict[str, Any]) -> None:
        if self.call_id is None and self.visible is not None:
            call_id = event["call"]["id"]
            self.hidden.discard(call_id)  # participants may have joined: ask again
            if not await self._may_see(call_id):
                return
        await self.send_json(event)

    async def caption_interim(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def analytics_updated(self, event: dict[str, Any]) -> None:
        await self.send(text_data=LIVE_ANALYTICS.get(event["analytics"]))

    async def calls_health(self, event: dict[str, Any]) -> None:
        if self.visible is not None:
            rows = [row for row in event["calls"] if await self._may_see(row["call_id"])]
            if not rows:
                return
            event = {**event, "calls": rows}
        await self.send_json(event)
