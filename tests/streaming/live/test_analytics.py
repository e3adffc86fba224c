"""Talk-time analytics: table tests of the definitions, and properties against a slow oracle."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.live.analytics import (
    AnalyticsParams,
    Track,
    analyse,
    frames_from_ticks,
    mask_bits,
    overtalk_fraction,
    runs,
    smooth,
    track_from_intervals,
    track_from_mask_seconds,
    wpm,
)
from streaming.units import FRAMES_PER_SECOND

F = FRAMES_PER_SECOND  # frames per second: 50


def spoken(*spans: tuple[float, float], length: float) -> Track:
    """A track talking in each (start s, end s) span."""
    return track_from_intervals(
        [(round(a * F), round(b * F)) for a, b in spans], length=round(length * F)
    )


# --- table tests ------------------------------------------------------------------------------


def test_turn_taking_without_overlap() -> None:
    tracks = {"a": spoken((0, 5), length=12), "b": spoken((6, 10), length=12)}
    f = analyse(tracks, 12 * F)
    assert (f.talk, f.overlap, f.silence) == (9 * F, 0, 3 * F)
    assert (f.speaker("a").talk, f.speaker("b").talk) == (5 * F, 4 * F)
    assert (f.longest_silence, f.current_silence) == (2 * F, 2 * F)
    assert f.speaker("a").longest_monologue == 5 * F
    assert f.speaker("b").longest_monologue == 4 * F
    # Two seconds of quiet after b is longer than a monologue pause: nobody holds the floor.
    assert f.speaker("b").current_monologue == 0
    assert f.interruptions == 0


def test_a_speaker_who_starts_over_another_interrupts() -> None:
    tracks = {"a": spoken((0, 10), length=10), "b": spoken((4, 6), length=10)}
    f = analyse(tracks, 10 * F)
    assert f.speaker("b").interruptions == 1
    assert f.speaker("a").interruptions == 0
    assert f.overlap == 2 * F
    assert f.overlap_segments == [(4 * F, 6 * F)]
    # b's talk splits a's monologue in two.
    assert f.speaker("a").longest_monologue == 4 * F
    assert f.speaker("a").current_monologue == 4 * F


def test_a_short_backchannel_is_overlap_but_not_an_interruption() -> None:
    tracks = {"a": spoken((0, 10), length=10), "b": spoken((5, 5.3), length=10)}
    f = analyse(tracks, 10 * F)
    assert f.interruptions == 0
    assert f.overlap == round(0.3 * F)


def test_speakers_starting_together_do_not_interrupt() -> None:
    tracks = {"a": spoken((0, 3), length=4), "b": spoken((0, 3), length=4)}
    f = analyse(tracks, 4 * F)
    assert f.interruptions == 0
    assert f.overlap == 3 * F
    assert f.speaker("a").longest_monologue == 0


def test_short_pauses_count_as_talking() -> None:
    tracks = {"a": spoken((0, 1), (1.2, 2), length=3)}
    f = analyse(tracks, 3 * F)
    assert f.speaker("a").talk == 2 * F
    assert f.speaker("a").segments == [(0, 2 * F)]
    # With smoothing off the 200 ms pause is silence.
    raw = analyse(tracks, 3 * F, params=AnalyticsParams(bridge_ms=0))
    assert raw.speaker("a").talk == round(1.8 * F)


def test_a_monologue_spans_its_own_pauses_but_not_long_ones() -> None:
    tracks = {"a": spoken((0, 3), (4, 6), (9, 10), length=10)}
    f = analyse(tracks, 10 * F)
    assert f.speaker("a").talk == 6 * F
    assert f.speaker("a").longest_monologue == 6 * F  # 0-6 s, the 1 s pause included
    assert f.speaker("a").current_monologue == 1 * F  # 9-10 s: the 3 s pause ended the first


def test_dead_air_is_the_current_silence() -> None:
    tracks = {"a": spoken((0, 2), length=9), "b": spoken((2, 3), length=9)}
    f = analyse(tracks, 9 * F)
    assert f.current_silence == 6 * F
    assert f.longest_silence == 6 * F


def test_a_call_with_nobody_talking() -> None:
    f = analyse({}, 5 * F)
    assert (f.talk, f.silence, f.current_silence, f.speakers) == (0, 5 * F, 5 * F, ())
    empty = analyse({"a": np.zeros(0, dtype=bool)}, 0)
    assert (empty.duration, empty.silence, empty.speaker("a").talk) == (0, 0, 0)


def test_tracks_are_cut_or_padded_to_the_duration() -> None:
    f = analyse({"a": spoken((0, 10), length=10)}, 4 * F)
    assert f.speaker("a").talk == 4 * F
    g = analyse({"a": spoken((0, 1), length=1)}, 4 * F)
    assert (g.speaker("a").talk, g.silence) == (F, 3 * F)


def test_voiced_masks_become_frames() -> None:
    assert list(np.flatnonzero(mask_bits(0b101))) == [0, 2]
    assert list(np.flatnonzero(mask_bits(1 << 49))) == [49]
    track = track_from_mask_seconds({0: 1, 2: 1 << 49})
    assert len(track) == 3 * F
    assert list(np.flatnonzero(track)) == [0, 3 * F - 1]


def test_ticks_become_frames() -> None:
    assert frames_from_ticks(0) == 0
    assert frames_from_ticks(199_999) == 0
    assert frames_from_ticks(200_000) == 1
    assert frames_from_ticks(-5) == 0


def test_words_per_minute_needs_some_talk() -> None:
    assert wpm(30, 10 * F) == 180.0
    assert wpm(3, F) is None


def test_overtalk_fraction_of_a_window() -> None:
    assert overtalk_fraction([(10, 20), (30, 40)], 0, 40) == 0.5
    assert overtalk_fraction([(10, 20)], 15, 25) == 0.5
    assert overtalk_fraction([], 0, 0) == 0.0


# --- properties against a frame-by-frame oracle -------------------------------------------------


def oracle_smooth(track: list[bool], bridge: int) -> list[bool]:
    out = list(track)
    talked = [i for i, v in enumerate(track) if v]
    for prev, nxt in itertools.pairwise(talked):
        if 1 < nxt - prev <= bridge:  # a pause of nxt - prev - 1 frames, shorter than bridge
            for i in range(prev + 1, nxt):
                out[i] = True
    return out


def oracle_runs(track: list[bool]) -> list[tuple[int, int]]:
    found, start = [], None
    for i, v in enumerate([*track, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            found.append((start, i))
            start = None
    return found


def oracle(tracks: dict[str, list[bool]], duration: int, p: AnalyticsParams) -> dict[Any, int]:
    fitted = {k: (t + [False] * duration)[:duration] for k, t in tracks.items()}
    sm = {k: oracle_smooth(t, p.bridge) for k, t in fitted.items()}
    count = [sum(t[i] for t in sm.values()) for i in range(duration)]
    quiet = oracle_runs([c == 0 for c in count])
    result: dict[Any, int] = {
        "talk": sum(c > 0 for c in count),
        "overlap": sum(c >= 2 for c in count),
        "silence": sum(c == 0 for c in count),
        "longest_silence": max((b - a for a, b in quiet), default=0),
        "current_silence": next((b - a for a, b in quiet if b == duration), 0),
    }
    for k, t in sm.items():
        others = [count[i] - t[i] for i in range(duration)]
        own = oracle_runs(t)
        result[k, "talk"] = sum(t)
        result[k, "interruptions"] = sum(
            1
            for a, b in own
            if a > 0 and others[a - 1] > 0 and others[a] > 0 and b - a >= p.interruption_min
        )
        # Monologues: walk the frames, holding the floor while alone and pausing briefly.
        start: int | None = None
        last_solo_end = 0
        blocked = False
        spans: list[tuple[int, int]] = []
        for i in range(duration):
            solo = t[i] and others[i] == 0
            if others[i] > 0:
                blocked = True
            if solo:
                if start is None or blocked or i - last_solo_end > p.monologue_pause:
                    if start is not None:
                        spans.append((start, last_solo_end))
                    start = i
                blocked = False
                last_solo_end = i + 1
        if start is not None:
            spans.append((start, last_solo_end))
        longest = max((b - a for a, b in spans), default=0)
        current = 0
        if spans:
            a, b = spans[-1]
            if duration - b <= p.monologue_pause and all(o == 0 for o in others[b:]):
                current = b - a
        result[k, "longest_monologue"] = longest
        result[k, "current_monologue"] = current
    return result


track_lists = st.lists(st.booleans(), max_size=120)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.dictionaries(st.sampled_from("abcd"), track_lists, max_size=4),
    duration=st.integers(0, 140),
    bridge=st.integers(0, 6),
    pause=st.integers(0, 8),
    interruption=st.integers(1, 6),
)
def test_figures_match_the_oracle_and_add_up(raw, duration, bridge, pause, interruption) -> None:
    p = AnalyticsParams(
        bridge_ms=bridge * 20, monologue_pause_ms=pause * 20, interruption_min_ms=interruption * 20
    )
    tracks = {k: np.array(v, dtype=bool) for k, v in raw.items()}
    f = analyse(tracks, duration, params=p)
    want = oracle(raw, duration, p)

    assert (f.talk, f.overlap, f.silence) == (want["talk"], want["overlap"], want["silence"])
    assert (f.longest_silence, f.current_silence) == (
        want["longest_silence"],
        want["current_silence"],
    )
    for s in f.speakers:
        assert s.talk == want[s.key, "talk"]
        assert s.interruptions == want[s.key, "interruptions"]
        assert s.longest_monologue == want[s.key, "longest_monologue"]
        assert s.current_monologue == want[s.key, "current_monologue"]

    # The call is exactly talk plus silence; overlap is part of talk.
    assert f.talk + f.silence == f.duration == duration
    assert 0 <= f.overlap <= f.talk
    total = sum(s.talk for s in f.speakers)
    assert total >= f.talk + f.overlap
    if len(f.speakers) == 2:
        assert total == f.talk + f.overlap
    for s in f.speakers:
        others_union = analyse(
            {k: v for k, v in tracks.items() if k != s.key}, duration, params=p
        ).talk
        # A monologue has nobody else in it; a speaker's talk never exceeds the call.
        assert s.longest_monologue <= duration - others_union
        assert s.current_monologue <= s.longest_monologue
        assert s.talk <= duration
        assert sum(b - a for a, b in s.segments) == s.talk
        assert s.interruptions <= len(s.segments)
    assert sum(b - a for a, b in f.overlap_segments) == f.overlap
    assert f.current_silence <= f.longest_silence <= f.silence


@given(track=st.lists(st.booleans(), max_size=200), bridge=st.integers(0, 10))
def test_smoothing_only_adds_talk_and_keeps_runs_apart(track, bridge) -> None:
    t = np.array(track, dtype=bool)
    s = smooth(t, bridge)
    assert len(s) == len(t)
    assert not (t & ~s).any()  # nothing said is lost
    starts, ends = runs(s)
    if len(starts) > 1:
        assert ((starts[1:] - ends[:-1]) >= bridge).all()


@pytest.mark.parametrize("speakers", [1, 2, 3])
def test_a_two_hour_call_is_cheap_enough_to_recompute(speakers) -> None:
    """Not a timing test: a sanity check that two hours of frames are handled at all."""
    rng = np.random.default_rng(7)
    duration = 2 * 3600 * F
    tracks = {str(i): rng.random(duration) < 0.3 for i in range(speakers)}
    f = analyse(tracks, duration)
    assert f.talk + f.silence == duration


def test_a_hold_is_neither_silence_nor_dead_air() -> None:
    """Nobody talks from 2 s to 30 s; someone is on hold from 4 s to 28 s: 24 s of hold,
    4 s of silence, and the longest silence is the 2 s on either side of the hold."""
    second = FRAMES_PER_SECOND
    talk = track_from_intervals([(0, 2 * second), (30 * second, 32 * second)], 32 * second)
    held = track_from_intervals([(4 * second, 28 * second)], 32 * second)
    figures = analyse({"a": talk}, 32 * second, held=held)
    assert figures.hold == 24 * second
    assert figures.silence == 4 * second
    assert figures.talk + figures.hold + figures.silence == figures.duration
    assert figures.longest_silence == 2 * second
    on_hold_now = analyse({"a": talk[: 10 * second]}, 10 * second, held=held[: 10 * second])
    assert on_hold_now.current_silence == 0
    assert analyse({"a": talk}, 32 * second).silence == 28 * second  # without the hold
