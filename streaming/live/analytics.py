"""Talk-time analytics: who talked, for how long, over whom, and when nobody did.

Everything here is pure. A call is a set of *tracks*, one boolean per 20 ms frame per speaker
(True: that speaker is talking), from one of two sources:

* unmixed audio: each participant's frames, voiced or not (``TalkSecond.voiced_mask``);
* result timings: each final utterance's ``[offset, offset + duration)``, for mixed audio
  and for calls that carry only ACS transcription.

:func:`analyse` turns tracks into figures. The definitions, applied in this order:

1. **Smoothing.** A speaker's pauses shorter than ``bridge_ms`` (breaths, gaps between
   words) count as talking. Every figure below uses the smoothed tracks.
2. **Talk time** of a speaker: their talking frames. **Share**: talk time over the call's
   duration. **Ratio**: talk time over all speakers' talk time (ratios sum to 1).
3. **Overlap**: frames where two or more talk. **Hold**: frames where nobody talks and
   someone is on hold (from ``ParticipantsUpdated``). **Silence**: frames where nobody talks
   and nobody is on hold: a hold is waiting, not dead air. So
   ``talk (anyone) + hold + silence == duration`` and, with two speakers,
   ``talk(a) + talk(b) == talk (anyone) + overlap``.
4. **Monologue**: a stretch in which one speaker talks and nobody else does, their own
   pauses up to ``monologue_pause_ms`` included. It ends when anyone else talks or the
   pause grows longer.
5. **Interruption**: a speaker starts talking while another is already talking, and keeps
   talking for at least ``interruption_min_ms`` (a short "mm-hm" is not one). It is
   counted for the speaker who starts.
6. **Words per minute**: a speaker's final words over their talk time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streaming.units import FRAME_MS, FRAME_TICKS, FRAMES_PER_SECOND

Track = npt.NDArray[np.bool_]
Segments = list[tuple[int, int]]  # [start, end) in frames


@dataclass(frozen=True, slots=True)
class AnalyticsParams:
    bridge_ms: int = 300
    monologue_pause_ms: int = 1500
    interruption_min_ms: int = 600
    min_wpm_talk_ms: int = 3000  # below this much talk, words per minute is not shown

    @property
    def bridge(self) -> int:
        return max(0, self.bridge_ms // FRAME_MS)

    @property
    def monologue_pause(self) -> int:
        return max(0, self.monologue_pause_ms // FRAME_MS)

    @property
    def interruption_min(self) -> int:
        return max(1, self.interruption_min_ms // FRAME_MS)


DEFAULT_PARAMS = AnalyticsParams()


@dataclass(frozen=True, slots=True)
class SpeakerFigures:
    key: str
    talk: int  # frames
    segments: Segments
    longest_monologue: int
    current_monologue: int
    interruptions: int
    words: int
    current_monologue_start: int = -1  # frame where the current monologue began, -1: none


@dataclass(frozen=True, slots=True)
class CallFigures:
    duration: int  # frames
    talk: int  # frames with anyone talking
    overlap: int
    silence: int
    longest_silence: int
    current_silence: int
    speakers: tuple[SpeakerFigures, ...]
    overlap_segments: Segments = field(default_factory=list)
    hold: int = 0  # frames with nobody talking and someone on hold

    @property
    def interruptions(self) -> int:
        return sum(s.interruptions for s in self.speakers)

    def speaker(self, key: str) -> SpeakerFigures:
        for s in self.speakers:
            if s.key == key:
                return s
        raise KeyError(key)


# --- conversions -----------------------------------------------------------------------------


def frames_from_ticks(ticks: int) -> int:
    """Frame index holding tick ``ticks`` (floor)."""
    return max(0, ticks // FRAME_TICKS)


def ms(frames: int) -> int:
    return frames * FRAME_MS


def track_from_mask_seconds(seconds: Mapping[int, int], length: int | None = None) -> Track:
    """A track from per-second 50-bit voiced masks (``{second: voiced_mask}``)."""
    end = (max(seconds) + 1) * FRAMES_PER_SECOND if seconds else 0
    track = np.zeros(max(end, length or 0), dtype=np.bool_)
    for second, mask in seconds.items():
        if mask:
            track[second * FRAMES_PER_SECOND : (second + 1) * FRAMES_PER_SECOND] = mask_bits(mask)
    return track


_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(FRAMES_PER_SECOND, dtype=np.uint64))


def mask_bits(mask: int) -> Track:
    """The 50 frames of a second's voiced mask, bit *i* first to last."""
    return (np.uint64(mask) & _BIT_WEIGHTS) != 0


def track_from_intervals(intervals: list[tuple[int, int]], length: int = 0) -> Track:
    """A track from ``[start, end)`` frame intervals (overlapping intervals are fine)."""
    end = max([length, *(e for _, e in intervals)]) if intervals else length
    edges = np.zeros(end + 1, dtype=np.int32)
    for start, stop in intervals:
        if stop > start:
            edges[start] += 1
            edges[stop] -= 1
    return np.cumsum(edges[:-1]) > 0


# --- the figures -----------------------------------------------------------------------------


def runs(track: Track) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Starts and ends (exclusive) of the True runs of ``track``."""
    padded = np.concatenate(([False], track, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]


def _merge(
    starts: npt.NDArray[np.intp], ends: npt.NDArray[np.intp], keep_gap: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Merge consecutive runs wherever ``keep_gap`` (one entry per gap) is False."""
    if len(starts) < 2:
        return starts, ends
    return starts[np.concatenate(([True], keep_gap))], ends[np.concatenate((keep_gap, [True]))]


