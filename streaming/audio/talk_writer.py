"""Batched writes of per-second talk buckets, off the frame path.

Every stream of every call in the process hands its completed seconds to one writer, which
stores them with one bulk statement a second (through ``database_sync_to_async``, so one
thread hop per second for the whole process rather than one per frame).

* A write that fails because the database is away keeps its rows for the next attempt, up
  to a bound; past it the oldest are dropped with an error in the log, so an outage cannot
  grow memory without limit.
* A write the database refuses for what is in it (a value out of range, a call deleted
  meanwhile) is tried again row by row: the rows it takes are stored, and only those it
  refuses are dropped, each counted (``callsite_ingest_talk_seconds_refused_total``) and
  logged with the reason. One bad row never stops the talk time of every other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from django.db import DatabaseError

from streaming import services
from streaming.audio.timeline import ActivitySecond
from streaming.db import db_call
from streaming.metrics import INGEST
from streaming.models import TalkSecond
from streaming.retry import RETRYABLE

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
MAX_PENDING_ROWS = 200_000
MAX_LOGGED_REFUSALS = 20  # per batch: a flood of bad rows must not flood the log


class TalkWriter:
    def __init__(self, interval: float = FLUSH_SECONDS) -> None:
        self.interval = interval
        self.pending: list[TalkSecond] = []
        self.task: asyncio.Task[None] | None = None
        self.lock: asyncio.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.written = 0
        self.dropped = 0

    def add(
        self, call_id: int, participant_id: int | None, stream: str, buckets: list[ActivitySecond]
    ) -> None:
        for b in buckets:
            self.pending.append(
                TalkSecond(
                    call_id=call_id,
                    participant_id=participant_id,
                    stream=stream,
                    second=b.second,
                    frames=min(b.frames, 32767),
                    voiced_frames=b.voiced_frames,
                    voiced_mask=b.voiced_mask,
                    mean_db=round(b.mean_db, 2),
                    peak_db=round(b.peak_db, 2),
                )
            )
        if len(self.pending) > MAX_PENDING_ROWS:
            excess = len(self.pending) - MAX_PENDING_ROWS
            del self.pending[:excess]
            self.dropped += excess
            logger.error("talk-time writer is behind: dropped %d oldest buckets", excess)
        self._ensure_task()

    def _ensure_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            self.lock = asyncio.Lock()
            self.task = None
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run(), name="talk-writer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
            if not self.pending:
                return

    async def flush(self) -> None:
        """Write everything pending now (also called when a stream ends)."""
        if not self.pending:
            return
        if self.lock is None or self.loop is not asyncio.get_running_loop():
            self.loop = asyncio.get_running_loop()
            self.lock = asyncio.Lock()
        async with self.lock:
            rows, self.pending = self._merged(self.pending), []
            if not rows:
                return
            try:
                await db_call(services.talk_seconds_store, rows)
            except RETRYABLE as error:
                logger.warning(
                    "could not store %d talk-time buckets; will retry: %s", len(rows), error
                )
                self.pending[:0] = rows
                return
            except DatabaseError as error:
                logger.warning(
                    "the database refused a batch of %d talk-time buckets (%s); storing them "
                    "one by one",
                    len(rows),
                    str(error).splitlines()[0][:200],
                )
                refused = await db_call(services.talk_seconds_store_each, rows)
                for row, reason in refused[:MAX_LOGGED_REFUSALS]:
                    logger.error(
                        "talk-time bucket dropped: call %s stream %r second %s: %s",
                        row.call_id,
                        row.stream[:40],
                        row.second,
                        reason,
                    )
                INGEST.talk_seconds_refused += len(refused)
                self.dropped += len(refused)
                self.written += len(rows) - len(refused)
                return
            self.written += len(rows)

    @staticmethod
    def _merged(rows: list[TalkSecond]) -> list[TalkSecond]:
        # One statement may not touch a row twice (PostgreSQL's ON CONFLICT): keep the last.
        latest: dict[tuple[int, str, int], TalkSecond] = {}
        for row in rows:
            latest[(row.call_id, row.stream, row.second)] = row
        return list(latest.values())

    async def aclose(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.flush()


talk_writer = TalkWriter()
