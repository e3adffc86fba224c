"""The live event contract between ingest and supervisors' browsers.

Every event that crosses the channel layer is declared here as a ``TypedDict`` with a
``Literal`` type, built by a function here and sent through :func:`send_event` or
:func:`asend_event`. The ``type`` maps to a consumer handler (``caption.final`` ->
``caption_final``) and is forwarded unchanged to the browser.

The channel layer is best-effort (``group_send`` drops silently when a channel is full), so
events are deltas that are safe to apply twice, and a browser re-syncs from a database
snapshot whenever it (re)connects. Stored results are always sent after the transaction that
stored them commits.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

OVERVIEW_GROUP = "calls.overview"


def call_group(call_id: int) -> str:
    """The group that receives one call's captions and state changes."""
    return f"call.{int(call_id)}"


def streams_group(call_id: int) -> str:
    """The group of every media socket of a call, whichever worker holds it: what a
    supervisor asks of its audio (pause for payment, listening) goes there."""
    return f"call.{int(call_id)}.streams"


def listen_group(call_id: int) -> str:
    """The group of the sockets listening to a call's audio live."""
    return f"call.{int(call_id)}.listen"


class ParticipantPayload(TypedDict):
    id: int
    raw_id: str
    label: str  # the display name ACS gave, else one made from the raw id
    role: str
    kind: str
    is_muted: bool
    is_on_hold: bool
    in_call: bool
    invitation: str  # Invitation: "" unless Callsite added them; invited, joined, failed...
    held_since: str | None  # ISO time the current hold began (pages count on from it)
    hold_ms: int  # finished holds, in all
    longest_hold_ms: int
    muted_since: str | None  # ISO time the current mute began
    mute_ms: int  # finished mutes, in all
    longest_mute_ms: int
    # [[start ISO, end ISO or null], ...]: the holds and mutes, for the call's timeline
    hold_periods: list[list[str | None]]
    mute_periods: list[list[str | None]]


class ProblemPayload(TypedDict):
    """A failure Call Automation reported (or an action that failed), for the call page."""

    type: str
    code: int | None
    subcode: int | None
    message: str
    at: str


class ActionPayload(TypedDict):
    """A supervisor's action on a call and where it stands (the audit trail's row)."""

    id: int
    call_id: int
    action: str  # the action's slug: "hold", "add-participant", "start-recording"...
    label: str
    user: str
    target: str  # the participant's raw id, "" for the whole call
    request: dict[str, object]
    status: str  # ActionStatus: pending, accepted, succeeded, failed, refused, cancelled
    settled: bool
    outcome: str
    at: str
    settled_at: str | None


class CallPayload(TypedDict):
    id: int
    connection_id: str | None
    state: str
    managed: bool
    origin: str  # CallOrigin: "" (streamed to Callsite), answered, room, placed
    room_id: str
    recording_state: str  # RecordingState: "" (not recording), starting, active, paused...
    # Paused for payment since (ISO time): audio neither recorded nor recognized; None if not
    secure_pause_since: str | None
    # Every pause for payment: [start, end] ISO times, end None while it goes on
    secure_pause_periods: list[list[str | None]]
    bidirectional: bool
    caller: str
    caller_display_name: str
    callee: str
    media_state: str
    transcription_state: str
    transcript_source: str
    locale: str
    # What ACS transcription was asked for (TranscriptionMetadata): see Call.transcription_options
    transcription_options: dict[str, object]
    started_at: str | None
    ended_at: str | None
    end_reason: str  # CallEndReason: "" while the call goes on
    # The call's length by the server's clock: ended_at - started_at, or up to when this was
    # built while the call goes on (pages count on from there); None before it started.
    duration_ms: int | None
    # ISO time of 0:00 on the call's timeline (its first audio frame, else its start): where
    # utterance offsets, holds and mutes are placed
    timeline_origin: str | None
    participants: list[ParticipantPayload]
    problems: list[ProblemPayload]


