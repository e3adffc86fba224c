"""One live call in this process: its speakers' talk tracks, figures and stream health.

A ``LiveCall`` is fed by the call's streams (``streaming.ingest.stream``): completed talk
seconds of unmixed audio, the seconds still being filled (read at every tick), interim
results and stored finals. Its figures are computed by ``streaming.live.analytics``; its
clock is the call's (see :class:`LiveCall`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from django.conf import settings

from streaming import selectors
from streaming.audio.timeline import ActivitySecond
from streaming.events import (
    AnalyticsPayload,
    CaptionPayload,
    HealthPayload,
    ParticipantPayload,
    SentimentTrendPayload,
    SpeakerStatsPayload,
    SpeakingPayload,
)
from streaming.live.alerts import AlertWatch, SentimentWatch
from streaming.live.analytics import (
    DEFAULT_PARAMS,
    CallFigures,
    Track,
    analyse,
    frames_from_ticks,
    mask_bits,
    ms,
    segments_after,
    track_from_intervals,
    wpm,
)
from streaming.metrics import INGEST
from streaming.sentiment import sentiment_value
from streaming.units import FRAME_TICKS, FRAMES_PER_SECOND, MAX_CALL_SECONDS

logger = logging.getLogger(__name__)

TAIL_FRAMES = 30 * FRAMES_PER_SECOND  # each update re-sends at least the last 30 s
ROLE_ORDER = {"agent": 0, "customer": 1, "bot": 2}
# Timings past this are not plotted or counted as talk (a packet with a wild offset or
# timestamp must not make a call's figures, or this process's memory, enormous).
MAX_CALL_FRAMES = MAX_CALL_SECONDS * FRAMES_PER_SECOND
# Speakers one call's figures follow: more are counted out, with a logged reason, so a stream
# of made-up speakers cannot make every tick (and the worker's memory) grow with them.
MAX_LIVE_SPEAKERS = 32
# How far past the call's clock (or the audio heard) a timing may reach and still be talk:
# results come late, never a minute early; a wild offset is not the call's length.
SLACK_FRAMES = 60 * FRAMES_PER_SECOND
TREND_FINALS = selectors.SENTIMENT_TREND  # finals in a call's sentiment trend
# Speaking known from interim results ends with the final, or after this long without news.
INTERIM_SPEAKING_SECONDS = 3.0
HoldPeriods = Mapping[str, Sequence[Sequence[str | None]]]  # key -> [[start, end|None], ...]


def _epoch(text: str | None) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class GrowingTrack:
    """A speaker's talking frames, growing as the call goes on."""

    __slots__ = ("data", "length")

    def __init__(self) -> None:
        self.data: Track = np.zeros(64 * FRAMES_PER_SECOND, dtype=np.bool_)
        self.length = 0

    def _ensure(self, end: int) -> None:
        if end > len(self.data):
            grown = np.zeros(max(end, 2 * len(self.data)), dtype=np.bool_)
            grown[: self.length] = self.data[: self.length]
            self.data = grown
        self.length = max(self.length, end)

    def set_second(self, second: int, mask: int) -> None:
        start = second * FRAMES_PER_SECOND
        self._ensure(start + FRAMES_PER_SECOND)
        self.data[start : start + FRAMES_PER_SECOND] = mask_bits(mask)

    def set_span(self, start: int, end: int) -> None:
        self._ensure(end)
        if end > start:
            self.data[start:end] = True

    def view(self) -> Track:
        return self.data[: self.length]


class PartialAudio(Protocol):
    """An audio path's seconds still being filled (see ``CallAudio.partial``)."""

    def partial(self) -> Iterable[tuple[str, ParticipantPayload | None, list[ActivitySecond], int]]:
        """(stream key, participant, open seconds, position in ticks) per stream."""
        ...


