"""The messages only a browser receives, and their builders.

A page receives the live events of ``streaming.events`` as they are (``call.updated``,
``caption.interim``, ``caption.final``, ``alert.fired``, ``calls.health``) and these: the
snapshot a socket starts with, and the analytics with their charts (``analytics`` whole when
the page opens, ``analytics.updated`` every second after). Every message a page can receive
is a type here or there; ``tests/dashboard/test_contract.py`` checks every builder's output
against its type.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

from dashboard import charts
from streaming.events import (
    ActionPayload,
    AlertFiredEvent,
    AlertPayload,
    AlertUpdatedEvent,
    AnalyticsPayload,
    CallActionEvent,
    CallParticipantEvent,
    CallPayload,
    CallsHealthEvent,
    CallUpdatedEvent,
    CaptionFinalEvent,
    CaptionInterimEvent,
    CaptionPayload,
    DtmfPayload,
    DtmfToneEvent,
    SentimentTrendPayload,
    SpeakerStatsPayload,
    SpeakingChangedEvent,
)


class TalkShare(TypedDict):
    key: str
    label: str
    role: str
    ratio: float


class WallSummary(TypedDict):
    """A call's talk ratio per speaker, alerts and teams, for the wall's first paint, and its
    alerts not yet resolved (newest first), for the wall's triage control."""

    talk: list[TalkShare]
    alerts: int
    latest_alert: AlertPayload | None  # so the alert's words survive a reload
    sentiment: SentimentTrendPayload
    unresolved: list[AlertPayload]
    teams: list[str]  # names of the teams whose addresses are on the call


class WallSnapshot(TypedDict):
    type: Literal["snapshot"]
    calls: list[CallPayload]
    summaries: dict[int, WallSummary]
    stuck_seconds: int
    ended_keep_seconds: int  # an ended call leaves the live list this long after it ended
    silence_seconds: int  # a live call silent this long needs attention
    teams: list[str]  # the teams the wall can be filtered by


class CallTeamsMessage(TypedDict):
    """The teams of a call the wall had not seen before (its snapshot has the others')."""

    type: Literal["call.teams"]
    call_id: int
    teams: list[str]


class CallSnapshot(TypedDict):
    type: Literal["snapshot"]
    resume: bool  # only what came after ``?after=<seq>``
    call: CallPayload | None
    captions: list[CaptionPayload]
    alerts: list[AlertPayload]
    actions: list[ActionPayload]  # supervisors' latest actions on the call, oldest first
    tones: list[DtmfPayload]
    last_seq: int
    low_confidence: float  # words below this confidence are marked


class AnalyticsSummary(TypedDict):
    """``AnalyticsPayload`` without its raw timeline: the charts carry it, drawn."""

    call_id: int
    source: str
    final: bool
    duration_ms: int
    talk_ms: int
    overlap_ms: int
    silence_ms: int
    hold_ms: int
    longest_silence_ms: int
    current_silence_ms: int
    interruptions: int
    speakers: list[SpeakerStatsPayload]


class AnalyticsMessage(TypedDict):
    """The figures and the three charts whole: when a call page opens."""

    type: Literal["analytics"]
    analytics: AnalyticsSummary
    charts: dict[str, Any]


class AnalyticsUpdateMessage(TypedDict):
    """The figures, two charts whole and the timeline's delta: every second of a live call."""

    type: Literal["analytics.updated"]
    analytics: AnalyticsSummary
    charts: dict[str, Any]


# What each page can receive, by the message's ``type``: the whole browser contract.
CALL_PAGE_MESSAGES: dict[str, type] = {
    "snapshot": CallSnapshot,
    "analytics": AnalyticsMessage,
    "analytics.updated": AnalyticsUpdateMessage,  # the layer's AnalyticsUpdatedEvent, drawn
    "call.updated": CallUpdatedEvent,
    "call.participant": CallParticipantEvent,
    "caption.interim": CaptionInterimEvent,
    "caption.final": CaptionFinalEvent,
    "dtmf.tone": DtmfToneEvent,
    "speaking.changed": SpeakingChangedEvent,
    "alert.fired": AlertFiredEvent,
    "alert.updated": AlertUpdatedEvent,
    "call.action": CallActionEvent,
}
WALL_MESSAGES: dict[str, type] = {
    "snapshot": WallSnapshot,
    "call.updated": CallUpdatedEvent,
    "call.participant": CallParticipantEvent,
    "speaking.changed": SpeakingChangedEvent,
    "alert.fired": AlertFiredEvent,
    "alert.updated": AlertUpdatedEvent,
    "calls.health": CallsHealthEvent,
    "call.teams": CallTeamsMessage,
}