class WordPayload(TypedDict):
    text: str
    offset: int | None
    duration: int | None
    confidence: float | None


class CaptionPayload(TypedDict):
    call_id: int
    utterance_id: int | None
    participant: ParticipantPayload | None
    text: str
    confidence: float | None
    offset_ticks: int | None
    duration_ticks: int | None
    words: list[WordPayload]
    final: bool
    seq: int | None  # finals: order among the call's stored events; interims: None
    sentiment: str | None  # positive, neutral, negative or mixed; None: not known
    sentiment_score: float | None  # the lexicon scorer's compound score, -1..1
    sentiment_source: str | None  # "acs" or "lexicon"
    language: str | None  # the language ACS identified
    redacted: bool | None  # PII/PCI masked (None: redaction off)


class DtmfPayload(TypedDict):
    """A DTMF tone a participant pressed; ``tone`` is masked unless CALLSITE_DTMF_DIGITS=keep."""

    call_id: int
    event_id: int
    seq: int | None
    participant: ParticipantPayload | None
    tone: str
    masked: bool
    at: str | None  # ACS's timestamp of the tone
    offset_ticks: int | None  # where on the call's timeline, when known


class SpeakingPayload(TypedDict):
    """Whether a participant is speaking now, sent when it changes (from audio frames or,
    for transcript-driven calls, from interim results)."""

    call_id: int
    key: str  # participant raw id
    label: str
    role: str
    speaking: bool
    at_ms: int  # where on the call's timeline the change happened


class SpeakerStatsPayload(TypedDict):
    """One speaker's talk-time figures so far."""

    key: str  # participant raw id ("speaker:Guest-1" for a diarized speaker of mixed audio)
    label: str
    role: str
    talk_ms: int
    share: float  # of the call's duration, 0..1
    ratio: float  # of all talk (the talk ratio), 0..1; the speakers' ratios sum to 1
    longest_monologue_ms: int
    current_monologue_ms: int  # 0 unless this speaker holds the floor right now
    interruptions: int  # times this speaker started while another was talking
    words: int
    wpm: float | None  # words per minute of their own talk time; None before any talk
    speaking: bool  # speaking right now (live calls)


class TimelinePayload(TypedDict):
    """Who spoke when, as [start_ms, end_ms) segments per row.

    Rows are keyed by speaker key, plus ``"overlap"`` for stretches with two or more talking.
    A browser drops its segments of each row that end after ``since_ms`` and appends these:
    ``since_ms == 0`` is the whole timeline.
    """

    since_ms: int
    rows: dict[str, list[list[int]]]


class AnalyticsPayload(TypedDict):
    """A call's live (or final) talk-time analytics; every figure is for the whole call so far."""

    call_id: int
    source: str  # "audio" (unmixed frames), "utterances" (result timings) or "none"
    final: bool  # the call has ended and these are its stored figures
    duration_ms: int
    talk_ms: int  # someone talking
    overlap_ms: int  # two or more talking
    silence_ms: int  # nobody talking and nobody on hold
    hold_ms: int  # someone on hold
    longest_silence_ms: int
    current_silence_ms: int
    interruptions: int
    speakers: list[SpeakerStatsPayload]
    timeline: TimelinePayload


class AlertPayload(TypedDict):
    id: int
    call_id: int
    seq: int | None
    kind: str
    rule: str
    message: str
    at_ms: int
    speaker: str | None  # participant raw id the alert is about
    fired_at: str
    state: str  # "open", "acknowledged" or "resolved"
    acknowledged_by: str | None  # the supervisor's name
    acknowledged_at: str | None
    resolved_by: str | None
    resolved_at: str | None
    note: str


