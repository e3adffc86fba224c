"""The audio path of one ACS media socket: frames in, talk time and phrases out.

``CallAudio`` belongs to the socket's stream (``streaming.ingest.stream``), which it reaches
through the :class:`AudioHost` protocol for everything that crosses into the database or out
to the live analytics. ``AudioMetadata`` fixes the format; each ``AudioData`` frame is placed
on the call's timeline by its stream's clock, counted into per-second talk buckets, and fed
to the stream's recognition (``streaming.audio.recognition``). Mixed audio (frames without
``participantRawID``) is one stream; unmixed audio is one stream per participant, so every
result knows its speaker.

Defined behaviour for awkward input (each is counted, and logged by the socket):

* audio before ``AudioMetadata``, or after metadata with a format Callsite cannot use
  (not PCM, not mono, not 16 or 24 kHz): the frame is rejected;
* a format change mid-call: open sessions are flushed and closed, new ones start at the new
  rate; the timeline goes on;
* a gap (timestamps jump ahead): up to a second of silence is fed to the recognizer so its
  endpointing sees the pause; beyond that the recognizer's timeline is re-anchored, and gaps
  over a second are recorded as call events;
* a frame older than one already taken (a replay after a reconnect, or reordering): dropped;
* an odd number of PCM bytes, or no bytes: rejected;
* paused for payment (``pause``): frames count as talk time, are not recorded, and the
  recognizer is fed silence in their place, so it ends what was being said and hears
  nothing more until the pause ends.

The frame path does no database work: talk buckets go to the process's batching writer,
results to the stream, and (``CALLSITE_RECORDING=on``) the frame to its stream's recorder
(``streaming.recording``), which writes sealed chunks in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from django.conf import settings

from streaming.acs.packets import AudioData, AudioMetadata, PacketError, Word
from streaming.audio.recognition import StreamRecognition
from streaming.audio.talk_writer import TalkWriter, talk_writer
from streaming.audio.timeline import (
    SUPPORTED_RATES,
    ActivitySecond,
    ActivityTracker,
    FrameVerdict,
    StreamClock,
    pcm_ticks,
    ticks_between,
)
from streaming.events import ParticipantPayload
from streaming.levels import SILENCE_DBFS, frame_level_dbfs
from streaming.models import TranscriptSource
from streaming.recognizers.base import Recognition, Recognizer, SessionConfig
from streaming.recording.recorder import TrackRecorder
from streaming.recording.store import TrackKey
from streaming.redaction.core import TimeSpan
from streaming.speech import Phrase
from streaming.units import FRAME_MS, FRAME_TICKS, MAX_CALL_SECONDS, TICKS_PER_SECOND

logger = logging.getLogger(__name__)

GAP_EVENT_TICKS = TICKS_PER_SECOND  # audio gaps at least this long are recorded on the call
# Unvoiced frames that end speaking: the analytics' bridge (pauses shorter count as talk).
SPEAKING_HANGOVER_FRAMES = 300 // FRAME_MS
MAX_CALL_TICKS = MAX_CALL_SECONDS * TICKS_PER_SECOND
LISTEN_FRAMES = 5  # listeners get a stream's audio a tenth of a second at a time


class AudioHost(Protocol):
    """What the audio path asks of the stream that owns it."""

    async def audio_started(self, sample_rate: int, origin: datetime) -> datetime:
        """Record the format; return the call's audio origin (its first frame ever)."""
        ...

    async def audio_participant(self, raw_id: str) -> ParticipantPayload | None:
        """The participant of an unmixed stream (None past the call's bound)."""
        ...

    async def resume_point(self, key: str) -> int | None:
        """Where a reconnecting stream's audio was stored up to (ticks), if it was."""
        ...

    async def recognizer_attached(self) -> None:
        """A recognizer transcribes the call's audio."""
        ...

    async def recorded_until(self, key: str) -> int:
        """Where the stored recording of a stream ends (ticks; 0 when there is none)."""
        ...

    def gap(self, key: str, start: int, end: int, reason: str) -> None:
        """Record a stretch of the call without audio, or without recognition."""
        ...

    def talk(
        self, key: str, participant: ParticipantPayload | None, seconds: Sequence[ActivitySecond]
    ) -> None:
        """Completed talk seconds of one stream, for the live figures."""
        ...

    def speaking(
        self, key: str, participant: ParticipantPayload | None, speaking: bool, at_ticks: int
    ) -> None:
        """A participant started (or stopped) speaking at ``at_ticks`` on the call's timeline."""
        ...

    async def phrase(self, phrase: Phrase) -> None:
        """A recognizer's interim or final result, on the call's timeline."""
        ...


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
    recognition: StreamRecognition | None = None
    recorder: TrackRecorder | None = None
    heard: bytearray = field(default_factory=bytearray)  # audio gathered for listeners
    heard_at: int = 0
    speaking: bool = False
    quiet_frames: int = 0  # unvoiced frames in a row while speaking

    @property
    def participant_id(self) -> int | None:
        return self.participant["id"] if self.participant else None


