"""Pure building blocks of the audio path: frame levels, the stream clock, talk-time buckets.

Nothing here touches Django, the network or the event loop, so each piece is tested with
tables and properties, and the ingest hot path (50 frames a second per participant) stays a
handful of arithmetic operations per frame.

Time is kept in 100-ns ticks on the *call's* timeline: tick 0 is the timestamp of the first
audio frame ACS sent for the call (``Call.audio_origin``), so utterance offsets, talk-time
seconds and gaps of different participants, and of a stream that reconnected, line up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from streaming.levels import SILENCE_DBFS
from streaming.units import FRAME_TICKS, FRAMES_PER_SECOND, TICKS_PER_SECOND

SUPPORTED_RATES = (16000, 24000)
# A gap shorter than this is jitter, not lost audio.
GAP_TOLERANCE_TICKS = 2 * FRAME_TICKS
# Missing audio up to this long is replaced by silence for the recognizer, so its endpointing
# sees the pause; longer gaps are skipped (the recognizer's timeline is re-anchored instead).
MAX_GAP_FILL_TICKS = 1 * TICKS_PER_SECOND


def ticks_between(origin: datetime, moment: datetime) -> int:
    """Exact ticks from ``origin`` to ``moment`` (both aware datetimes, microsecond precision)."""
    delta = moment - origin
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


class FrameVerdict(StrEnum):
    """What the clock made of a frame's timestamp."""

    IN_ORDER = "in-order"
    GAP = "gap"  # audio is missing before this frame
    LATE = "late"  # older than audio already taken: a replay or a reordered frame; dropped


@dataclass(slots=True)
class FramePlacement:
    """Where one frame goes on the call's timeline."""

    verdict: FrameVerdict
    start: int  # ticks on the call timeline
    gap: int = 0  # ticks of missing audio just before ``start``


@dataclass(slots=True)
class StreamClock:
    """Places one stream's frames on the call timeline.

    Frames are contiguous unless their timestamps say otherwise: a frame whose timestamp is
    more than ``GAP_TOLERANCE_TICKS`` past the expected position opens a gap (audio was lost);
    a frame whose timestamp is not after the previous frame's is late (a replay after a
    reconnect, or reordering) and is dropped. Small jitter and slow clock drift are absorbed:
    between gaps the position advances by the audio actually received, never by timestamps.
    A frame without a timestamp is taken as contiguous.
    """

    position: int | None = None  # where the next frame is expected
    last_stamp: int | None = None  # timeline tick of the last accepted frame's timestamp

    @classmethod
    def resuming(cls, resume_at: int | None) -> StreamClock:
        """A clock for a stream that already sent audio up to ``resume_at`` (a reconnect):
        frames stamped before it are late."""
        return cls(last_stamp=None if resume_at is None else resume_at - 1)

    def place(self, stamp: int | None, duration: int) -> FramePlacement:
        if stamp is not None and self.last_stamp is not None and stamp <= self.last_stamp:
            return FramePlacement(FrameVerdict.LATE, stamp)
        if self.position is None:
            start = stamp if stamp is not None else max(0, (self.last_stamp or -1) + 1)
            start = max(start, 0)
            self.position = start + duration
            self.last_stamp = stamp if stamp is not None else self.last_stamp
            return FramePlacement(FrameVerdict.IN_ORDER, start)
        expected = self.position
        if stamp is not None and stamp - expected > GAP_TOLERANCE_TICKS:
            self.position = stamp + duration
            self.last_stamp = stamp
            return FramePlacement(FrameVerdict.GAP, stamp, gap=stamp - expected)
        self.position = expected + duration
        if stamp is not None:
            self.last_stamp = stamp
        return FramePlacement(FrameVerdict.IN_ORDER, expected)


@dataclass(slots=True)
class ActivitySecond:
    """One participant's audio in one second of the call.

    ``voiced_mask`` has bit *i* set when the 20 ms frame starting at ``i * 20`` ms into the
    second was speech, so overlap between speakers is exact to the frame:
    ``(a.voiced_mask & b.voiced_mask).bit_count()`` frames.
    """

    second: int
    frames: int = 0
    voiced_mask: int = 0
    level_sum: float = 0.0  # sum of frame levels (dBFS), for the mean
    peak_db: float = SILENCE_DBFS

    @property
    def voiced_frames(self) -> int:
        return self.voiced_mask.bit_count()

    @property
    def mean_db(self) -> float:
        return self.level_sum / self.frames if self.frames else SILENCE_DBFS


@dataclass(slots=True)
class ActivityTracker:
    """Accumulates one stream's frames into per-second buckets.

    ``add`` returns the buckets that are complete (the stream has moved past them) so the
    caller can persist them; ``drain`` returns whatever is left when the stream ends.
    """

    threshold_db: float = -50.0
    open: dict[int, ActivitySecond] = field(default_factory=dict)
    latest_second: int = -1

    def add(self, start: int, level_db: float, silent: bool) -> list[ActivitySecond]:
        second, within = divmod(start, TICKS_PER_SECOND)
        bucket = self.open.get(second)
        if bucket is None:
            bucket = self.open[second] = ActivitySecond(second)
        bucket.frames += 1
        bucket.level_sum += level_db
        if level_db > bucket.peak_db:
            bucket.peak_db = level_db
        if not silent and level_db > self.threshold_db:
            bucket.voiced_mask |= 1 << min(within // FRAME_TICKS, FRAMES_PER_SECOND - 1)
        if second <= self.latest_second:
            return []
        self.latest_second = second
        # A second is complete once a frame two seconds later arrived (one second of slack
        # lets jittered frames land in their own bucket).
        done = [s for s in self.open if s < second - 1]
        return [self.open.pop(s) for s in sorted(done)]

    def drain(self) -> list[ActivitySecond]:
        done = [self.open[s] for s in sorted(self.open)]
        self.open.clear()
        return done


def pcm_silence(ticks: int, sample_rate: int) -> bytes:
    """Digital silence lasting ``ticks`` (rounded down to whole samples)."""
    samples = ticks * sample_rate // TICKS_PER_SECOND
    return bytes(2 * samples)


def pcm_ticks(byte_count: int, sample_rate: int) -> int:
    """Duration in ticks of ``byte_count`` bytes of 16-bit mono PCM."""
    return (byte_count // 2) * TICKS_PER_SECOND // sample_rate