class HealthPayload(TypedDict):
    """How one live call's stream is doing, as its ingest process sees it."""

    call_id: int
    frames_per_second: float  # packets received over the last few seconds
    last_packet_ms: int  # age of the newest packet
    caption_lag_ms: int | None  # speech end to supervisors, newest final
    current_silence_ms: int  # nobody talking (holds excluded) up to now
    stuck: bool  # connected, but no packet for CALLSITE_STUCK_SECONDS
    # [{key, label, role, ratio, speaking, current_monologue_ms}] per speaker
    talk: list[dict[str, object]]
    alerts: int
    sentiment: SentimentTrendPayload


class SentimentTrendPayload(TypedDict):
    """A call's sentiment so far: its latest final's, and the trend of its recent finals."""

    latest: str | None
    trend: list[float]  # the last finals' values, oldest first: -1 (negative) to 1


class CallUpdatedEvent(TypedDict):
    type: Literal["call.updated"]
    call: CallPayload


class CallParticipantEvent(TypedDict):
    """A participant joined the call (or changed): a delta, so a call with many participants
    is not re-sent whole for each of them."""

    type: Literal["call.participant"]
    call_id: int
    participant: ParticipantPayload


class CaptionInterimEvent(TypedDict):
    type: Literal["caption.interim"]
    caption: CaptionPayload


class CaptionFinalEvent(TypedDict):
    type: Literal["caption.final"]
    caption: CaptionPayload


class DtmfToneEvent(TypedDict):
    type: Literal["dtmf.tone"]
    tone: DtmfPayload


class SpeakingChangedEvent(TypedDict):
    type: Literal["speaking.changed"]
    speaking: SpeakingPayload


class AnalyticsUpdatedEvent(TypedDict):
    type: Literal["analytics.updated"]
    analytics: AnalyticsPayload


class AlertFiredEvent(TypedDict):
    type: Literal["alert.fired"]
    alert: AlertPayload


class AlertUpdatedEvent(TypedDict):
    """An alert was acknowledged, resolved or opened again: replaces the one with its id."""

    type: Literal["alert.updated"]
    alert: AlertPayload


class CallsHealthEvent(TypedDict):
    type: Literal["calls.health"]
    calls: list[HealthPayload]


class CallActionEvent(TypedDict):
    """A supervisor action was asked for, or its outcome came: replaces the one with its id."""

    type: Literal["call.action"]
    action: ActionPayload


Event = (
    CallUpdatedEvent
    | CallParticipantEvent
    | CaptionInterimEvent
    | CaptionFinalEvent
    | DtmfToneEvent
    | SpeakingChangedEvent
    | AnalyticsUpdatedEvent
    | AlertFiredEvent
    | AlertUpdatedEvent
    | CallsHealthEvent
    | CallActionEvent
)

# Each event, and the groups it is sent to: "call" is ``call_group(id)``, a call page's;
# "overview" is ``OVERVIEW_GROUP``, the call wall's. The consumers of a group handle every
# event sent to it (tests/dashboard/test_contract.py checks both ways).
EVENT_GROUPS: dict[type, tuple[str, ...]] = {
    CallUpdatedEvent: ("call", "overview"),
    CallParticipantEvent: ("call", "overview"),
    CaptionInterimEvent: ("call",),
    CaptionFinalEvent: ("call",),
    DtmfToneEvent: ("call",),
    SpeakingChangedEvent: ("call", "overview"),
    AnalyticsUpdatedEvent: ("call",),
    AlertFiredEvent: ("call", "overview"),
    AlertUpdatedEvent: ("call", "overview"),
    CallsHealthEvent: ("overview",),
    CallActionEvent: ("call",),
}


def call_updated(call: CallPayload) -> CallUpdatedEvent:
    return {"type": "call.updated", "call": call}


def call_participant(call_id: int, participant: ParticipantPayload) -> CallParticipantEvent:
    return {"type": "call.participant", "call_id": call_id, "participant": participant}


def caption_interim(caption: CaptionPayload) -> CaptionInterimEvent:
    return {"type": "caption.interim", "caption": caption}


def caption_final(caption: CaptionPayload) -> CaptionFinalEvent:
    return {"type": "caption.final", "caption": caption}


