"""The pure pieces of the audio path: levels, the stream clock, per-second talk buckets."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming.audio.timeline import (
    GAP_TOLERANCE_TICKS,
    ActivityTracker,
    FrameVerdict,
    StreamClock,
    pcm_silence,
    pcm_ticks,
    ticks_between,
)
from streaming.levels import SILENCE_DBFS, frame_level_dbfs
from streaming.units import FRAME_TICKS, TICKS_PER_SECOND


def tone(amplitude: float, samples: int = 320) -> bytes:
    t = np.arange(samples)
    wave = amplitude * 32767 * np.sin(2 * np.pi * 440 * t / 16000)
    return np.rint(wave).astype("<i2").tobytes()


@pytest.mark.parametrize(
    ("pcm", "expected"),
    [
        (b"", SILENCE_DBFS),
        (b"\x00", SILENCE_DBFS),
        (bytes(640), SILENCE_DBFS),
        # A full-scale square wave is 0 dBFS.
        (np.array([32767, -32768] * 160, dtype="<i2").tobytes(), 0.0),
        # A sine at amplitude A has RMS A/sqrt(2): 20*log10(0.5/sqrt(2)) = -9.03 dBFS.
        (tone(0.5), -9.03),
        (tone(0.01), -43.01),
    ],
)
def test_frame_level(pcm: bytes, expected: float) -> None:
    assert frame_level_dbfs(pcm) == pytest.approx(expected, abs=0.05)


def test_frame_level_ignores_a_trailing_odd_byte() -> None:
    assert frame_level_dbfs(tone(0.5) + b"\x7f") == pytest.approx(-9.03, abs=0.05)


def test_ticks_between_is_exact() -> None:
    origin = datetime(2024, 11, 15, 19, 16, 12, 925000, tzinfo=UTC)
    assert ticks_between(origin, origin) == 0
    assert ticks_between(origin, origin + timedelta(milliseconds=20)) == FRAME_TICKS
    assert ticks_between(origin, origin + timedelta(days=1, microseconds=1)) == (
        86_400 * TICKS_PER_SECOND + 10
    )
    assert ticks_between(origin, origin - timedelta(milliseconds=20)) == -FRAME_TICKS


def test_pcm_helpers() -> None:
    assert pcm_ticks(640, 16000) == FRAME_TICKS
    assert pcm_ticks(960, 24000) == FRAME_TICKS
    assert len(pcm_silence(FRAME_TICKS, 16000)) == 640
    assert len(pcm_silence(TICKS_PER_SECOND, 24000)) == 48000


class TestStreamClock:
    def test_contiguous_frames_follow_each_other(self) -> None:
        clock = StreamClock()
        starts = [clock.place(i * FRAME_TICKS, FRAME_TICKS).start for i in range(5)]
        assert starts == [0, FRAME_TICKS, 2 * FRAME_TICKS, 3 * FRAME_TICKS, 4 * FRAME_TICKS]

    def test_a_reconnected_stream_starts_where_its_timestamp_says(self) -> None:
        placement = StreamClock().place(90 * TICKS_PER_SECOND, FRAME_TICKS)
        assert placement.verdict is FrameVerdict.IN_ORDER
        assert placement.start == 90 * TICKS_PER_SECOND

    def test_jitter_is_absorbed(self) -> None:
        clock = StreamClock()
        clock.place(0, FRAME_TICKS)
        # 15 ms late, then 2 ms early: both within tolerance, positions stay on the grid.
        assert clock.place(FRAME_TICKS + 150_000, FRAME_TICKS).start == FRAME_TICKS
        assert clock.place(2 * FRAME_TICKS - 20_000, FRAME_TICKS).start == 2 * FRAME_TICKS

    def test_a_jump_past_the_tolerance_is_a_gap(self) -> None:
        clock = StreamClock()
        clock.place(0, FRAME_TICKS)
        later = FRAME_TICKS + GAP_TOLERANCE_TICKS + 1
        placement = clock.place(later, FRAME_TICKS)
        assert placement.verdict is FrameVerdict.GAP
        assert placement.start == later
        assert placement.gap == later - FRAME_TICKS
        assert clock.place(later + FRAME_TICKS, FRAME_TICKS).verdict is FrameVerdict.IN_ORDER

    def test_replayed_and_reordered_frames_are_late(self) -> None:
        clock = StreamClock()
        for i in range(3):
            clock.place(i * FRAME_TICKS, FRAME_TICKS)
        assert clock.place(FRAME_TICKS, FRAME_TICKS).verdict is FrameVerdict.LATE
        assert clock.place(2 * FRAME_TICKS, FRAME_TICKS).verdict is FrameVerdict.LATE
        # The late frames did not move the clock.
        assert clock.place(3 * FRAME_TICKS, FRAME_TICKS).start == 3 * FRAME_TICKS

    def test_a_resuming_clock_drops_audio_an_earlier_connection_received(self) -> None:
        clock = StreamClock.resuming(TICKS_PER_SECOND)
        assert clock.place(TICKS_PER_SECOND - FRAME_TICKS, FRAME_TICKS).verdict is FrameVerdict.LATE
        placement = clock.place(TICKS_PER_SECOND, FRAME_TICKS)
        assert (placement.verdict, placement.start) == (FrameVerdict.IN_ORDER, TICKS_PER_SECOND)
        # Without timestamps, the stream continues where the earlier one stopped.
        assert StreamClock.resuming(TICKS_PER_SECOND).place(None, FRAME_TICKS).start == (
            TICKS_PER_SECOND
        )

    def test_frames_without_timestamps_are_contiguous(self) -> None:
        clock = StreamClock()
        assert [clock.place(None, FRAME_TICKS).start for _ in range(3)] == [
            0,
            FRAME_TICKS,
            2 * FRAME_TICKS,
        ]

    @given(st.lists(st.integers(min_value=-5, max_value=200), min_size=1, max_size=200))
    def test_accepted_frames_never_overlap(self, steps: list[int]) -> None:
        clock = StreamClock()
        stamp = 0
        previous_end = None
        for step in steps:
            stamp += step * 10_000  # jittered, sometimes backwards, sometimes jumping
            placement = clock.place(stamp, FRAME_TICKS)
            if placement.verdict is FrameVerdict.LATE:
                continue
            if previous_end is not None:
                assert placement.start >= previous_end
                if placement.verdict is FrameVerdict.GAP:
                    assert placement.start - previous_end == placement.gap
                else:
                    assert placement.start == previous_end
            previous_end = placement.start + FRAME_TICKS


class TestActivityTracker:
    def test_buckets_count_frames_and_voiced_frames_per_second(self) -> None:
        tracker = ActivityTracker(threshold_db=-50)
        done = []
        # Second 0: 50 frames, the first 10 loud; second 1: all silent; second 2: one frame.
        for i in range(101):
            loud = i < 10
            done += tracker.add(i * FRAME_TICKS, -20.0 if loud else -80.0, silent=not loud)
        done += tracker.drain()
        assert [b.second for b in done] == [0, 1, 2]
        first, second, third = done
        assert (first.frames, first.voiced_frames) == (50, 10)
        assert first.voiced_mask == (1 << 10) - 1
        assert (second.frames, second.voiced_frames, second.voiced_mask) == (50, 0, 0)
        assert third.frames == 1
        assert first.peak_db == -20.0
        assert first.mean_db == pytest.approx((10 * -20 + 40 * -80) / 50)

    def test_silent_flag_wins_over_level_and_quiet_frames_are_not_speech(self) -> None:
        tracker = ActivityTracker(threshold_db=-50)
        tracker.add(0, -10.0, silent=True)
        tracker.add(FRAME_TICKS, -60.0, silent=False)
        tracker.add(2 * FRAME_TICKS, -30.0, silent=False)
        (bucket,) = tracker.drain()
        assert bucket.voiced_mask == 0b100

    def test_a_second_is_released_only_after_a_second_of_slack(self) -> None:
        tracker = ActivityTracker()
        assert tracker.add(0, -20, False) == []
        assert tracker.add(TICKS_PER_SECOND, -20, False) == []
        released = tracker.add(2 * TICKS_PER_SECOND, -20, False)
        assert [b.second for b in released] == [0]
        # A jittered frame for second 1 still lands in its own bucket.
        tracker.add(TICKS_PER_SECOND + FRAME_TICKS, -20, False)
        assert [(b.second, b.frames) for b in tracker.drain()] == [(1, 2), (2, 1)]

    @given(
        st.lists(
            st.tuples(st.integers(0, 10_000), st.floats(-120, 0), st.booleans()),
            max_size=300,
        )
    )
    def test_every_frame_is_counted_once(self, frames: list[tuple[int, float, bool]]) -> None:
        tracker = ActivityTracker()
        out = []
        for index, level, silent in sorted(frames):
            out += tracker.add(index * FRAME_TICKS, level, silent)
        out += tracker.drain()
        assert sum(b.frames for b in out) == len(frames)
        assert len({b.second for b in out}) == len(out)
        for bucket in out:
            assert 0 <= bucket.voiced_frames <= min(bucket.frames, 50)
            assert bucket.voiced_mask < 2**50
            assert not math.isnan(bucket.mean_db)
