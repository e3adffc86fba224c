"""The live calls of this process: talk-time figures, alerts and stream health, every second.

Each ingest socket attaches its call here (two sockets of one call share it). The audio
path reports completed talk seconds and stored finals. One task per process ticks every
live call once a second: it computes the call's figures (:mod:`streaming.analytics`),
checks the alert rules and sends ``analytics.updated`` to the call's pages. The calls are
dealt into ten slices ticked a tenth of a second apart, so the work (and the messages to
pages) is spread over the second instead of arriving as one burst that captions would
queue behind; the task also yields to the event loop after each call. Once a second it
sends one ``calls.health`` to the call wall and saves the figures that are due (every
few seconds per call) in one transaction.

When the last socket of a call closes, its final figures are computed and saved. A socket
that reconnects rebuilds the figures from what is stored (talk seconds and utterances), so
they go on where they stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from django.conf import settings

from streaming import events, selectors, services
from streaming.alerts import AlertWatch, Firing, Rule, keyword_firings
from streaming.analytics import (
    DEFAULT_PARAMS,
    FRAMES_PER_SECOND,
    CallFigures,
    Track,
    analyse,
    frames_from_ticks,
    mask_bits,
    ms,
    segments_after,
    wpm,
)
from streaming.audio import ActivitySecond
from streaming.db import db_call
from streaming.events import (
    AnalyticsPayload,
    CallPayload,
    CaptionPayload,
    HealthPayload,
    ParticipantPayload,
    SpeakerStatsPayload,
)
from streaming.packets import TICKS_PER_SECOND

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
TICK_SLICES = 10  # each call is ticked once a second, in one of this many slices of it
RULES_REFRESH_SECONDS = 15.0
TAIL_FRAMES = 30 * FRAMES_PER_SECOND  # each update re-sends at least the last 30 s
FULL_TIMELINE_EVERY = 30  # ticks
ROLE_ORDER = {"agent": 0, "customer": 1, "bot": 2}
# Timings past this are not plotted or counted as talk (a packet with a wild offset or
# timestamp must not make a call's figures, or this process's memory, enormous).
MAX_CALL_SECONDS = 24 * 3600
MAX_CALL_FRAMES = MAX_CALL_SECONDS * FRAMES_PER_SECOND


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
        seconds = [s for s in seconds if 0 <= s.second < MAX_CALL_SECONDS]
        if not seconds:
            return
        last = max(s.second for s in seconds)
        end = (last + 1) * FRAMES_PER_SECOND
        if heard_until is not None:
            end = min(end, max(heard_until, last * FRAMES_PER_SECOND))
        self.audio_end = max(self.audio_end, end)
        if not key:  # mixed audio says how long the call is, not who talks
            return
        self.speaker_seen(key, participant)
        track = self.audio_tracks.get(key)
        if track is None:
            track = self.audio_tracks[key] = GrowingTrack()
        for s in seconds:
            track.set_second(s.second, s.voiced_mask)
        self._dirty(min(s.second for s in seconds) * FRAMES_PER_SECOND)

    def add_utterance(self, key: str, start_ticks: int, end_ticks: int, words: int) -> None:
        start = frames_from_ticks(start_ticks)
        end = max(start + 1, -(-end_ticks // (TICKS_PER_SECOND // FRAMES_PER_SECOND)))
        if end > MAX_CALL_FRAMES:
            self.words[key] += words
            return
        track = self.utterance_tracks.get(key)
        if track is None:
            track = self.utterance_tracks[key] = GrowingTrack()
        track.set_span(start, end)
        self.words[key] += words
        self._dirty(start)

    def add_final(self, caption: CaptionPayload) -> None:
        """A stored final: its span is talk, its words count."""
        self._add_caption(caption, _word_count(caption))

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
        """Start from what earlier sockets of this call stored."""
        self.speakers.update(inputs.speakers)
        for key, seconds in inputs.masks.items():
            if seconds:
                self.audio_end = max(self.audio_end, (max(seconds) + 1) * FRAMES_PER_SECOND)
            if not key:
                continue
            track = self.audio_tracks[key] = GrowingTrack()
            for second, mask in seconds.items():
                track.set_second(second, mask)
        for key, start, end, words in inputs.utterances:
            self.add_utterance(key, start, end, words)
        if stored is not None:
            self.base_duration = stored["duration_ms"] // ms(1)
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
        else:  # results only: the call's clock
            duration = max([self.clock(now, wall), *(len(v) for v in views.values())])
        if ended_ms is not None:
            # Whole frames (floored), so whole seconds round as the call's duration does.
            duration = max(duration, ended_ms // ms(1))
        return analyse(views, duration, self.words, DEFAULT_PARAMS)

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
            {"key": s["key"], "label": s["label"], "role": s["role"], "ratio": s["ratio"]}
            for s in (payload["speakers"] if payload else [])
        ]
        return {
            "call_id": self.call_id,
            "frames_per_second": round(self.rate, 1),
            "last_packet_ms": int(silent_for * 1000),
            "caption_lag_ms": self.caption_lag_ms,
            "stuck": silent_for >= settings.CALLSITE_STUCK_SECONDS,
            "talk": talk,
            "alerts": self.alerts,
        }


def _word_count(caption: CaptionPayload) -> int:
    return len(caption["words"]) or len(caption["text"].split())


def _fallback_label(key: str) -> str:
    if key.startswith("speaker:"):
        return key.removeprefix("speaker:")
    return key or "Unknown speaker"


class LiveRegistry:
    """The process's live calls and the task that ticks them."""

    def __init__(self) -> None:
        self.calls: dict[int, LiveCall] = {}
        self.rules: list[Rule] = []
        self.rules_at = float("-inf")
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.next_slot = 0
        self.to_save: list[AnalyticsPayload] = []

    async def attach(self, call_id: int, label: str, started: datetime | None = None) -> LiveCall:
        """A socket of the call opened; ``started`` is the call's ``started_at``."""
        live = self.calls.get(call_id)
        if live is not None and not live.ended:
            live.refs += 1
            return live
        live = LiveCall(call_id, label, started.timestamp() if started else None)
        live.slot = self.next_slot
        self.next_slot = (self.next_slot + 1) % TICK_SLICES
        self.calls[call_id] = live
        try:
            await self._seed(live)
            await self._refresh_rules()
        except Exception:
            logger.exception("call %s: could not load earlier figures or alert rules", call_id)
        self._ensure_task()
        return live

    async def detach(self, live: LiveCall, call: CallPayload | None = None) -> None:
        """A socket of the call closed; the last one saves the final figures.

        ``call`` is the call as the closing left it: once it has ended, the figures last as
        long as the call.
        """
        live.refs -= 1
        if live.refs > 0:
            return
        live.ended = True
        if self.calls.get(live.call_id) is live:
            del self.calls[live.call_id]
        ended_ms = call["duration_ms"] if call and call["state"] == "ended" else None
        figures = live.figures(time.monotonic(), ended_ms=ended_ms)
        payload = live.payload(figures, final=True, full=True)
        await db_call(services.call_analytics_store, [payload])
        await events.asend_event(
            (events.call_group(live.call_id),), events.analytics_updated(payload)
        )

    async def final_stored(
        self, live: LiveCall, caption: CaptionPayload, speech_end: datetime | None
    ) -> None:
        """A final was stored and sent: count it, time it, check the keyword rules."""
        live.add_final(caption)
        if speech_end is not None:
            live.caption_lag_ms = max(
                0, int((datetime.now(UTC) - speech_end).total_seconds() * 1000)
            )
        participant = caption["participant"]
        firings = keyword_firings(
            self.rules,
            text=caption["text"],
            speaker=participant["raw_id"] if participant else None,
            speaker_label=participant["label"] if participant else "an unknown speaker",
            role=participant["role"] if participant else "unknown",
            at_ms=ms(frames_from_ticks(caption["offset_ticks"] or 0)),
            utterance=str(caption["utterance_id"]),
        )
        await self._store(live, firings)

    async def _store(self, live: LiveCall, firings: list[Firing]) -> None:
        for f in firings:
            try:
                stored = await db_call(
                    services.alert_record,
                    call_id=live.call_id,
                    rule_id=f.rule.id,
                    kind=f.rule.kind,
                    message=f.message,
                    at_ms=f.at_ms,
                    episode=f.episode,
                    participant_raw_id=f.speaker,
                )
            except Exception:
                logger.exception("call %s: could not store alert %r", live.call_id, f.message)
                continue
            if stored is not None:
                live.alerts += 1
                logger.info("call %s: alert: %s", live.call_id, f.message)

    async def _seed(self, live: LiveCall) -> None:
        inputs = await db_call(selectors.analytics_inputs, call_id=live.call_id)
        stored = await db_call(selectors.stored_analytics, call_id=live.call_id)
        alerts = await db_call(selectors.call_alert_count, call_id=live.call_id)
        live.seed(inputs, stored, alerts)

    def rules_changed(self, **kwargs: object) -> None:
        """Reload the rules at the next tick (connected to ``AlertRule`` saves and deletes)."""
        self.rules_at = float("-inf")

    async def _refresh_rules(self) -> None:
        now = time.monotonic()
        if now - self.rules_at < RULES_REFRESH_SECONDS:
            return
        self.rules_at = now
        self.rules = await db_call(selectors.active_alert_rules)

    def _ensure_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self._run(), name="live call analytics")

    async def _run(self) -> None:
        """Tick one slice of the calls every ``TICK_SECONDS / TICK_SLICES``, on a fixed beat.

        A sweep of every call at once is a burst of work (figures, alerts, one message per
        watching page) that captions queue behind; slices spread it over the second. A beat
        that fell behind by more than a second starts again from now instead of catching up.
        """
        loop = asyncio.get_running_loop()
        step = TICK_SECONDS / TICK_SLICES
        beat = loop.time()
        slot = 0
        while self.calls:
            beat += step
            delay = beat - loop.time()
            if delay < -TICK_SECONDS:
                beat, delay = loop.time(), 0.0
            await asyncio.sleep(max(0.0, delay))
            try:
                await self.tick(slot)
            except Exception:
                logger.exception("live call analytics: a tick failed")
            slot = (slot + 1) % TICK_SLICES

    async def tick(self, slot: int | None = None) -> None:
        """Figures and alerts for the live calls of ``slot`` (all of them: ``None``).

        The last slot of each second (and a tick of all calls) also sends the wall every live
        call's health and saves the figures that are due, each in one message or transaction.
        """
        if slot is None or slot == 0:
            try:
                await self._refresh_rules()
            except Exception:
                logger.exception("could not reload the alert rules; keeping the previous ones")
        save_every = settings.CALLSITE_ANALYTICS_SAVE_SECONDS
        for live in list(self.calls.values()):
            if live.ended or (slot is not None and live.slot != slot):
                continue
            now = time.monotonic()
            figures = live.figures(now)
            live.ticks += 1
            payload = live.payload(figures, final=False, full=live.ticks % FULL_TIMELINE_EVERY == 1)
            live.dirty_from = None
            live.last_payload = payload
            await events.asend_event(
                (events.call_group(live.call_id),), events.analytics_updated(payload)
            )
            labels = {k: v[0] for k, v in live.speakers.items()}
            roles = {k: v[1] for k, v in live.speakers.items()}
            await self._store(live, live.watch.check(self.rules, figures, labels, roles))
            if now - live.saved_at >= save_every:
                live.saved_at = now
                self.to_save.append(live.payload(figures, final=False, full=True))
            await asyncio.sleep(0)
        if slot is not None and slot != TICK_SLICES - 1:
            return
        now = time.monotonic()
        health = [
            live.health(now, live.last_payload) for live in self.calls.values() if not live.ended
        ]
        if health:
            await events.asend_event((events.OVERVIEW_GROUP,), events.calls_health(health))
        to_save, self.to_save = self.to_save, []
        if to_save:
            try:
                await db_call(services.call_analytics_store, to_save)
            except Exception:
                logger.exception("could not save the figures of %d live calls", len(to_save))


LIVE = LiveRegistry()


def analytics_from_history(
    *, call_id: int, final: bool, duration_ms: int | None = None
) -> AnalyticsPayload:
    """A call's figures rebuilt from its stored talk seconds and utterances (synchronous);
    ``duration_ms``: the ended call's duration."""
    live = LiveCall(call_id, f"call {call_id}")
    live.seed(selectors.analytics_inputs(call_id=call_id), None, 0)
    live.opened = time.monotonic()  # no wall-clock time beyond what is stored
    figures = live.figures(live.opened, ended_ms=duration_ms)
    return live.payload(figures, final=final, full=True)