def wall_snapshot(
    calls: list[CallPayload],
    summaries: dict[int, WallSummary],
    stuck_seconds: int,
    *,
    ended_keep_seconds: int = 300,
    silence_seconds: int = 10,
    teams: list[str] | None = None,
) -> WallSnapshot:
    return {
        "type": "snapshot",
        "calls": calls,
        "summaries": summaries,
        "stuck_seconds": stuck_seconds,
        "ended_keep_seconds": ended_keep_seconds,
        "silence_seconds": silence_seconds,
        "teams": teams or [],
    }


def call_teams(call_id: int, teams: list[str]) -> CallTeamsMessage:
    return {"type": "call.teams", "call_id": call_id, "teams": teams}


def call_snapshot(
    *,
    call: CallPayload | None,
    captions: list[CaptionPayload],
    alerts: list[AlertPayload],
    tones: list[DtmfPayload],
    last_seq: int,
    resume: bool,
    low_confidence: float,
    actions: list[ActionPayload] | None = None,
) -> CallSnapshot:
    return {
        "type": "snapshot",
        "resume": resume,
        "call": call,
        "captions": captions,
        "alerts": alerts,
        "actions": actions or [],
        "tones": tones,
        "last_seq": last_seq,
        "low_confidence": low_confidence,
    }


def _summary(analytics: AnalyticsPayload) -> AnalyticsSummary:
    return {
        "call_id": analytics["call_id"],
        "source": analytics["source"],
        "final": analytics["final"],
        "duration_ms": analytics["duration_ms"],
        "talk_ms": analytics["talk_ms"],
        "overlap_ms": analytics["overlap_ms"],
        "silence_ms": analytics["silence_ms"],
        "hold_ms": analytics["hold_ms"],
        "longest_silence_ms": analytics["longest_silence_ms"],
        "current_silence_ms": analytics["current_silence_ms"],
        "interruptions": analytics["interruptions"],
        "speakers": analytics["speakers"],
    }


def analytics_whole(analytics: AnalyticsPayload) -> AnalyticsMessage:
    return {
        "type": "analytics",
        "analytics": _summary(analytics),
        "charts": charts.figures(analytics),
    }


def analytics_update(analytics: AnalyticsPayload) -> AnalyticsUpdateMessage:
    return {
        "type": "analytics.updated",
        "analytics": _summary(analytics),
        "charts": charts.live_update(analytics),
    }


class LatestAnalytics:
    """Each call's latest live analytics message, encoded once for every page of the process.

    Every page watching a call gets the same ``analytics.updated`` once a second; building
    its charts and JSON once instead of once per page saves most of that work. A tick is
    known by the call's duration, whether it is final and where its timeline delta starts,
    which change from one to the next. A call's final tick is its last: its entry is dropped
    then, so the cache holds live calls only.
    """

    MAX_CALLS = 2000

    def __init__(self) -> None:
        self.latest: dict[int, tuple[tuple[int, bool, int], str]] = {}

    def text(self, analytics: AnalyticsPayload) -> str:
        key = (analytics["duration_ms"], analytics["final"], analytics["timeline"]["since_ms"])
        found = self.latest.get(analytics["call_id"])
        if found is not None and found[0] == key:
            return found[1]
        text = json.dumps(analytics_update(analytics))
        if analytics["final"]:
            self.latest.pop(analytics["call_id"], None)
            return text
        if len(self.latest) >= self.MAX_CALLS:
            self.latest.clear()
        self.latest[analytics["call_id"]] = (key, text)
        return text


LIVE_ANALYTICS = LatestAnalytics()