def dtmf_tone(tone: DtmfPayload) -> DtmfToneEvent:
    return {"type": "dtmf.tone", "tone": tone}


def speaking_changed(speaking: SpeakingPayload) -> SpeakingChangedEvent:
    return {"type": "speaking.changed", "speaking": speaking}


def analytics_updated(analytics: AnalyticsPayload) -> AnalyticsUpdatedEvent:
    return {"type": "analytics.updated", "analytics": analytics}


def analytics_empty(call_id: int) -> AnalyticsPayload:
    """The figures of a call that has just begun: nothing yet, until its first tick."""
    return {
        "call_id": call_id,
        "source": "none",
        "final": False,
        "duration_ms": 0,
        "talk_ms": 0,
        "overlap_ms": 0,
        "silence_ms": 0,
        "hold_ms": 0,
        "longest_silence_ms": 0,
        "current_silence_ms": 0,
        "interruptions": 0,
        "speakers": [],
        "timeline": {"since_ms": 0, "rows": {}},
    }


def alert_fired(alert: AlertPayload) -> AlertFiredEvent:
    return {"type": "alert.fired", "alert": alert}


def alert_updated(alert: AlertPayload) -> AlertUpdatedEvent:
    return {"type": "alert.updated", "alert": alert}


def calls_health(calls: list[HealthPayload]) -> CallsHealthEvent:
    return {"type": "calls.health", "calls": calls}


def call_action(action: ActionPayload) -> CallActionEvent:
    return {"type": "call.action", "action": action}


def groups_for_call(call_id: int) -> tuple[str, ...]:
    """Call state goes to the call's page and to the call wall."""
    return (call_group(call_id), OVERVIEW_GROUP)


async def asend_event(groups: Iterable[str], event: Event) -> None:
    """Send ``event`` to each group. Failures are logged, never raised.

    A broken channel layer (Redis restarting) must not fail ingest: the database holds the
    truth and browsers re-sync from it when they reconnect.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            await layer.group_send(group, event)
        except Exception as error:
            _SEND_FAILURES.failed(event["type"], group, error)


class _SendFailures:
    """Logs channel-layer send failures at most once per ``every`` seconds, with a count.

    While Redis is down every caption, chart tick and health update fails: one line a few
    seconds is enough to say so, a traceback per event would bury the log.
    """

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.suppressed = 0
        self.last = -every

    def failed(self, kind: str, group: str, error: Exception) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.suppressed += 1
            return
        logger.warning(
            "channel layer unavailable: could not send %s to group %s (%d more not sent in"
            " the last %.0f s): %s: %s",
            kind,
            group,
            self.suppressed,
            now - self.last if self.suppressed else 0,
            type(error).__name__,
            error,
        )
        self.last = now
        self.suppressed = 0


_SEND_FAILURES = _SendFailures()


Outbox = list[tuple[tuple[str, ...], Event]]
# Events committed in a database thread that works for the event loop (streaming.db.db_call):
# the loop sends them once the thread returns. Context variables reach the thread with the
# call (asgiref copies the caller's context into it).
_OUTBOX: ContextVar[Outbox | None] = ContextVar("callsite_event_outbox", default=None)


@contextlib.contextmanager
def outbox() -> Iterator[Outbox]:
    """Collect the events :func:`send_event` is given in this context instead of sending them."""
    collected: Outbox = []
    token = _OUTBOX.set(collected)
    try:
        yield collected
    finally:
        _OUTBOX.reset(token)


def send_event(groups: Iterable[str], event: Event) -> None:
    """Synchronous :func:`asend_event`, for ``transaction.on_commit`` callbacks in services.

    Inside :func:`outbox` (a database thread working for the event loop) the event is left
    for the loop to send; a thread never waits on the loop, which may have stopped.
    Elsewhere (a management command, a test) it is sent at once.
    """
    collected = _OUTBOX.get()
    if collected is not None:
        collected.append((tuple(groups), event))
        return
    async_to_sync(asend_event)(tuple(groups), event)
