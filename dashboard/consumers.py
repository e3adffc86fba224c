"""The supervisor's live socket: a snapshot from the database, then deltas.

The consumer joins its group *before* reading the snapshot, so nothing that commits in
between is missed; an event that is also in the snapshot arrives twice, and the browser
applies it idempotently (by utterance id).
"""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from dashboard.permissions import can_view_calls
from streaming import selectors
from streaming.events import OVERVIEW_GROUP, call_group

logger = logging.getLogger(__name__)


class SupervisorConsumer(AsyncJsonWebsocketConsumer):
    """Feeds the call wall (no call id) or one call page (``call_id`` in the route)."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not await database_sync_to_async(can_view_calls)(user):
            logger.info("refused dashboard socket: user %s may not view calls", user)
            await self.close()
            return
        call_id = self.scope["url_route"]["kwargs"].get("call_id")
        if call_id is not None:
            call = await database_sync_to_async(selectors.call_get)(call_id=call_id)
            if call is None:
                await self.close()
                return
            self.group = call_group(call_id)
        else:
            self.group = OVERVIEW_GROUP
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(await self.snapshot(call_id))

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Browsers only listen; anything they send is ignored."""

    @database_sync_to_async
    def snapshot(self, call_id: int | None) -> dict[str, Any]:
        if call_id is None:
            return {"type": "snapshot", "calls": selectors.call_list()}
        return {
            "type": "snapshot",
            "call": selectors.call_get(call_id=call_id),
            "captions": selectors.call_captions(call_id=call_id),
        }

    async def call_updated(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def caption_interim(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def caption_final(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
