"""The call wall's socket: every live and recent call the supervisor may see, then changes.

The overview group carries every call; a supervisor who sees only their teams' calls gets
only theirs. Which calls those are is worked out when the socket opens, a call at a time as
new ones appear, and again whenever the socket re-checks the user's access, so a supervisor
taken off a team stops seeing its calls within ``CALLSITE_DASHBOARD_RECHECK_SECONDS``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from dashboard import messages
from dashboard.consumers.base import SupervisorSocket
from dashboard.permissions import can_view_call, sees_all_calls, visible_calls
from dashboard.selectors import call_teams, wall_summaries, wall_teams
from streaming import events, selectors
from streaming.events import OVERVIEW_GROUP
from streaming.models import Call, CallState


class WallConsumer(SupervisorSocket):
    """``/ws/dashboard/``: the call wall."""

    # The ids the user may see (None: every call); the calls found not to be theirs.
    visible: set[int] | None = None
    hidden: set[int]
    # The calls whose teams the page was told (in the snapshot or by ``call.teams``).
    described: set[int]

    async def join(self) -> str | None:
        self.hidden = set()
        self.described = set()
        return OVERVIEW_GROUP

    async def send_snapshot(self) -> None:
        await self.send_message(await database_sync_to_async(self.snapshot)())

    def snapshot(self) -> messages.WallSnapshot:
        user = self.scope["user"]
        scoped = None if sees_all_calls(user) else visible_calls(user)
        # Ended calls stay on the wall for a while, then only in history.
        ended_before = timezone.now() - timedelta(seconds=settings.CALLSITE_WALL_ENDED_SECONDS)
        shown = (scoped if scoped is not None else Call.objects.all()).exclude(
            state=CallState.ENDED, ended_at__lt=ended_before
        )
        calls = selectors.call_list(calls=shown)
        if scoped is not None:
            self.visible = set(scoped.values_list("pk", flat=True))
        self.described = {c["id"] for c in calls}
        summaries = wall_summaries(call_ids=[c["id"] for c in calls])
        return messages.wall_snapshot(
            calls,
            summaries,
            settings.CALLSITE_STUCK_SECONDS,
            ended_keep_seconds=settings.CALLSITE_WALL_ENDED_SECONDS,
            silence_seconds=settings.CALLSITE_WALL_SILENCE_SECONDS,
            teams=wall_teams(user),
        )

    async def describe(self, call_id: int) -> None:
        """Send the teams of a call the wall has not seen yet, for its team filter."""
        if call_id in self.described:
            return
        self.described.add(call_id)
        teams = await database_sync_to_async(call_teams)(call_ids=[call_id])
        await self.send_message(messages.call_teams(call_id, teams.get(call_id, [])))

    async def access_rechecked(self) -> None:
        """Work out again which calls the user may see: their teams may have changed."""
        if self.visible is not None:
            user = self.scope["user"]
            scoped = visible_calls(user).values_list("pk", flat=True)
            self.visible = set(await database_sync_to_async(list)(scoped))
            self.hidden.clear()

    async def may_see(self, call_id: int) -> bool:
        """Whether this call is one of the user's teams' calls (always, for Staff).

        A call can become visible (a team's number joins it); calls not yet known to be
        visible are asked about, each at most once per call update.
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

    async def call_updated(self, event: dict[str, Any]) -> None:
        if self.visible is not None:
            call_id = event["call"]["id"]
            self.hidden.discard(call_id)  # participants may have joined: ask again
            if not await self.may_see(call_id):
                return
        await self.send_message(event)
        await self.describe(event["call"]["id"])

    async def call_participant(self, event: dict[str, Any]) -> None:
        call_id = event["call_id"]
        if self.visible is not None and call_id not in self.visible:
            self.hidden.discard(call_id)  # the newcomer may be one of the teams' addresses
            if await self.may_see(call_id):
                # Newly visible: the wall has nothing of this call to add a participant to.
                call = await database_sync_to_async(selectors.call_get)(call_id=call_id)
                if call is not None:
                    await self.send_message(events.call_updated(call))
                    await self.describe(call_id)
            return
        await self.send_message(event)
        if call_id in self.described:
            # A newcomer may be one of a team's addresses: the call's teams may have grown.
            self.described.discard(call_id)
            await self.describe(call_id)

    async def speaking_changed(self, event: dict[str, Any]) -> None:
        if await self.may_see(event["speaking"]["call_id"]):
            await self.send_message(event)

    async def alert_fired(self, event: dict[str, Any]) -> None:
        if await self.may_see(event["alert"]["call_id"]):
            await self.send_message(event)

    async def alert_updated(self, event: dict[str, Any]) -> None:
        if await self.may_see(event["alert"]["call_id"]):
            await self.send_message(event)

    async def calls_health(self, event: dict[str, Any]) -> None:
        if self.visible is not None:
            rows = [row for row in event["calls"] if await self.may_see(row["call_id"])]
            if not rows:
                return
            event = {**event, "calls": rows}
        await self.send_message(event)
