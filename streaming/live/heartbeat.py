"""Stream heartbeats, and finding the streams of workers that died.

A worker that is killed (kill -9, out of memory, power loss) runs no ``disconnect()``: its
streams stay open in the database and their calls stay "connected" for ever. So every
worker, every ``BEAT_SECONDS``:

1. refreshes the heartbeat (``Stream.seen_at``, with the time of the newest packet) of the
   streams it holds, in one statement;
2. looks for open streams nobody has refreshed for ``CALLSITE_STUCK_SECONDS``: those of
   calls that stream elsewhere now are closed (replaced); the others' calls are flagged
   stuck on its walls (a ``calls.health`` row), whichever worker held them;
3. gives up streams not refreshed for ``CALLSITE_STREAM_LOST_SECONDS``: unless another
   stream of the call is alive, the call ends as lost (``streaming.services.stream_lost``).

A stream that comes back in time (ACS reconnects to another worker) continues the same call.
The watch runs in every process that has an ACS stream or a supervisor's socket open; it
starts with the first of them and runs as long as the process does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from django.conf import settings

from streaming import events, selectors, services
from streaming.db import db_call
from streaming.events import HealthPayload
from streaming.tasks import LoopTask

logger = logging.getLogger(__name__)

BEAT_SECONDS = 2.0


def worker_name() -> str:
    """This process as the heartbeats name it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


class Holder(Protocol):
    """What the watch asks of a stream's owner: when its newest packet came (monotonic)."""

    last_packet: float


class StreamWatch:
    """This process's open streams, their heartbeats and the sweep for dead workers' streams."""

    def __init__(self) -> None:
        self.streams: dict[int, Holder] = {}
        self.rounds = LoopTask(self._run, "stream heartbeats")

    def hold(self, stream_id: int, holder: Holder) -> None:
        """A stream opened on this worker; ``holder`` knows when its last packet came."""
        self.streams[stream_id] = holder
        self.ensure_running()

    def release(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    def ensure_running(self) -> None:
        """Start the watch in this event loop if it is not running there yet."""
        self.rounds.ensure()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            try:
                await self.beat()
                await self.sweep()
            except Exception:
                logger.exception("stream heartbeats: a round failed")

    async def beat(self) -> None:
        """Refresh the heartbeat of every stream this worker holds."""
        if not self.streams:
            return
        now_wall, now = time.time(), time.monotonic()
        beats = [
            (stream_id, datetime.fromtimestamp(now_wall - (now - holder.last_packet), UTC))
            for stream_id, holder in list(self.streams.items())
        ]
        await db_call(services.streams_heartbeat, beats=beats)

    async def sweep(self) -> None:
        """Flag the calls of streams nobody refreshes as stuck; end them once they are lost."""
        now = datetime.now(UTC)
        stuck_before = now - timedelta(seconds=settings.CALLSITE_STUCK_SECONDS)
        await db_call(services.streams_replaced, seen_before=stuck_before)
        stale = await db_call(selectors.stale_streams, seen_before=stuck_before)
        stale = [s for s in stale if s.id not in self.streams]
        if not stale:
            return
        lost_before = now - timedelta(seconds=settings.CALLSITE_STREAM_LOST_SECONDS)
        stuck: dict[int, HealthPayload] = {}
        for stream in stale:
            if stream.seen_at < lost_before:
                if await db_call(
                    services.stream_lost, stream_id=stream.id, seen_before=lost_before
                ):
                    logger.warning(
                        "call %s: stream %s given up for lost: its worker %s was last heard "
                        "of %.0f s ago",
                        stream.call_id,
                        stream.id,
                        stream.worker,
                        (now - stream.seen_at).total_seconds(),
                    )
                continue
            last = stream.last_packet_at or stream.seen_at
            stuck[stream.call_id] = {
                "call_id": stream.call_id,
                "frames_per_second": 0.0,
                "last_packet_ms": max(0, int((now - last).total_seconds() * 1000)),
                "caption_lag_ms": None,
                "current_silence_ms": 0,
                "stuck": True,
                "talk": [],
                "alerts": 0,
                "sentiment": {"latest": None, "trend": []},
            }
        if stuck:
            await events.asend_event(
                (events.OVERVIEW_GROUP,), events.calls_health(list(stuck.values()))
            )


WATCH = StreamWatch()
