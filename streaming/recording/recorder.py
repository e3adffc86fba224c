"""One audio stream's recording, on the event loop: frames gather, sealed chunks are saved.

``add`` is on the frame path and costs a ``bytearray`` append; the chunk a full buffer, a
gap, a format change or a pause seals is written in the background (``store.save_chunk``
through ``db_write``, which retries a database away for a while), and ``close`` waits for
every write. A chunk whose write still fails is logged with the seconds lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from streaming.recording import store
from streaming.recording.codec import to_samples
from streaming.recording.store import TrackKey
from streaming.redaction.core import TimeSpan
from streaming.retry import RetriesExhausted, db_write
from streaming.units import TICKS_PER_SECOND

logger = logging.getLogger(__name__)


@dataclass
class Chunk:
    start_ticks: int
    sample_rate: int
    pcm: bytearray

    def silence(self, span: TimeSpan) -> None:
        first = max(0, to_samples(span.start_ticks - self.start_ticks, self.sample_rate))
        last = to_samples(span.end_ticks - self.start_ticks, self.sample_rate) + 1
        last = min(len(self.pcm) // 2, last)
        if first < last:
            self.pcm[2 * first : 2 * last] = bytes(2 * (last - first))


class TrackRecorder:
    """Records one stream (a participant's, or the mixed one) of a call."""

    def __init__(
        self, key: TrackKey, *, label: str, chunk_seconds: int, stored_until: int = 0
    ) -> None:
        self.key = key
        self.label = label
        self.chunk_seconds = chunk_seconds
        self.open: Chunk | None = None
        # Where the track ends on the timeline: the open chunk's end, or at first what an
        # earlier socket of the call stored of it.
        self.end_ticks = stored_until
        self.saving: dict[asyncio.Task[None], Chunk] = {}

    def add(self, start_ticks: int, pcm: bytes, sample_rate: int) -> None:
        """A frame placed at ``start_ticks``; a jump or a new rate starts a new chunk."""
        chunk = self.open
        moved = chunk is not None and start_ticks != self.end_ticks
        if chunk is not None and (moved or chunk.sample_rate != sample_rate):
            self.seal()
            chunk = None
        if chunk is None:
            chunk = self.open = Chunk(start_ticks, sample_rate, bytearray())
        chunk.pcm += pcm
        self.end_ticks = start_ticks + len(pcm) // 2 * TICKS_PER_SECOND // sample_rate
        if len(chunk.pcm) >= 2 * sample_rate * self.chunk_seconds:
            self.seal()

    def replayed(self, start_ticks: int, pcm: bytes, sample_rate: int) -> None:
        """A frame the stream's clock dropped as already heard (a reconnect resumes at the
        last whole second of talk time): recorded if the track has not got it yet."""
        if start_ticks >= self.end_ticks:
            self.add(start_ticks, pcm, sample_rate)

    def seal(self) -> None:
        """Write the open chunk (in the background); the next frame opens a new one."""
        chunk, self.open = self.open, None
        if chunk is None or not chunk.pcm:
            return
        task = asyncio.get_running_loop().create_task(self._save(chunk))
        self.saving[task] = chunk
        task.add_done_callback(self.saving.pop)

    async def _save(self, chunk: Chunk) -> None:
        try:
            await db_write(
                f"{self.label}: recording",
                store.save_chunk,
                key=self.key,
                start_ticks=chunk.start_ticks,
                sample_rate=chunk.sample_rate,
                pcm=chunk.pcm,
            )
        except (RetriesExhausted, OSError) as error:
            seconds = len(chunk.pcm) / 2 / chunk.sample_rate
            logger.error(
                "%s: %.1f s of the recording from %.1f s could not be stored: %s",
                self.label,
                seconds,
                chunk.start_ticks / TICKS_PER_SECOND,
                error,
            )

    def silence(self, spans: Iterable[TimeSpan]) -> None:
        """Silence what is still in memory (the open chunk, chunks being written) over ``spans``:
        what is stored already is silenced by ``store.silence``."""
        chunks = [*self.saving.values(), *([self.open] if self.open else [])]
        for span in spans:
            for chunk in chunks:
                chunk.silence(span)

    async def close(self) -> None:
        """Seal the open chunk and wait until every chunk is written."""
        self.seal()
        while self.saving:
            await asyncio.gather(*self.saving, return_exceptions=True)
