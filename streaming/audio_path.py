"""The audio path of one ACS media socket: frames in, talk time and utterances out.

``CallAudio`` is owned by the ingest consumer. ``AudioMetadata`` fixes the format; each
``AudioData`` frame is placed on the call's timeline by its stream's clock, counted into
per-second talk buckets, and fed to the stream's recognition session. Mixed audio (frames
without ``participantRawID``) is one stream; unmixed audio is one stream per participant, so
every result knows its speaker.

Defined behaviour for awkward input (each is counted, and logged by the consumer):

* audio before ``AudioMetadata``, or after metadata with a format Callsite cannot use
  (not PCM, not mono, not 16 or 24 kHz): the frame is rejected;
* a format change mid-call: open sessions are flushed and closed, new ones start at the new
  rate; the timeline goes on;
* a gap (timestamps jump ahead): up to a second of silence is fed to the recognizer so its
  endpointing sees the pause; beyond that the recognizer's timeline is re-anchored, and gaps
  over a second are recorded as call events;
* a frame older than one already taken (a replay after a reconnect, or reordering): dropped;
* an odd number of PCM bytes, or no bytes: rejected.

The frame path does no database work; talk buckets go to the process's batching writer and
results are stored by each stream's result task. A recognition session that fails is
restarted (a bounded number of times a minute) and the lost stretch is recorded on the call
as a ``recognition.gap`` event.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from streaming import events, services
from streaming.audio import (
    FRAME_TICKS,
    MAX_GAP_FILL_TICKS,
    SILENCE_DBFS,
    SUPPORTED_RATES,
    TICKS_PER_SECOND,
    ActivitySecond,
    ActivityTracker,
    FramePlacement,
    FrameVerdict,
    StreamClock,
    frame_level_dbfs,
    pcm_silence,
    pcm_ticks,
    ticks_between,
)
from streaming.db import db_call
from streaming.events import CaptionPayload, ParticipantPayload
from streaming.metrics import INGEST
from streaming.models import TranscriptSource
from streaming.packets import AudioData, AudioMetadata, DtmfData, PacketError, Word
from streaming.recognizers.base import (
    Recognition,
    RecognitionSession,
    Recognizer,
    RecognizerError,
    SessionConfig,
)
from streaming.retry import db_write
from streaming.talk_writer import TalkWriter, talk_writer

logger = logging.getLogger(__name__)

# Completed talk seconds of a stream (its key, its participant) and a stored final with the
# time its speech ended: what the live analytics are told.
ActivityHook = Callable[[str, ParticipantPayload | None, list[ActivitySecond]], None]
FinalHook = Callable[[CaptionPayload, datetime | None], Awaitable[None]]
InterimHook = Callable[[CaptionPayload], None]

MAX_RESTARTS_PER_MINUTE = 5
CLOSE_TIMEOUT = 30.0
GAP_EVENT_TICKS = TICKS_PER_SECOND  # audio gaps at least this long are recorded on the call


def format_problem(meta: AudioMetadata) -> str | None:
    """Why Callsite cannot use this audio format, or None if it can."""
    if meta.encoding.lower() != "pcm":
        return f"unsupported audio encoding {meta.encoding!r} (only PCM)"
    if meta.channels != 1:
        return f"unsupported channel count {meta.channels} (only mono)"
    if meta.sample_rate not in SUPPORTED_RATES:
        return f"unsupported sample rate {meta.sample_rate} (16000 or 24000)"
    return None


@dataclass
class AudioStream:
    """One participant's audio (or the mixed audio) within one socket."""

    key: str  # participant raw id; "" for mixed audio
    participant: ParticipantPayload | None
    activity: ActivityTracker
    clock: StreamClock = field(default_factory=StreamClock)
    session: RecognitionSession | None = None
    live: bool = False  # the session has started and takes audio directly
    prebuffer: list[bytes] = field(default_factory=list)
    prebuffer_ticks: int = 0
    task: asyncio.Task[None] | None = None
    anchors: list[tuple[int, int]] = field(default_factory=list)  # (session tick, call tick)
    fed_ticks: int = 0
    restarts: deque[float] = field(default_factory=deque)
    recognized_until: int = 0  # call tick where the last result ended
    disabled: bool = False
    closing: bool = False

    @property
    def participant_id(self) -> int | None:
        return self.participant["id"] if self.participant else None

    def to_call_ticks(self, session_ticks: int) -> int:
        index = bisect.bisect_right(self.anchors, (session_ticks, 2**63)) - 1
        session_at, call_at = self.anchors[max(index, 0)]
        return call_at + (session_ticks - session_at)


