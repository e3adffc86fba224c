"""The live calls of this process: talk-time figures, alerts and stream health, every second.

Each ingest socket attaches its call here (two sockets of one call share it). The audio
path reports completed talk seconds and stored finals. One task per process ticks every
live call once a second: it computes the call's figures (:mod:`streaming.live.analytics`),
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
from datetime import UTC, datetime

from django.conf import settings

from streaming import events, selectors, services
from streaming.db import db_call
from streaming.events import (
    AnalyticsPayload,
    CallPayload,
    CaptionPayload,
)
from streaming.live.alerts import (
    Firing,
    Rule,
    SaidFinal,
    dtmf_firings,
    keyword_firings,
    window_deadline_ms,
    window_firings,
)
from streaming.live.analytics import (
    frames_from_ticks,
    ms,
)
from streaming.live.call import MAX_CALL_FRAMES, SLACK_FRAMES, LiveCall
from streaming.tasks import LoopTask

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
TICK_SLICES = 10  # each call is ticked once a second, in one of this many slices of it
RULES_REFRESH_SECONDS = 15.0
FULL_TIMELINE_EVERY = 30  # ticks


class LiveRegistry:
    """The process's live calls and the task that ticks them."""

    def __init__(self) -> None:
        self.calls: dict[int, LiveCall] = {}
        self.rules: list[Rule] = []
        self.rules_at = float("-inf")
        self.ticker = LoopTask(self._run, "live call analytics")
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
        self.ticker.ensure()
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
        if ended_ms is not None:
            try:
                await self._decide_windows(live, ms(figures.duration), closing=True)
            except Exception:
                logger.exception("call %s: could not check the phrase-window rules", live.call_id)
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
        label = participant["label"] if participant else "an unknown speaker"
        role = participant["role"] if participant else "unknown"
        start_ms = ms(frames_from_ticks(caption["offset_ticks"] or 0))
        firings = keyword_firings(
            self.rules,
            text=caption["text"],
            speaker=participant["raw_id"] if participant else None,
            speaker_label=label,
            role=role,
            at_ms=start_ms,
            utterance=str(caption["utterance_id"]),
        )
        if participant is not None:
            firings += live.sentiment_watch.final(
                self.rules,
                key=participant["raw_id"],
                label=label,
                role=role,
                sentiment=caption["sentiment"],
                start_ms=start_ms,
                end_ms=start_ms + (caption["duration_ticks"] or 0) // 10_000,
                utterance=str(caption["utterance_id"]),
            )
        firings += window_firings(
            self.rules,
            [
                SaidFinal(
                    caption["text"],
                    participant["raw_id"] if participant else None,
                    label,
                    role,
                    start_ms,
                )
            ],
            duration_ms=None,
            closing=False,
        )
        await self._store(live, firings)

    async def tone_stored(self, live: LiveCall, tone: events.DtmfPayload) -> None:
        """A DTMF tone was stored: check the DTMF rules."""
        participant = tone["participant"]
        firings = dtmf_firings(
            self.rules,
            key=participant["raw_id"] if participant else None,
            label=participant["label"] if participant else "an unknown participant",
            role=participant["role"] if participant else "unknown",
            at_ms=ms(frames_from_ticks(tone["offset_ticks"] or 0)),
        )
        await self._store(live, firings)

    async def _decide_windows(
        self, live: LiveCall, duration_ms: int, *, closing: bool, only: set[int] | None = None
    ) -> None:
        """Decide phrase-window rules from the call's stored finals (all of them, so a stream
        that reconnected decides as the first one would have)."""
        rules = [r for r in self.rules if r.kind == "phrase_window"]
        if only is not None:
            rules = [r for r in rules if r.id in only]
        if not rules:
            return
        captions = await db_call(selectors.call_captions, call_id=live.call_id)
        finals = [
            SaidFinal(
                c["text"],
                c["participant"]["raw_id"] if c["participant"] else None,
                c["participant"]["label"] if c["participant"] else "an unknown speaker",
                c["participant"]["role"] if c["participant"] else "unknown",
                ms(frames_from_ticks(c["offset_ticks"] or 0)),
            )
            for c in captions
        ]
        await self._store(
            live, window_firings(rules, finals, duration_ms=duration_ms, closing=closing)
        )

    async def speaking(self, live: LiveCall, payload: events.SpeakingPayload | None) -> None:
        """Tell the call's page and the wall that someone started or stopped speaking."""
        if payload is not None:
            await events.asend_event(
                events.groups_for_call(live.call_id), events.speaking_changed(payload)
            )

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

    async def _refresh_holds(self) -> None:
        """Who is (or was) on hold on the live calls: one read a second for all of them.

        Holds arrive as Call Automation callbacks, on whichever worker took the request; the
        worker that holds the call's stream reads them here.
        """
        live = [c for c in self.calls.values() if not c.ended]
        if not live:
            return
        found = await db_call(selectors.live_holds, call_ids=[c.call_id for c in live])
        for call in live:
            state = found.get(call.call_id)
            if state is not None:
                call.set_holds(state.holds, state.origin)

    def rules_changed(self, **kwargs: object) -> None:
        """Reload the rules at the next tick (connected to ``AlertRule`` saves and deletes)."""
        self.rules_at = float("-inf")

    async def _refresh_rules(self) -> None:
        now = time.monotonic()
        if now - self.rules_at < RULES_REFRESH_SECONDS:
            return
        self.rules_at = now
        self.rules = [Rule.from_model(r) for r in await db_call(selectors.enabled_alert_rules)]

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
            try:
                await self._refresh_holds()
            except Exception:
                logger.exception("could not read the live calls' holds; keeping the previous ones")
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
            holds = live.current_holds(time.time())
            await self._store(live, live.watch.check(self.rules, figures, labels, roles, holds))
            due = {
                r.id
                for r in self.rules
                if (deadline := window_deadline_ms(r)) is not None
                and ms(figures.duration) >= deadline
                and r.id not in live.windows_decided
            }
            if due:
                live.windows_decided |= due
                await self._decide_windows(live, ms(figures.duration), closing=False, only=due)
            for key in live.stale_interim_speakers(now):
                await self.speaking(live, live.set_speaking(key, None, False, ms(figures.duration)))
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
    if duration_ms is not None:
        live.fixed_horizon = duration_ms // ms(1) + SLACK_FRAMES
    else:
        live.fixed_horizon = MAX_CALL_FRAMES
    live.seed(selectors.analytics_inputs(call_id=call_id), None, 0)
    live.opened = time.monotonic()  # no wall-clock time beyond what is stored
    figures = live.figures(live.opened, ended_ms=duration_ms)
    return live.payload(figures, final=final, full=True)
