"""What every supervisor socket does: who may open it, and re-checking that as it stays open.

A socket joins its group *before* it reads its snapshot, so nothing that commits in between
is missed; then it relays the group's events. Browsers only listen: anything they send, text
or binary, JSON or not, is ignored.
"""

from __future__ import annotations

import json
import logging
import time
from importlib import import_module
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from dashboard.permissions import can_view_calls
from streaming.delivery.worker import DELIVERIES
from streaming.live.heartbeat import WATCH

logger = logging.getLogger(__name__)

# Close code of a page whose user has logged out, been deactivated or lost the right to see
# the calls since the socket opened (3000-4999 are the application's; 4403: forbidden).
ACCESS_REVOKED = 4403


class SupervisorSocket(AsyncWebsocketConsumer):
    """A logged-in supervisor's socket: the base of the wall's and the call page's."""

    group: str | None = None
    # When the user's right to this socket is next checked again (time.monotonic()).
    recheck_at = 0.0

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message database housekeeping, with the recheck.

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
            await self.access_rechecked()
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
        return can_view_calls(fresh) and self.may_still_watch(fresh)

    def may_still_watch(self, user: Any) -> bool:
        """Whether ``user`` may still watch what this socket shows (a thread; subclasses)."""
        return True

    async def access_rechecked(self) -> None:
        """The user may still watch: a subclass refreshes what depends on their access."""

    async def connect(self) -> None:
        # Any worker a supervisor watches from finds the calls of workers that died.
        WATCH.ensure_running()
        DELIVERIES.ensure_running()  # alerts fired by callbacks reach this worker's outbox too
        user = self.scope.get("user")
        if not await database_sync_to_async(can_view_calls)(user):
            logger.info("refused dashboard socket: user %s may not view calls", user)
            await self.close()
            return
        self.group = await self.join()
        if self.group is None:
            await self.close()
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.recheck_at = time.monotonic() + settings.CALLSITE_DASHBOARD_RECHECK_SECONDS
        await self.send_snapshot()

    async def join(self) -> str | None:
        """The group this socket follows, or None to refuse it."""
        raise NotImplementedError

    async def send_snapshot(self) -> None:
        """What the page starts from, read after joining the group."""
        raise NotImplementedError

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Browsers only listen; anything they send is ignored."""

    async def send_message(self, message: Any) -> None:
        """Send a typed message (``streaming.events`` or ``dashboard.messages``) as JSON."""
        await self.send(text_data=json.dumps(message))