class LiveCall:
    """One live call's figures, alert state and stream health, in this process.

    Its clock is the call's: ``started`` (epoch seconds, the call's ``started_at``) to now,
    the same clock every page, export and API shows. Audio calls are measured up to the
    newest frame heard, seconds still being filled included, so the figures neither lag the
    call nor count audio not yet received as silence.
    """

    def __init__(self, call_id: int, label: str, started: float | None = None) -> None:
        self.call_id = call_id
        self.label = label
        self.started = started
        self.audio_paths: list[PartialAudio] = []
        self.refs = 1
        self.audio_tracks: dict[str, GrowingTrack] = {}
        self.utterance_tracks: dict[str, GrowingTrack] = {}
        self.words: Counter[str] = Counter()
        self.speakers: dict[str, tuple[str, str]] = {}  # key -> (label, role)
        self.audio_end = 0  # frames covered by completed talk seconds of any stream
        self.base_duration = 0  # frames already seen by earlier sockets of this call
        self.opened = time.monotonic()
        self.packets = 0
        self.packets_seen = 0
        self.last_packet = self.opened
        self.rate = 0.0
        self.rate_at = self.opened
        self.caption_lag_ms: int | None = None
        self.dirty_from: int | None = 0
        self.ticks = 0
        self.slot = 0  # which slice of each second ticks this call
        self.last_payload: AnalyticsPayload | None = None
        self.alerts = 0
        self.watch = AlertWatch()
        self.saved_at = 0.0
        self.ended = False
        self.fixed_horizon: int | None = None  # a finished call's: its length
        self.counted_out: set[str] = set()  # speakers and timings past the bounds, logged once
        self.origin: float | None = None  # epoch seconds of tick 0 of the call's timeline
        self.holds: dict[str, list[tuple[float, float | None]]] = {}  # key -> [(start, end)]
        self.speaking: dict[str, bool] = {}
        self.interim_speaking: dict[str, float] = {}  # key -> monotonic time of its last interim
        self.sentiments: deque[float] = deque(maxlen=TREND_FINALS)
        self.latest_sentiment: str | None = None
        self.sentiment_watch = SentimentWatch()
        # Phrase-window rules this process has decided on the live call (by rule id).
        self.windows_decided: set[int] = set()

    # --- holds, speaking, sentiment ----------------------------------------------------------

    def set_holds(self, periods: HoldPeriods, origin: datetime | None = None) -> None:
        """The participants' hold periods as stored (ISO times), and the timeline's origin."""
        if origin is not None:
            self.origin = origin.timestamp()
        holds: dict[str, list[tuple[float, float | None]]] = {}
        for key, rows in periods.items():
            kept = []
            for row in rows:
                start = _epoch(row[0]) if len(row) == 2 else None
                if start is not None:
                    kept.append((start, _epoch(row[1])))
            if kept:
                holds[key] = kept
        self.holds = holds

    def held_track(self, duration: int) -> Track | None:
        """The frames in which someone is on hold (None: nobody ever was)."""
        origin = self.origin if self.origin is not None else self.started
        if not self.holds or origin is None:
            return None
        intervals = []
        for periods in self.holds.values():
            for start, end in periods:
                a = max(0, int((start - origin) * FRAMES_PER_SECOND))
                # A hold that goes on lasts to the end of what is known of the call.
                b = duration if end is None else int((end - origin) * FRAMES_PER_SECOND)
                if b > a:
                    intervals.append((min(a, duration), min(b, duration)))
        return track_from_intervals(intervals, duration)

    def current_holds(self, wall: float) -> dict[str, tuple[datetime, int, int]]:
        """Who is on hold now: key -> (since, held ms, where it started on the timeline, ms)."""
        origin = self.origin if self.origin is not None else self.started
        found = {}
        for key, periods in self.holds.items():
            start, end = periods[-1]
            if end is None:
                since = datetime.fromtimestamp(start, UTC)
                start_ms = max(0, round((start - origin) * 1000)) if origin is not None else 0
                found[key] = (since, max(0, round((wall - start) * 1000)), start_ms)
        return found

    def set_speaking(
        self, key: str, participant: ParticipantPayload | None, speaking: bool, at_ms: int
    ) -> SpeakingPayload | None:
        """Whether ``key`` speaks now; the payload to send when that changed."""
        if not key or self.speaking.get(key, False) == speaking:
            return None
        self.speaking[key] = speaking
        self.speaker_seen(key, participant)
        label, role = self.speakers.get(key, (_fallback_label(key), "unknown"))
        return {
            "call_id": self.call_id,
            "key": key,
            "label": label,
            "role": role,
            "speaking": speaking,
            "at_ms": max(0, at_ms),
        }

    def stale_interim_speakers(self, now: float) -> list[str]:
        """Speakers known to speak from interims whose results stopped without a final."""
        stale = [
            k for k, at in self.interim_speaking.items() if now - at >= INTERIM_SPEAKING_SECONDS
        ]
        for key in stale:
            del self.interim_speaking[key]
        return stale

    def sentiment_seen(self, caption: CaptionPayload) -> None:
        value = sentiment_value(caption["sentiment"], caption["sentiment_score"])
        if value is not None:
            self.sentiments.append(value)
            self.latest_sentiment = caption["sentiment"]

    def sentiment_trend(self) -> SentimentTrendPayload:
        return {"latest": self.latest_sentiment, "trend": [round(v, 3) for v in self.sentiments]}

    # --- inputs ----------------------------------------------------------------------------

    def speaker_seen(self, key: str, participant: ParticipantPayload | None) -> None:
        if key and participant is not None:
            self.speakers[key] = (participant["label"], participant["role"])

    def add_activity(
        self,
        key: str,
        participant: ParticipantPayload | None,
        seconds: Sequence[ActivitySecond],
        heard_until: int | None = None,
    ) -> None:
        """Talk seconds of one stream (``""``: mixed audio), heard up to ``heard_until``
        (frames; by default the end of the last second: a completed second)."""
        horizon = self.horizon()
        seconds = [s for s in seconds if s.second >= 0 and s.second * FRAMES_PER_SECOND <= horizon]
        if not seconds:
            return
        last = max(s.second for s in seconds)
        end = (last + 1) * FRAMES_PER_SECOND
        if heard_until is not None:
            end = min(end, max(heard_until, last * FRAMES_PER_SECOND))
        self.audio_end = max(self.audio_end, end)
        if not key:  # mixed audio says how long the call is, not who talks
            return
        track = self._track(self.audio_tracks, key)
        if track is None:
            return
        self.speaker_seen(key, participant)
        for s in seconds:
            track.set_second(s.second, s.voiced_mask)
        self._dirty(min(s.second for s in seconds) * FRAMES_PER_SECOND)

    def add_utterance(self, key: str, start_ticks: int, end_ticks: int, words: int) -> None:
        start = frames_from_ticks(start_ticks)
        end = max(start + 1, -(-end_ticks // FRAME_TICKS))
        self.words[key] += words
        if end > self.horizon():
            self._count_out(f"timing:{key}", f"a result ending at {ms(end)} ms")
            return
        track = self._track(self.utterance_tracks, key)
        if track is None:
            return
        track.set_span(start, end)
        self._dirty(start)

    def horizon(self) -> int:
        """The last frame a timing may reach: the call so far (its clock, or the audio heard)
        and a minute of slack; for a finished call, its length."""
        if self.fixed_horizon is not None:
            return self.fixed_horizon
        return min(
            MAX_CALL_FRAMES, max(self.clock(time.monotonic()), self.audio_end) + SLACK_FRAMES
        )

    def _track(self, tracks: dict[str, GrowingTrack], key: str) -> GrowingTrack | None:
        track = tracks.get(key)
        if track is None:
            if len(self.audio_tracks) + len(self.utterance_tracks) >= MAX_LIVE_SPEAKERS:
                self._count_out(f"speaker:{key}", f"speaker past the {MAX_LIVE_SPEAKERS} followed")
                return None
            track = tracks[key] = GrowingTrack()
        return track

    def _count_out(self, what: str, why: str) -> None:
        """Something past the figures' bounds: counted, and logged once per call."""
        INGEST.capped += 1
        if not self.counted_out:
            logger.warning("%s: live figures leave out %s (and any more like it)", self.label, why)
        if len(self.counted_out) < MAX_LIVE_SPEAKERS:
            self.counted_out.add(what)

    def add_final(self, caption: CaptionPayload) -> None:
        """A stored final: its span is talk, its words count, its sentiment is the trend's."""
        self._add_caption(caption, _word_count(caption))
        self.sentiment_seen(caption)

    def add_interim(self, caption: CaptionPayload) -> None:
        """Speech in progress (an interim result): its span is talk before its final comes.

        A turn is known from finals only once it ends; without this, every turn longer than
        the dead-air limit would look like silence while it is being spoken.
        """
        if caption["offset_ticks"] is not None:
            self._add_caption(caption, 0)

    def _add_caption(self, caption: CaptionPayload, words: int) -> None:
        participant = caption["participant"]
        key = participant["raw_id"] if participant else ""
        self.speaker_seen(key, participant)
        start = caption["offset_ticks"]
        if start is None:
            self.words[key] += words
            return
        self.add_utterance(key, start, start + (caption["duration_ticks"] or 0), words)

    def _dirty(self, frame: int) -> None:
        self.dirty_from = frame if self.dirty_from is None else min(self.dirty_from, frame)

    def seed(
        self, inputs: selectors.AnalyticsInputs, stored: AnalyticsPayload | None, alerts: int
    ) -> None:
        """Start from what earlier sockets of this call stored, within the same bounds."""
        self.speakers.update(inputs.speakers)
        self.set_holds(inputs.holds, inputs.origin)
        self.sentiments.extend(inputs.sentiments)
        if stored is not None:
            self.base_duration = stored["duration_ms"] // ms(1)
        horizon = self.horizon()
        for key, seconds in inputs.masks.items():
            kept = {s: m for s, m in seconds.items() if s * FRAMES_PER_SECOND <= horizon}
            if not kept:
                continue
            self.audio_end = max(self.audio_end, (max(kept) + 1) * FRAMES_PER_SECOND)
            track = self._track(self.audio_tracks, key) if key else None
            if track is None:  # mixed audio, or a speaker past the bound
                continue
            for second, mask in kept.items():
                track.set_second(second, mask)
        for key, start, end, words in inputs.utterances:
            self.add_utterance(key, start, end, words)
        self.alerts = alerts

    # --- outputs ---------------------------------------------------------------------------

    @property
    def source(self) -> str:
        if self.audio_tracks:
            return "audio"
        return "utterances" if self.utterance_tracks else "none"

    def clock(self, now: float, wall: float | None = None) -> int:
        """Frames since the call started by the call's clock (``wall``: epoch seconds)."""
        if self.started is None:  # not known: from when this process saw the call
            return self.base_duration + int((now - self.opened) * FRAMES_PER_SECOND)
        elapsed = (time.time() if wall is None else wall) - self.started
        return max(0, int(elapsed * FRAMES_PER_SECOND))

    def figures(
        self, now: float, *, wall: float | None = None, ended_ms: int | None = None
    ) -> CallFigures:
        """The figures so far; ``ended_ms``: the call has ended and lasted this long."""
        for audio in self.audio_paths:
            for key, participant, seconds, position in audio.partial():
                self.add_activity(key, participant, seconds, frames_from_ticks(position))
        tracks = self.audio_tracks or self.utterance_tracks
        views = {k: t.view() for k, t in tracks.items()}
        if self.audio_end:  # audio: as far as it has been heard
            duration = max(self.audio_end, self.base_duration)
            if not self.audio_tracks:  # mixed audio: a result may end a little past it
                duration = max([duration, *(len(v) for v in views.values())])
        else:  # results only: the call's clock, or its length once it has ended
            clock = self.clock(now, wall) if ended_ms is None else ended_ms // ms(1)
            duration = max([clock, *(len(v) for v in views.values())])
        if ended_ms is not None:
            # Whole frames (floored), so whole seconds round as the call's duration does.
            duration = max(duration, ended_ms // ms(1))
        held = self.held_track(duration)
        return analyse(views, duration, self.words, DEFAULT_PARAMS, held)

    def payload(self, figures: CallFigures, *, final: bool, full: bool) -> AnalyticsPayload:
        d = figures.duration
        if full or self.dirty_from is None:
            since = 0 if full else max(0, d - TAIL_FRAMES)
        else:
            since = max(0, min(self.dirty_from - DEFAULT_PARAMS.bridge - 1, d - TAIL_FRAMES))
        total_talk = sum(s.talk for s in figures.speakers)
        speakers: list[SpeakerStatsPayload] = []
        rows: dict[str, list[list[int]]] = {}
        for s in figures.speakers:
            label, role = self.speakers.get(s.key, (_fallback_label(s.key), "unknown"))
            speakers.append(
                {
                    "key": s.key,
                    "label": label,
                    "role": role,
                    "talk_ms": ms(s.talk),
                    "share": round(s.talk / d, 4) if d else 0.0,
                    "ratio": round(s.talk / total_talk, 4) if total_talk else 0.0,
                    "longest_monologue_ms": ms(s.longest_monologue),
                    "current_monologue_ms": ms(s.current_monologue),
                    "interruptions": s.interruptions,
                    "words": s.words,
                    "wpm": wpm(s.words, s.talk),
                    "speaking": not final and self.speaking.get(s.key, False),
                }
            )
            rows[s.key] = [[ms(a), ms(b)] for a, b in segments_after(s.segments, since)]
        rows["overlap"] = [
            [ms(a), ms(b)] for a, b in segments_after(figures.overlap_segments, since)
        ]
        speakers.sort(key=lambda p: ROLE_ORDER.get(p["role"], 3))
        return {
            "call_id": self.call_id,
            "source": self.source,
            "final": final,
            "duration_ms": ms(d),
            "talk_ms": ms(figures.talk),
            "overlap_ms": ms(figures.overlap),
            "silence_ms": ms(figures.silence),
            "hold_ms": ms(figures.hold),
            "longest_silence_ms": ms(figures.longest_silence),
            "current_silence_ms": 0 if final else ms(figures.current_silence),
            "interruptions": figures.interruptions,
            "speakers": speakers,
            "timeline": {"since_ms": ms(since), "rows": rows},
        }

    def health(self, now: float, payload: AnalyticsPayload | None) -> HealthPayload:
        if self.packets != self.packets_seen:
            self.last_packet = now
        elapsed = now - self.rate_at
        if elapsed >= 0.5:
            fresh = (self.packets - self.packets_seen) / elapsed
            self.rate = fresh if self.rate == 0 else 0.5 * self.rate + 0.5 * fresh
            self.rate_at = now
        self.packets_seen = self.packets
        silent_for = now - self.last_packet
        talk = [
            {
                "key": s["key"],
                "label": s["label"],
                "role": s["role"],
                "ratio": s["ratio"],
                "speaking": self.speaking.get(s["key"], False),
                "current_monologue_ms": s["current_monologue_ms"],
            }
            for s in (payload["speakers"] if payload else [])
        ]
        return {
            "call_id": self.call_id,
            "frames_per_second": round(self.rate, 1),
            "last_packet_ms": int(silent_for * 1000),
            "caption_lag_ms": self.caption_lag_ms,
            "current_silence_ms": payload["current_silence_ms"] if payload else 0,
            "stuck": silent_for >= settings.CALLSITE_STUCK_SECONDS,
            "talk": talk,
            "alerts": self.alerts,
            "sentiment": self.sentiment_trend(),
        }


def _word_count(caption: CaptionPayload) -> int:
    return len(caption["words"]) or len(caption["text"].split())


def _fallback_label(key: str) -> str:
    if key.startswith("speaker:"):
        return key.removeprefix("speaker:")
    return key or "Unknown speaker"
