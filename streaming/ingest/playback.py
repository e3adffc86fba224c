"""Audio into a call: the outbound half of a bidirectional ACS media socket.

A media socket of a call answered (or joined, or placed) with bidirectional audio listens on
the call's media group once its ``AudioMetadata`` has fixed the format. ``media.announce``
plays a clip as 20 ms outbound ``AudioData`` frames at real-time pace (ACS plays what it
receives, in order); ``media.stop`` cancels it and sends ``StopAudio`` so ACS drops what it
has queued. How each announcement ended is stored on its action.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

from streaming.acs import outbound
from streaming.automation.announcements import announcement_settled, clip_pcm, media_group
from streaming.db import db_call
from streaming.models import ActionStatus

logger = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[None]]


class Playback:
    """Plays announcements into one media socket; :meth:`close` when the socket goes."""

    def __init__(self, *, call_id: int, sample_rate: int, send: SendText, label: str) -> None:
        self.call_id = call_id
        self.sample_rate = sample_rate
        self.send = send
        self.label = label
        self.channel = ""
        self.listener: asyncio.Task[None] | None = None
        self.playing: asyncio.Task[None] | None = None
        self.playing_context = ""

    async def start(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        self.channel = await layer.new_channel("media.")
        await layer.group_add(media_group(self.call_id), self.channel)
        # Not spawn(): a stopping server waits for spawned tasks, and this one never ends.
        self.listener = asyncio.get_running_loop().create_task(self._listen(layer))

    async def _listen(self, layer: Any) -> None:
        while True:
            message = await layer.receive(self.channel)
            try:
                if message.get("type") == "media.announce":
                    await self._announce(
                        str(message.get("clip")), str(message["operation_context"])
                    )
                elif message.get("type") == "media.stop":
                    await self._stop()
            except Exception:
                logger.exception("%s: handling %s failed", self.label, message.get("type"))

    async def _announce(self, clip: str, context: str) -> None:
        await self._cancel("replaced by another announcement")
        try:
            pcm = clip_pcm(clip, self.sample_rate)
        except (OSError, ValueError) as error:
            await self._settle(context, ActionStatus.FAILED, str(error))
            return
        self.playing_context = context
        self.playing = asyncio.get_running_loop().create_task(self._play(pcm, context))

    async def _play(self, pcm: bytes, context: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        chunks = outbound.frames(pcm, self.sample_rate)
        for index, frame in enumerate(chunks):
            # Absolute deadlines from one start, so sleep overshoot never adds up.
            delay = started + index * outbound.FRAME_SECONDS - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send(outbound.audio_data(frame))
        self.playing = None
        self.playing_context = ""
        await self._settle(context, ActionStatus.SUCCEEDED, f"played ({len(chunks)} frames)")

    async def _cancel(self, why: str) -> None:
        task, context = self.playing, self.playing_context
        self.playing, self.playing_context = None, ""
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._settle(context, ActionStatus.CANCELLED, why)

    async def _stop(self) -> None:
        await self._cancel("stopped by a supervisor")
        await self.send(outbound.stop_audio())

    async def _settle(self, context: str, status: ActionStatus, outcome: str) -> None:
        if context:
            await db_call(
                announcement_settled, operation_context=context, status=status, outcome=outcome
            )

    async def close(self) -> None:
        """Stop listening and playing (the socket has closed)."""
        for task in (self.playing, self.listener):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        layer = get_channel_layer()
        if layer is not None and self.channel:
            with contextlib.suppress(Exception):
                await layer.group_discard(media_group(self.call_id), self.channel)
