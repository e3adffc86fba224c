"""One audio stream through the recognizer: a session's whole life, as one state.

``StreamRecognition`` owns the session of one participant's audio (or the mixed audio): it
opens it on the first frame, keeps what arrives while the session starts (up to the backlog
bound), feeds it, fills short gaps with silence and re-anchors its timeline past long ones,
maps results from the session's ticks onto the call's, and restarts a session that fails
(a bounded number of times a minute), reporting the lost stretch.

    IDLE ──first frame──► STARTING ──started, backlog replayed──► LIVE
      ▲                      │ fails                                │ fails
      └──── restart ◄────────┴──────────────────────────────────────┘  (too often: DISABLED)
    LIVE / STARTING ──end()──► CLOSING ──flushed──► IDLE
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum

from streaming.audio.timeline import (
    MAX_GAP_FILL_TICKS,
    FramePlacement,
    FrameVerdict,
    pcm_silence,
    pcm_ticks,
)
from streaming.recognizers.base import (
    Recognition,
    RecognitionSession,
    RecognizedWord,
    Recognizer,
    RecognizerError,
    SessionConfig,
)
from streaming.units import FRAME_TICKS

logger = logging.getLogger(__name__)

MAX_RESTARTS_PER_MINUTE = 5
CLOSE_TIMEOUT = 30.0

# A result with its offsets on the call's timeline, and the stretch a failed session lost.
ResultHook = Callable[[Recognition], Awaitable[None]]
LostHook = Callable[[int, int, str], None]


class SessionState(Enum):
    IDLE = "idle"  # no session: the next frame opens one
    STARTING = "starting"  # opened; audio waits in the backlog until it has started
    LIVE = "live"  # takes audio directly
    CLOSING = "closing"  # flushing its last results; frames are not recognised meanwhile
    DISABLED = "disabled"  # failed too often: this stream is not recognised any more


class StreamRecognition:
    """The recognizer's view of one stream; see the module docstring."""

    def __init__(
        self,
        *,
        recognizer: Recognizer,
        config: SessionConfig,
        max_backlog_ticks: int,
        on_result: ResultHook,
        on_lost: LostHook,
        counts: Callable[[str], None],
    ) -> None:
        self.recognizer = recognizer
        self.config = config
        self.max_backlog_ticks = max_backlog_ticks
        self.on_result = on_result
        self.on_lost = on_lost
        self.count = counts
        self.state = SessionState.IDLE
        self.session: RecognitionSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.backlog: list[bytes] = []
        self.backlog_ticks = 0
        self.anchors: list[tuple[int, int]] = []  # (session tick, call tick)
        self.fed_ticks = 0
        self.restarts: deque[float] = deque()
        self.recognized_until = 0  # call tick where the last final ended
        self.position = 0  # call tick up to which audio has been taken
        self.rate = config.sample_rate

    # --- audio ---------------------------------------------------------------------------------

    async def frame(self, placement: FramePlacement, pcm: bytes, rate: int) -> None:
        """Take a frame placed on the call's timeline."""
        if self.state in (SessionState.DISABLED, SessionState.CLOSING):
            return
        if self.state is SessionState.IDLE:
            self._open(placement.start, rate)
        elif placement.verdict is FrameVerdict.GAP:
            await self._fill_gap(placement.start, placement.gap, rate)
        self.position = placement.start + pcm_ticks(len(pcm), rate)
        await self._feed(pcm, rate)

    def _open(self, at: int, rate: int) -> None:
        self.rate = rate
        session = self.recognizer.open(dataclasses.replace(self.config, sample_rate=rate))
        self.session = session
        self.state = SessionState.STARTING
        self.fed_ticks = 0
        self.anchors = [(0, at)]
        self.task = asyncio.create_task(self._run(session), name=f"recognition {self.config.label}")

    async def _feed(self, pcm: bytes, rate: int) -> None:
        ticks = pcm_ticks(len(pcm), rate)
        if self.state is SessionState.LIVE:
            assert self.session is not None
            self.fed_ticks += ticks
            try:
                await self.session.feed(pcm)
            except RecognizerError as error:
                self.count("recognizer feed error")
                logger.warning(
                    "%s: feeding the recognizer failed: %s", self.config.label, error.reason
                )
            return
        if self.backlog_ticks >= self.max_backlog_ticks:
            self.count("audio dropped while the recognizer started")
            return
        self.backlog.append(pcm)
        self.backlog_ticks += ticks
        self.fed_ticks += ticks

    async def _fill_gap(self, start: int, gap: int, rate: int) -> None:
        """Feed up to a second of silence for the missing audio, re-anchor past that."""
        fill = min(gap, MAX_GAP_FILL_TICKS)
        fill -= fill % FRAME_TICKS
        if fill:
            await self._feed(pcm_silence(fill, rate), rate)
        if gap > fill:
            self.anchors.append((self.fed_ticks, start))

    def to_call_ticks(self, session_ticks: int) -> int:
        index = bisect.bisect_right(self.anchors, (session_ticks, 2**63)) - 1
        session_at, call_at = self.anchors[max(index, 0)]
        return call_at + (session_ticks - session_at)

    # --- the session ---------------------------------------------------------------------------

    async def _run(self, session: RecognitionSession) -> None:
        """Start the session, replay what arrived meanwhile, pass its results on."""
        try:
            await session.start()
            for chunk in self.backlog:
                await session.feed(chunk)
            self.backlog.clear()
            self.backlog_ticks = 0
            if self.state is SessionState.STARTING:
                self.state = SessionState.LIVE
            async for result in session.results():
                await self.on_result(self._on_call_timeline(result))
        except RecognizerError as error:
            await self._failed(session, error.reason)
        except Exception as error:  # a bug must cost this stream's session, not the socket
            logger.exception("%s: recognition session crashed", self.config.label)
            await self._failed(session, f"{type(error).__name__}: {error}")

    def _on_call_timeline(self, result: Recognition) -> Recognition:
        offset = self.to_call_ticks(result.offset)
        if result.final:
            self.recognized_until = max(self.recognized_until, offset + result.duration)
        words = tuple(
            RecognizedWord(w.text, self.to_call_ticks(w.offset), w.duration, w.confidence)
            for w in result.words
        )
        return Recognition(
            text=result.text,
            final=result.final,
            offset=offset,
            duration=result.duration,
            confidence=result.confidence,
            words=words,
            speaker=result.speaker,
        )

    async def _failed(self, session: RecognitionSession, reason: str) -> None:
        with contextlib.suppress(Exception):
            await session.abort()
        if self.session is not session:
            return
        self.session = None
        lost_to = self.position or self.recognized_until
        self.on_lost(self.recognized_until, lost_to, reason)
        if self.state is SessionState.CLOSING:
            return
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > 60:
            self.restarts.popleft()
        if len(self.restarts) >= MAX_RESTARTS_PER_MINUTE:
            self.state = SessionState.DISABLED
            logger.error(
                "%s: recognition failed %d times in a minute; giving up on this stream: %s",
                self.config.label,
                len(self.restarts),
                reason,
            )
            return
        self.restarts.append(now)
        self.count("recognizer restart")
        logger.warning("%s: recognition session failed (%s); restarting", self.config.label, reason)
        self.recognized_until = lost_to
        self.backlog.clear()
        self.backlog_ticks = 0
        self._open(self.position, self.rate)

    async def end(self) -> None:
        """Flush the session: its last finals arrive before this returns (or it times out)."""
        session, task = self.session, self.task
        if session is None:
            return
        self.state = SessionState.CLOSING
        await session.close()
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
            except TimeoutError:
                logger.error(
                    "%s: recognizer did not flush within %.0f s", self.config.label, CLOSE_TIMEOUT
                )
                task.cancel()
                with contextlib.suppress(BaseException):
                    await session.abort()
        self.session = None
        self.task = None
        self.state = SessionState.IDLE