class CallAudio:
    """Everything one media socket's audio needs; see the module docstring."""

    def __init__(
        self,
        *,
        host: AudioHost,
        call_id: int,
        label: str,
        recognizer: Recognizer | None,
        reject: Callable[..., None],
        writer: TalkWriter = talk_writer,
        locale: str | None = None,
        threshold_db: float | None = None,
        backlog_seconds: int | None = None,
        recording: bool | None = None,
    ) -> None:
        self.host = host
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
        self.max_backlog_ticks = backlog * TICKS_PER_SECOND
        self.recording = settings.CALLSITE_RECORDING == "on" if recording is None else recording
        self.paused = False  # paused for payment: neither recorded nor recognized
        # Someone listens in: each stream's audio goes to it every LISTEN_FRAMES frames.
        self.listen: Callable[[str, int, int, bytes], None] | None = None
        self.format: AudioMetadata | None = None
        self.origin: datetime | None = None
        self.streams: dict[str, AudioStream] = {}
        self.counts: Counter[str] = Counter()
        self.announced_recognizer = False

    def count(self, what: str) -> None:
        self.counts[what] += 1

    # --- packets -----------------------------------------------------------------------------

    async def metadata(self, meta: AudioMetadata) -> None:
        problem = format_problem(meta)
        if problem is not None:
            self.reject(problem, hostile=False)
            self.format = None
            await self._end_recognition()
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
            self.count("format change")
            await self._end_recognition()

    def frame(self, packet: AudioData) -> Coroutine[Any, Any, None] | None:
        """Take a frame; return a coroutine to await only when there is async work.

        With no recognizer and a known stream, a frame needs no await at all: the consumer's
        hot path then costs no coroutine of its own (measured: an awaited frame was 7 % of a
        saturated server's time).
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
            self.origin = await self.host.audio_started(rate, packet.timestamp or datetime.now(UTC))
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
        at = ticks_between(origin, stamp) if stamp is not None else None
        if at is not None and at > MAX_CALL_TICKS:
            self.reject("AudioData timestamp is more than 24 h after the call's first audio")
            return None
        placement = stream.clock.place(at, pcm_ticks(len(pcm), rate))
        if placement.verdict is FrameVerdict.LATE:
            self.count("late frame")
            if stream.recorder is not None and at is not None:
                stream.recorder.replayed(at, pcm, rate)
            return None
        silent = packet.silent
        level = SILENCE_DBFS if silent else frame_level_dbfs(pcm)
        done = stream.activity.add(placement.start, level, silent)
        if stream.key:
            self._speaking(stream, not silent and level > self.threshold_db, placement.start)
        if done:
            self._talk(stream, done)
        if placement.verdict is FrameVerdict.GAP:
            self.count("audio gap")
            if placement.gap >= GAP_EVENT_TICKS:
                start = placement.start
                self.host.gap(stream.key, start - placement.gap, start, "no audio received")
        if self.paused:  # the recognizer hears silence: it ends what was being said
            if stream.recognition is None:
                return None
            return stream.recognition.frame(placement, bytes(len(pcm)), rate)
        if stream.recorder is not None:
            stream.recorder.add(placement.start, pcm, rate)
        if self.listen is not None:
            self._listen(stream, placement.start, pcm, rate)
        if stream.recognition is None:
            return None
        return stream.recognition.frame(placement, pcm, rate)

    def _listen(self, stream: AudioStream, at: int, pcm: bytes, rate: int) -> None:
        if not stream.heard:
            stream.heard_at = at
        stream.heard += pcm
        if len(stream.heard) >= LISTEN_FRAMES * len(pcm) and self.listen is not None:
            heard, stream.heard = bytes(stream.heard), bytearray()
            self.listen(stream.key, rate, stream.heard_at, heard)

    def _speaking(self, stream: AudioStream, voiced: bool, at: int) -> None:
        """Speaking starts on a voiced frame and ends after ``SPEAKING_HANGOVER_FRAMES``
        unvoiced ones (a breath between words is not the end); each change is told at once."""
        if voiced:
            stream.quiet_frames = 0
            if not stream.speaking:
                stream.speaking = True
                self.host.speaking(stream.key, stream.participant, True, at)
        elif stream.speaking:
            stream.quiet_frames += 1
            if stream.quiet_frames >= SPEAKING_HANGOVER_FRAMES:
                stream.speaking = False
                ended = at - (stream.quiet_frames - 1) * FRAME_TICKS
                self.host.speaking(stream.key, stream.participant, False, ended)

    def _talk(self, stream: AudioStream, seconds: list[ActivitySecond]) -> None:
        self.writer.add(self.call_id, stream.participant_id, stream.key, seconds)
        self.host.talk(stream.key, stream.participant, seconds)

    # --- streams -----------------------------------------------------------------------------

    async def _open_stream(self, key: str) -> AudioStream:
        participant = await self.host.audio_participant(key) if key else None
        resume_at = await self.host.resume_point(key)
        stream = AudioStream(
            key=key,
            participant=participant,
            activity=ActivityTracker(self.threshold_db),
            clock=StreamClock.resuming(resume_at),
        )
        if self.recording:
            stream.recorder = TrackRecorder(
                TrackKey(self.call_id, key, stream.participant_id),
                label=self.label,
                chunk_seconds=settings.CALLSITE_RECORDING_CHUNK_SECONDS,
                stored_until=await self.host.recorded_until(key),
            )
        if self.recognizer is not None:
            stream.recognition = self._recognition(stream)
            if not self.announced_recognizer:
                self.announced_recognizer = True
                await self.host.recognizer_attached()
        self.streams[key] = stream
        return stream

    def _recognition(self, stream: AudioStream) -> StreamRecognition:
        assert self.recognizer is not None
        config = SessionConfig(
            sample_rate=0,  # each session opens at the rate of the frame that opens it
            locale=self.locale,
            diarize=not stream.key,
            label=f"{self.label} / {stream.key or 'mixed'}",
        )

        async def on_result(result: Recognition) -> None:
            await self.host.phrase(self._phrase(stream, result))

        def on_lost(start: int, end: int, reason: str) -> None:
            self.host.gap(stream.key, start, end, reason)

        return StreamRecognition(
            recognizer=self.recognizer,
            config=config,
            max_backlog_ticks=self.max_backlog_ticks,
            on_result=on_result,
            on_lost=on_lost,
            counts=self.count,
        )

    def _phrase(self, stream: AudioStream, result: Recognition) -> Phrase:
        """A recognizer's result (already on the call's timeline) as the stream takes it."""
        return Phrase(
            text=result.text,
            final=result.final,
            # A per-participant stream knows its speaker; mixed audio is diarized, if at all.
            speaker=stream.key or (f"speaker:{result.speaker}" if result.speaker else None),
            offset_ticks=result.offset,
            duration_ticks=result.duration,
            confidence=result.confidence,
            words=tuple(Word(w.text, w.offset, w.duration, w.confidence) for w in result.words),
            source=TranscriptSource.RECOGNIZER,
            origin=self.origin,
            participant=stream.participant if stream.key else None,
        )

    def partial(self) -> Iterator[tuple[str, ParticipantPayload | None, list[ActivitySecond], int]]:
        """Each stream's seconds still being filled, and how far it has been heard (ticks).

        The live figures read them every tick, so talk shows as it happens instead of once a
        second is complete.
        """
        for stream in self.streams.values():
            if stream.clock.position is not None:
                seconds = list(stream.activity.open.values())
                yield stream.key, stream.participant, seconds, stream.clock.position

    def pause(self, paused: bool) -> int:
        """Pause (or resume) recording and recognition from the next frame on; where on the
        call's timeline that is (ticks)."""
        self.paused = paused
        if paused:
            for stream in self.streams.values():
                stream.heard = bytearray()  # listeners hear nothing more of it
                if stream.recorder is not None:
                    stream.recorder.seal()  # what came before the pause is written now
        return max((s.clock.position or 0 for s in self.streams.values()), default=0)

    def silence(self, spans: Sequence[TimeSpan]) -> None:
        """Silence the recording still in memory over ``spans`` (redacted words)."""
        for stream in self.streams.values():
            if stream.recorder is not None:
                stream.recorder.silence(spans)

    @property
    def recorded(self) -> bool:
        """Whether any of this socket's audio was recorded."""
        return any(s.recorder is not None for s in self.streams.values())

    # --- lifecycle ---------------------------------------------------------------------------

    async def _end_recognition(self) -> None:
        """Flush every stream's session; the next frame of a stream opens a new one."""
        await asyncio.gather(
            *(s.recognition.end() for s in self.streams.values() if s.recognition is not None)
        )

    async def close(self) -> None:
        """The socket closed: flush talk buckets and recognition, store the last finals."""
        for stream in self.streams.values():
            leftover = stream.activity.drain()
            if leftover:
                self._talk(stream, leftover)
            if stream.speaking:
                stream.speaking = False
                position = stream.clock.position or 0
                self.host.speaking(stream.key, stream.participant, False, position)
        await self._end_recognition()
        await asyncio.gather(
            *(s.recorder.close() for s in self.streams.values() if s.recorder is not None)
        )
        await self.writer.flush()
        if self.counts:
            logger.info("%s: audio path: %s", self.label, dict(self.counts))
