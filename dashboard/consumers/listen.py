"""``/ws/dashboard/calls/<id>/listen/``: a live call's audio, for a supervisor to hear.

Only for supervisors granted ``streaming.listen_call`` who may see the call. The socket
joins the call's listen group, then asks every media socket of the call
(``streaming.events.streams_group``) for its audio, again every ``ASK_EVERY`` seconds, so
the audio stops soon after the last listener leaves. The media socket sends each stream's
audio a tenth of a second at a time, through the channel layer: a listener too slow to take
it loses what its channel cannot hold (the layer's capacity), and ingest never waits for it.

Each chunk reaches the browser as one binary message: a 2-byte little-endian length, that
many bytes of JSON (``track``: the participant's raw id, "" for mixed audio; ``rate``;
``at_ticks`` on the call's timeline; ``sent_at``: when the media socket sent it, Unix
seconds), then the 16-bit PCM. Paused for payment, nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from typing import Any

from channels.db import database_sync_to_async

from dashboard.consumers.base import SupervisorSocket
from dashboard.permissions import can_listen
from streaming import events
from streaming.models import Call, CallState

logger = logging.getLogger(__name__)

ASK_EVERY = 5.0  # seconds between a listener's asks for the call's audio
ASK_FOR = 15.0  # how long each ask keeps the audio coming


def _open_call(call_id: int) -> bool:
    """Whether the call exists and has not ended (an ended call has nothing to hear)."""
    return Call.objects.filter(pk=call_id).exclude(state=CallState.ENDED).exists()


class ListenConsumer(SupervisorSocket):
    call_id = 0
    asking: asyncio.Task[None] | None = None

    async def join(self) -> str | None:
        call_id = self.scope["url_route"]["kwargs"]["call_id"]
        user = self.scope["user"]
        if not await database_sync_to_async(can_listen)(user, call_id):
            logger.info("refused listening to call %s: %s may not listen to it", call_id, user)
            return None
        if not await database_sync_to_async(_open_call)(call_id):
            return None
        self.call_id = call_id
        logger.info("%s listens to call %s", user, call_id)
        return events.listen_group(call_id)

    def may_still_watch(self, user: Any) -> bool:
        return can_listen(user, self.call_id)

    async def send_snapshot(self) -> None:
        await self.send(text_data=json.dumps({"type": "listen.started", "call_id": self.call_id}))
        self.asking = asyncio.get_running_loop().create_task(self._ask())

    async def _ask(self) -> None:
        while True:
            await self.channel_layer.group_send(
                events.streams_group(self.call_id), {"type": "listen.wanted", "seconds": ASK_FOR}
            )
            await asyncio.sleep(ASK_EVERY)

    async def listen_audio(self, message: dict[str, Any]) -> None:
        header = json.dumps(
            {k: message[k] for k in ("track", "rate", "at_ticks", "sent_at")}
        ).encode()
        await self.send(bytes_data=struct.pack("<H", len(header)) + header + message["pcm"])

    async def disconnect(self, code: int) -> None:
        if self.asking is not None:
            self.asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.asking
        await super().disconnect(code)