class CallAudio:
    """Everything one media socket's audio needs; see the module docstring."""

    def __init__(
        self,
        *,
        call_id: int,
        label: str,
        recognizer: Recognizer | None,
        reject: Callable[..., None],
        writer: TalkWriter = talk_writer,
        locale: str | None = None,
        threshold_db: float | None = None,
        backlog_seconds: int | None = None,
        on_activity: ActivityHook | None = None,
        on_interim: InterimHook | None = None,
        on_final: FinalHook | None = None,
    ) -> None:
        self.call_id = call_id
        self.label = label
        self.recognizer = recognizer
        self.reject = reject
        self.writer = writer
        self.locale = locale or settings.CALLSITE_RECOGNIZER_LOCALE
        self.threshold_db = (
            settings.CALLSITE_VOICE_THRESHOLD_DBFS if threshold_db is None else threshold_db
        )
        backlog = backlog_seconds or settings.CALLSITE_RECOGNIZER_BACKLOG_SECONDS
        self.max_prebuffer_ticks = backlog * TICKS_PER_SECOND
        self.format: AudioMetadata | None = None
        self.origin: datetime | None = None
        self.streams: dict[str, AudioStream] = {}
        self.counts: Counter[str] = Counter()
        self.announced_recognizer = False
        self.on_activity = on_activity
        self.on_interim = on_interim
        self.on_final = on_final

    # --- packets -----------------------------------------------------------------------------

    async def metadata(self, meta: AudioMetadata) -> None:
        problem = format_problem(meta)
        if problem is not None:
            self.reject(problem, hostile=False)
            self.format = None
            await self._end_sessions()
            return
        previous = self.format
        self.format = meta
        if previous is not None and previous.sample_rate != meta.sample_rate:
            logger.info(
                "%s: audio format changed from %d to %d Hz; recognition sessions restart",
                self.label,
                previous.sample_rate,
                meta.sample_rate,
            )
            self.counts["format change"] += 1
            await self._end_sessions()

    async def frame(self, packet: AudioData) -> None:
        pending = self.frame_now(packet)
        if pending is not None:
            await pending

    def frame_now(self, packet: AudioData) -> Coroutine[Any, Any, None] | None:
        """Take a frame; return a coroutine to await only when there is async work.

        With no recognizer and a known stream, a frame needs no await at all: the consumer's
        hot path then costs no coroutine of its own (measured: an awaited ``frame`` was 7 % of
        a saturated server's time).
        """
        meta = self.format
        if meta is None:
            self.reject("AudioData before a usable AudioMetadata", hostile=False)
            return None
        try:
            pcm = packet.pcm()
        except PacketError as error:
            self.reject(error.reason)
            return None
        size = len(pcm)
        if size == 0 or size & 1:
            self.reject("AudioData PCM must be a non-empty, even number of bytes")
            return None
        stream = self.streams.get(packet.participant_raw_id or "")
        if stream is None or self.origin is None:
            return self._first_frame(packet, pcm, meta.sample_rate)
        return self._place(stream, packet, pcm, meta.sample_rate)

    async def _first_frame(self, packet: AudioData, pcm: bytes, rate: int) -> None:
        """A stream's first frame: fix the call's origin, register the stream, then place it."""
        if self.origin is None:
            await self._fix_origin(packet.timestamp)
        key = packet.participant_raw_id or ""
        stream = self.streams.get(key)
        if stream is None:
            stream = await self._open_stream(key)
        pending = self._place(stream, packet, pcm, rate)
        if pending is not None:
            await pending

    def _place(
        self, stream: AudioStream, packet: AudioData, pcm: bytes, rate: int
    ) -> Coroutine[Any, Any, None] | None:
        """Put a frame on the timeline and into talk time; recognition is returned as work."""
        stamp = packet.timestamp
        origin = self.origin
        assert origin is not None
        placement = stream.clock.place(
            ticks_between(origin, stamp) if stamp is not None else None, pcm_ticks(len(pcm), rate)
        )
        if placement.verdict is FrameVerdict.LATE:
            self.counts["late frame"] += 1
            return None
        silent = packet.silent
        level = SILENCE_DBFS if silent else frame_level_dbfs(pcm)
        done = stream.activity.add(placement.start, level, silent)
        if done:
            self.writer.add(self.call_id, stream.participant_id, stream.key, done)
            if self.on_activity is not None:
                self.on_activity(stream.key, stream.participant, done)
        if placement.verdict is FrameVerdict.GAP:
            self._gap_seen(stream, placement.start, placement.gap)
        if self.recognizer is None or stream.disabled:
            return None
        return self._recognize(stream, placement, pcm, rate)

    async def _recognize(
        self, stream: AudioStream, placement: FramePlacement, pcm: bytes, rate: int
    ) -> None:
        if stream.session is None:
            if stream.closing:
                return
            self._start_session(stream, placement.start)
        elif placement.verdict is FrameVerdict.GAP:
            await self._gap_fill(stream, placement.start, placement.gap, rate)
        await self._feed(stream, pcm, rate)

    async def dtmf(self, packet: DtmfData) -> None:
        stamp = packet.timestamp.isoformat() if packet.timestamp else None
        event_id = None
        if stamp is not None:
            speaker = packet.participant_raw_id or ""
            event_id = f"dtmf|{self.call_id}|{speaker}|{stamp}|{packet.data}"
        await db_call(
            services.call_event_record,
            call_id=self.call_id,
            type="DtmfData",
            data={"tone": packet.data, "participant": packet.participant_raw_id, "at": stamp},
            event_id=event_id,
            time=packet.timestamp,
        )

    # --- streams and sessions ----------------------------------------------------------------

    async def _fix_origin(self, stamp: datetime | None) -> None:
        assert self.format is not None
        self.origin = await db_call(
            services.call_audio_started,
            call_id=self.call_id,
            sample_rate=self.format.sample_rate,
            origin=stamp or datetime.now(UTC),
        )

    async def _open_stream(self, key: str) -> AudioStream:
        participant = None
        if key:
            participant = await db_call(
                services.participant_ensure, call_id=self.call_id, raw_id=key
            )
        resume_at = await db_call(services.stream_resume_point, call_id=self.call_id, stream=key)
        stream = AudioStream(
            key=key,
            participant=participant,
            activity=ActivityTracker(self.threshold_db),
            clock=StreamClock.resuming(resume_at),
        )
        self.streams[key] = stream
        if self.recognizer is not None and not self.announced_recognizer:
            self.announced_recognizer = True
            await db_call(services.call_recognizer_attached, call_id=self.call_id)
        return stream

    def _start_session(self, stream: AudioStream, at: int) -> None:
        assert self.recognizer is not None
        assert self.format is not None
        config = SessionConfig(
            sample_rate=self.format.sample_rate,
            locale=self.locale,
            diarize=not stream.key,
            label=f"{self.label} / {stream.key or 'mixed'}",
        )
        stream.session = self.recognizer.open(config)
        stream.live = False
        stream.fed_ticks = 0
        stream.anchors = [(0, at)]
        stream.task = asyncio.create_task(
            self._run_session(stream, stream.session), name=f"recognition {config.label}"
        )

    async def _feed(self, stream: AudioStream, pcm: bytes, rate: int) -> None:
        session = stream.session
        assert session is not None
        if stream.live:
            stream.fed_ticks += pcm_ticks(len(pcm), rate)
            try:
                await session.feed(pcm)
            except RecognizerError as error:
                self.counts["recognizer feed error"] += 1
                logger.warning("%s: feeding the recognizer failed: %s", self.label, error.reason)
            return
        if stream.prebuffer_ticks >= self.max_prebuffer_ticks:
            self.counts["audio dropped while the recognizer started"] += 1
            return
        stream.prebuffer.append(pcm)
        ticks = pcm_ticks(len(pcm), rate)
        stream.prebuffer_ticks += ticks
        stream.fed_ticks += ticks

    def _gap_seen(self, stream: AudioStream, start: int, gap: int) -> None:
        self.counts["audio gap"] += 1
        if gap >= GAP_EVENT_TICKS:
            self._record_gap(stream, start - gap, start, "no audio received")

    async def _gap_fill(self, stream: AudioStream, start: int, gap: int, rate: int) -> None:
        """Feed up to a second of silence for the missing audio, re-anchor past that."""
        fill = min(gap, MAX_GAP_FILL_TICKS)
        fill -= fill % FRAME_TICKS
        if fill:
            await self._feed(stream, pcm_silence(fill, rate), rate)
        if gap > fill:
            stream.anchors.append((stream.fed_ticks, start))

    def _record_gap(self, stream: AudioStream, start: int, end: int, reason: str) -> None:
        data: dict[str, object] = {
            "stream": stream.key,
            "start_ticks": start,
            "end_ticks": end,
            "reason": reason,
        }
        kind = "audio.gap" if reason == "no audio received" else "recognition.gap"
        task = asyncio.get_running_loop().create_task(
            db_call(
                services.call_event_record,
                call_id=self.call_id,
                type=kind,
                data=data,
                is_failure=True,
                message=reason,
            )
        )
        task.add_done_callback(_log_task_error)

    async def _run_session(self, stream: AudioStream, session: RecognitionSession) -> None:
        """Start the session, replay what arrived meanwhile, store its results."""
        try:
            await session.start()
            for chunk in stream.prebuffer:
                await session.feed(chunk)
            stream.prebuffer.clear()
            stream.prebuffer_ticks = 0
            stream.live = True
            async for result in session.results():
                await self._result(stream, result)
        except RecognizerError as error:
            await self._session_failed(stream, session, error.reason)
        except Exception as error:  # a bug must cost this stream's session, not the socket
            logger.exception("%s: recognition session crashed", self.label)
            await self._session_failed(stream, session, f"{type(error).__name__}: {error}")

    async def _session_failed(
        self, stream: AudioStream, session: RecognitionSession, reason: str
    ) -> None:
        with contextlib.suppress(Exception):
            await session.abort()
        if stream.session is not session:
            return
        stream.session = None
        stream.live = False
        lost_to = stream.clock.position or stream.recognized_until
        self._record_gap(stream, stream.recognized_until, lost_to, reason)
        if stream.closing:
            return
        now = time.monotonic()
        while stream.restarts and now - stream.restarts[0] > 60:
            stream.restarts.popleft()
        if len(stream.restarts) >= MAX_RESTARTS_PER_MINUTE:
            stream.disabled = True
            logger.error(
                "%s: recognition failed %d times in a minute; giving up on this stream: %s",
                self.label,
                len(stream.restarts),
                reason,
            )
            return
        stream.restarts.append(now)
        self.counts["recognizer restart"] += 1
        logger.warning("%s: recognition session failed (%s); restarting", self.label, reason)
        stream.recognized_until = lost_to
        stream.prebuffer.clear()
        stream.prebuffer_ticks = 0
        self._start_session(stream, stream.clock.position or 0)

    async def _result(self, stream: AudioStream, result: Recognition) -> None:
        offset = stream.to_call_ticks(result.offset)
        words = tuple(
            Word(
                text=w.text,
                offset=stream.to_call_ticks(w.offset),
                duration=w.duration,
                confidence=w.confidence,
            )
            for w in result.words
        )
        raw_id = stream.key or (f"speaker:{result.speaker}" if result.speaker else None)
        if result.final:
            stream.recognized_until = max(stream.recognized_until, offset + result.duration)
            await self._store_final(raw_id, result, offset, words)
            return
        participant = stream.participant if stream.key else None
        if participant is None and raw_id:
            participant = await db_call(
                services.participant_ensure, call_id=self.call_id, raw_id=raw_id
            )
        caption: CaptionPayload = {
            "call_id": self.call_id,
            "utterance_id": None,
            "participant": participant,
            "text": result.text,
            "confidence": result.confidence,
            "offset_ticks": offset,
            "duration_ticks": result.duration,
            "words": services.words_payload(words),
            "final": False,
            "seq": None,
        }
        if self.on_interim is not None:
            self.on_interim(caption)
        if not result.text:  # speech in progress with no words yet: talk, nothing to show
            return
        await events.asend_event(
            (events.call_group(self.call_id),), events.caption_interim(caption)
        )

    async def _store_final(
        self, raw_id: str | None, result: Recognition, offset: int, words: tuple[Word, ...]
    ) -> None:
        try:
            caption, created = await db_write(
                f"{self.label}: final utterance",
                services.utterance_record,
                call_id=self.call_id,
                participant_raw_id=raw_id,
                text=result.text,
                confidence=result.confidence,
                offset_ticks=offset,
                duration_ticks=result.duration,
                words=words,
                source=TranscriptSource.RECOGNIZER,
            )
        except Exception:
            # Retries ran out (or a bug): the text goes to the log in full, to be recovered.
            logger.exception(
                "%s: final utterance NOT stored (offset %s): %r", self.label, offset, result.text
            )
            self.counts["final lost"] += 1
            INGEST.finals_lost += 1
            return
        self.counts["final stored"] += 1
        if created and self.on_final is not None:
            end = offset + result.duration
            speech_end: datetime | None = None
            if self.origin is not None:
                with contextlib.suppress(OverflowError):  # a wild timestamp
                    speech_end = self.origin + timedelta(microseconds=end / 10)
            try:
                await self.on_final(caption, speech_end)
            except Exception:
                logger.exception("%s: handling a stored final failed", self.label)

    def partial(self) -> Iterator[tuple[str, ParticipantPayload | None, list[ActivitySecond], int]]:
        """Each stream's seconds still being filled, and how far it has been heard (ticks).

        The live figures read them every tick, so talk shows as it happens instead of once a
        second is complete.
        """
        for stream in self.streams.values():
            if stream.clock.position is not None:
                seconds = list(stream.activity.open.values())
                yield stream.key, stream.participant, seconds, stream.clock.position

    # --- lifecycle ---------------------------------------------------------------------------

    async def _end_sessions(self) -> None:
        streams = list(self.streams.values())
        for stream in streams:
            stream.closing = True
        await asyncio.gather(*(self._end_session(s) for s in streams))
        for stream in streams:
            stream.closing = False
            stream.session = None
            stream.task = None

    async def _end_session(self, stream: AudioStream) -> None:
        session, task = stream.session, stream.task
        if session is None:
            return
        await session.close()
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
            except TimeoutError:
                logger.error(
                    "%s: recognizer did not flush within %.0f s", self.label, CLOSE_TIMEOUT
                )
                task.cancel()
                with contextlib.suppress(BaseException):
                    await session.abort()

    async def close(self) -> None:
        """The socket closed: flush talk buckets and recognition, store the last finals."""
        for stream in self.streams.values():
            leftover = stream.activity.drain()
            if leftover:
                self.writer.add(self.call_id, stream.participant_id, stream.key, leftover)
                if self.on_activity is not None:
                    self.on_activity(stream.key, stream.participant, leftover)
        await self._end_sessions()
        await self.writer.flush()
        if self.counts:
            logger.info("%s: audio path: %s", self.label, dict(self.counts))


def _log_task_error(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("recording a call event failed: %s", task.exception())