def smooth(track: Track, bridge: int) -> Track:
    """``track`` with every pause shorter than ``bridge`` frames filled in."""
    starts, ends = runs(track)
    if bridge <= 0 or len(starts) < 2:
        return track
    starts, ends = _merge(starts, ends, (starts[1:] - ends[:-1]) >= bridge)
    edges = np.zeros(len(track) + 1, dtype=np.int32)
    np.add.at(edges, starts, 1)
    np.add.at(edges, ends, -1)
    return np.cumsum(edges[:-1]) > 0


def _fit(track: Track, duration: int) -> Track:
    if len(track) >= duration:
        return track[:duration]
    return np.concatenate((track, np.zeros(duration - len(track), dtype=np.bool_)))


def analyse(
    tracks: Mapping[str, Track],
    duration: int,
    words: Mapping[str, int] | None = None,
    params: AnalyticsParams = DEFAULT_PARAMS,
    held: Track | None = None,
) -> CallFigures:
    """The figures of a call ``duration`` frames long; see the module docstring.

    ``held``: the frames in which someone is on hold.
    """
    duration = max(0, duration)
    words = words or {}
    keys = list(tracks)
    smoothed = {k: smooth(_fit(tracks[k], duration), params.bridge) for k in keys}
    count = np.zeros(duration, dtype=np.int16)
    for t in smoothed.values():
        count += t
    anyone = count > 0
    overlap_track = count >= 2
    talk_any = int(anyone.sum())
    on_hold = np.zeros(duration, dtype=np.bool_) if held is None else _fit(held, duration)
    waiting = on_hold & ~anyone
    quiet_starts, quiet_ends = runs(~anyone & ~on_hold)
    quiet_lengths = quiet_ends - quiet_starts
    longest_silence = int(quiet_lengths.max()) if len(quiet_lengths) else 0
    current_silence = (
        int(quiet_lengths[-1]) if len(quiet_ends) and quiet_ends[-1] == duration else 0
    )
    o_starts, o_ends = runs(overlap_track)
    speakers = tuple(
        _speaker(k, smoothed[k], count, duration, words.get(k, 0), params) for k in keys
    )
    return CallFigures(
        duration=duration,
        talk=talk_any,
        overlap=int(overlap_track.sum()),
        silence=duration - talk_any - int(waiting.sum()),
        longest_silence=longest_silence,
        current_silence=current_silence,
        speakers=speakers,
        overlap_segments=[(int(a), int(b)) for a, b in zip(o_starts, o_ends, strict=True)],
        hold=int(waiting.sum()),
    )


def _speaker(
    key: str,
    track: Track,
    count: npt.NDArray[np.int16],
    duration: int,
    words: int,
    params: AnalyticsParams,
) -> SpeakerFigures:
    starts, ends = runs(track)
    others = count - track  # how many others talk in each frame
    # Interruptions: a run that starts while someone else already talks and lasts long enough.
    interruptions = 0
    if len(starts):
        inner = starts > 0
        before = np.zeros(len(starts), dtype=bool)
        before[inner] = others[starts[inner] - 1] > 0
        at_start = others[np.minimum(starts, duration - 1)] > 0
        interruptions = int(
            np.count_nonzero(before & at_start & ((ends - starts) >= params.interruption_min))
        )
    # Monologues: runs where this speaker talks alone, joined across short pauses in which
    # nobody else talks.
    solo_starts, solo_ends = runs(track & (others == 0))
    longest = current = 0
    current_start = -1
    if len(solo_starts):
        others_cum = np.concatenate(([0], np.cumsum(others > 0)))
        gaps_other_talk = others_cum[solo_starts[1:]] - others_cum[solo_ends[:-1]]
        gaps = solo_starts[1:] - solo_ends[:-1]
        # Nobody else talks in the gap, so it is this speaker's own pause.
        joinable = (gaps_other_talk == 0) & (gaps <= params.monologue_pause)
        m_starts, m_ends = _merge(solo_starts, solo_ends, ~joinable)
        lengths = m_ends - m_starts
        longest = int(lengths.max())
        last_end = int(m_ends[-1])
        tail_quiet = duration - last_end
        if tail_quiet <= params.monologue_pause and others_cum[duration] == others_cum[last_end]:
            current = int(lengths[-1])
            current_start = int(m_starts[-1])
    return SpeakerFigures(
        key=key,
        talk=int(track.sum()),
        segments=[(int(a), int(b)) for a, b in zip(starts, ends, strict=True)],
        longest_monologue=longest,
        current_monologue=current,
        interruptions=interruptions,
        words=words,
        current_monologue_start=current_start,
    )


def overtalk_fraction(figures_overlap: Segments, start: int, end: int) -> float:
    """Share of ``[start, end)`` covered by overlap segments."""
    if end <= start:
        return 0.0
    covered = sum(max(0, min(b, end) - max(a, start)) for a, b in figures_overlap)
    return covered / (end - start)


def wpm(words: int, talk_frames: int, params: AnalyticsParams = DEFAULT_PARAMS) -> float | None:
    talk_ms = ms(talk_frames)
    if talk_ms < params.min_wpm_talk_ms or words == 0:  # no transcript, or too little talk
        return None
    return round(words * 60_000 / talk_ms, 1)


def segments_after(segments: Segments, since: int) -> Segments:
    """The segments that end after frame ``since`` (what a browser replaces)."""
    return [(a, b) for a, b in segments if b > since]
