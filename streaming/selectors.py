"""Read-side queries that return plain data for consumers, views and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Prefetch, QuerySet
from django.utils import timezone

from streaming.events import (
    ActionPayload,
    AlertPayload,
    AnalyticsPayload,
    CallPayload,
    CaptionPayload,
    DtmfPayload,
    ParticipantPayload,
    ProblemPayload,
)
from streaming.models import (
    Alert,
    AlertRule,
    AlertState,
    Call,
    CallAnalytics,
    CallEvent,
    CallState,
    ControlAction,
    Participant,
    Stream,
    TalkSecond,
    Utterance,
)
from streaming.sentiment import sentiment_value

PROBLEMS_SHOWN = 10
SENTIMENT_TREND = 20  # finals in a call's sentiment trend (as streaming.live.call keeps it)


def participant_payload(participant: Participant) -> ParticipantPayload:
    return {
        "id": participant.pk,
        "raw_id": participant.raw_id,
        "label": participant.display_label,
        "role": participant.role,
        "kind": participant.kind,
        "is_muted": participant.is_muted,
        "is_on_hold": participant.is_on_hold,
        "in_call": participant.in_call,
        "invitation": participant.invitation,
        "held_since": participant.held_since.isoformat() if participant.held_since else None,
        "hold_ms": participant.hold_ms,
        "longest_hold_ms": participant.longest_hold_ms,
        "muted_since": participant.muted_since.isoformat() if participant.muted_since else None,
        "mute_ms": participant.mute_ms,
        "longest_mute_ms": participant.longest_mute_ms,
        "hold_periods": _periods(participant.hold_periods),
        "mute_periods": _periods(participant.mute_periods),
    }


def _periods(stored: object) -> list[list[str | None]]:
    """Stored ``[start, end]`` periods, well formed (a JSON field is whatever was saved)."""
    if not isinstance(stored, list):
        return []
    return [
        [p[0], p[1] if isinstance(p[1], str) else None]
        for p in stored
        if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
    ]


def problem_payload(event: CallEvent) -> ProblemPayload:
    return {
        "type": event.type,
        "code": event.result_code,
        "subcode": event.result_subcode,
        "message": event.result_message,
        "at": event.received_at.isoformat(),
    }


def _problems(call: Call) -> list[CallEvent]:
    cached = getattr(call, "failures", None)
    if cached is not None:
        return list(cached)[-PROBLEMS_SHOWN:]
    newest = call.events.filter(is_failure=True).order_by("-received_at", "-pk")[:PROBLEMS_SHOWN]
    return list(reversed(newest))


def call_duration_ms(call: Call, now: datetime | None = None) -> int | None:
    """A call's length by the server's clock, the one every page, export and API shows.

    From its start to its end, or to ``now`` while it goes on; None before it started.
    """
    if call.started_at is None:
        return None
    end = call.ended_at or (now or timezone.now())
    return max(0, round((end - call.started_at).total_seconds() * 1000))


def call_payload(call: Call, participants: list[Participant] | None = None) -> CallPayload:
    """Serialise a call; pass ``participants`` to avoid a query when they are at hand."""
    people = participants if participants is not None else list(call.participants.all())
    origin = call.audio_origin or call.started_at
    return {
        "id": call.pk,
        "connection_id": call.connection_id,
        "state": call.state,
        "managed": call.managed,
        "origin": call.origin,
        "room_id": call.room_id,
        "recording_state": call.recording_state,
        "secure_pause_since": (
            call.secure_pause_since.isoformat() if call.secure_pause_since else None
        ),
        "secure_pause_periods": _periods(call.secure_pause_periods),
        "bidirectional": call.bidirectional,
        "caller": call.caller,
        "caller_display_name": call.caller_display_name,
        "callee": call.callee,
        "media_state": call.media_state,
        "transcription_state": call.transcription_state,
        "transcript_source": call.transcript_source,
        "locale": call.locale,
        "transcription_options": (
            call.transcription_options if isinstance(call.transcription_options, dict) else {}
        ),
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "end_reason": call.end_reason,
        "duration_ms": call_duration_ms(call),
        "timeline_origin": origin.isoformat() if origin else None,
        "participants": [participant_payload(p) for p in people],
        "problems": [problem_payload(e) for e in _problems(call)],
    }


ACTIONS_SHOWN = 50


def action_payload(action: ControlAction) -> ActionPayload:
    return {
        "id": action.pk,
        "call_id": action.call_id,
        "action": action.action,
        "label": action.label,
        "user": action.username,
        "target": action.target,
        "request": action.request,
        "status": action.status,
        "settled": action.settled,
        "outcome": action.outcome,
        "at": action.created_at.isoformat(),
        "settled_at": action.settled_at.isoformat() if action.settled_at else None,
    }


def call_actions(*, call_id: int) -> list[ActionPayload]:
    """A call's latest supervisor actions, oldest first (the call page's audit trail)."""
    newest = ControlAction.objects.filter(call_id=call_id).order_by("-created_at", "-pk")
    return [action_payload(a) for a in reversed(newest[:ACTIONS_SHOWN])]


def caption_payload(utterance: Utterance, participant: Participant | None) -> CaptionPayload:
    return {
        "call_id": utterance.call_id,
        "utterance_id": utterance.pk,
        "participant": participant_payload(participant) if participant else None,
        "text": utterance.text,
        "confidence": utterance.confidence,
        "offset_ticks": utterance.offset_ticks,
        "duration_ticks": utterance.duration_ticks,
        "words": utterance.words,
        "final": True,
        "seq": utterance.seq,
        "sentiment": utterance.sentiment or None,
        "sentiment_score": utterance.sentiment_score,
        "sentiment_source": utterance.sentiment_source or None,
        "language": utterance.language or None,
        "redacted": utterance.redacted,
    }


DTMF_EVENT = "DtmfData"


def tone_payload(event: CallEvent, participant: Participant | None) -> DtmfPayload:
    """A stored DTMF tone (``streaming.services.call_tone_record``), as pages get it."""
    data = event.data if isinstance(event.data, dict) else {}
    offset = data.get("offset_ticks")
    seq = data.get("seq")
    return {
        "call_id": event.call_id,
        "event_id": event.pk,
        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        "participant": participant_payload(participant) if participant else None,
        "tone": str(data.get("tone", "")),
        "masked": bool(data.get("masked", True)),
        "at": event.time.isoformat() if event.time else None,
        "offset_ticks": (
            offset if isinstance(offset, int) and not isinstance(offset, bool) else None
        ),
    }


def call_tones(*, call_id: int, after_seq: int | None = None) -> list[DtmfPayload]:
    """A call's DTMF tones in the order they were pressed (after ``after_seq`` if given)."""
    tones = CallEvent.objects.filter(call_id=call_id, type=DTMF_EVENT).order_by("time", "pk")
    people = {p.raw_id: p for p in Participant.objects.filter(call_id=call_id)}
    found = []
    for event in tones:
        raw_id = event.data.get("participant") if isinstance(event.data, dict) else None
        payload = tone_payload(event, people.get(raw_id) if isinstance(raw_id, str) else None)
        if after_seq is None or (payload["seq"] or 0) > after_seq:
            found.append(payload)
    return found


def call_get(*, call_id: int) -> CallPayload | None:
    """One call with its participants, or ``None`` when it does not exist."""
    call = Call.objects.filter(pk=call_id).prefetch_related("participants").first()
    return call_payload(call) if call else None


def call_exists(*, call_id: int) -> bool:
    return Call.objects.filter(pk=call_id).exists()


def call_list(*, limit: int = 100, calls: QuerySet[Call] | None = None) -> list[CallPayload]:
    """Live calls first, then the most recent finished ones, for the call wall.

    ``calls`` narrows the choice (a user's visible calls); all calls by default.
    """
    calls = (calls if calls is not None else Call.objects.all()).prefetch_related(
        Prefetch("participants", queryset=Participant.objects.order_by("created_at", "pk")),
        Prefetch(
            "events",
            queryset=CallEvent.objects.filter(is_failure=True).order_by("received_at", "pk"),
            to_attr="failures",
        ),
    )
    live = list(calls.exclude(state=CallState.ENDED).order_by("-created_at")[:limit])
    recent = list(
        calls.filter(state=CallState.ENDED).order_by("-ended_at")[: max(0, limit - len(live))]
    )
    return [call_payload(call) for call in live + recent]


def call_captions(*, call_id: int) -> list[CaptionPayload]:
    """Every final utterance of a call in spoken order."""
    utterances = (
        Utterance.objects.filter(call_id=call_id)
        .select_related("participant")
        .order_by("offset_ticks", "pk")
    )
    return [caption_payload(u, u.participant) for u in utterances]


def user_label(user: Any) -> str | None:
    """How a supervisor is named on pages and in alerts: full name, else user name."""
    if user is None:
        return None
    return str(user.get_full_name() or user.get_username())


def alert_payload(alert: Alert) -> AlertPayload:
    """An alert as pages and events carry it (select ``rule``, ``participant``,
    ``acknowledged_by`` and ``resolved_by`` with it: :data:`ALERT_RELATED`)."""
    return {
        "id": alert.pk,
        "call_id": alert.call_id,
        "seq": alert.seq,
        "kind": alert.kind,
        "rule": alert.rule.name if alert.rule_id and alert.rule else "",
        "message": alert.message,
        "at_ms": alert.at_ms,
        "speaker": alert.participant.raw_id if alert.participant else None,
        "fired_at": alert.fired_at.isoformat(),
        "state": alert.state,
        "acknowledged_by": user_label(alert.acknowledged_by) if alert.acknowledged_by_id else None,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "resolved_by": user_label(alert.resolved_by) if alert.resolved_by_id else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "note": alert.note,
    }


ALERT_RELATED = ("rule", "participant", "acknowledged_by", "resolved_by")


def alert_get(*, alert_id: int) -> AlertPayload | None:
    alert = Alert.objects.select_related(*ALERT_RELATED).filter(pk=alert_id).first()
    return None if alert is None else alert_payload(alert)


def call_alerts(*, call_id: int, after_seq: int | None = None) -> list[AlertPayload]:
    """A call's alerts in the order they fired (only those after ``after_seq`` if given)."""
    alerts = Alert.objects.filter(call_id=call_id).select_related(*ALERT_RELATED)
    if after_seq is not None:
        alerts = alerts.filter(seq__gt=after_seq)
    return [alert_payload(a) for a in alerts.order_by("seq", "pk")]


def call_alert_count(*, call_id: int) -> int:
    return Alert.objects.filter(call_id=call_id).count()


def wall_summaries(*, call_ids: list[int]) -> dict[int, Any]:
    """Talk ratio per speaker, alert count, latest alert and the alerts not yet resolved (newest
    first) of each call, for the call wall's first paint (``dashboard.messages.WallSummary``)."""
    found: dict[int, Any] = {
        i: {
            "talk": [],
            "alerts": 0,
            "latest_alert": None,
            "sentiment": {"latest": None, "trend": []},
        }
        for i in call_ids
    }
    for call_id, speakers in CallAnalytics.objects.filter(call_id__in=call_ids).values_list(
        "call_id", "speakers"
    ):
        found[call_id]["talk"] = [
            {"key": s["key"], "label": s["label"], "role": s["role"], "ratio": s["ratio"]}
            for s in speakers
        ]
    counts = (
        Alert.objects.filter(call_id__in=call_ids)
        .values_list("call_id")
        .annotate(n=Count("pk"))
        .values_list("call_id", "n")
    )
    for call_id, n in counts:
        found[call_id]["alerts"] = n
    for call_id in call_ids:
        found[call_id]["unresolved"] = []
    unresolved = (
        Alert.objects.filter(call_id__in=call_ids)
        .exclude(state=AlertState.RESOLVED)
        .select_related(*ALERT_RELATED)
        .order_by("call_id", "-seq", "-pk")
    )
    for alert in unresolved:
        found[alert.call_id]["unresolved"].append(alert_payload(alert))
    newest = (
        Alert.objects.filter(call_id__in=call_ids)
        .values("call_id")
        .annotate(newest=Max("pk"))
        .values("newest")
    )
    for alert in Alert.objects.filter(pk__in=newest).select_related(*ALERT_RELATED):
        found[alert.call_id]["latest_alert"] = alert_payload(alert)
    felt = (
        Utterance.objects.filter(call_id__in=call_ids)
        .exclude(sentiment="")
        .order_by("call_id", F("offset_ticks").asc(nulls_last=True), "seq", "pk")
        .values_list("call_id", "sentiment", "sentiment_score")
    )
    for call_id, sentiment, score in felt.iterator():
        trend = found[call_id]["sentiment"]
        value = sentiment_value(sentiment, score)
        if value is not None:
            trend["trend"] = [*trend["trend"][-(SENTIMENT_TREND - 1) :], round(value, 3)]
            trend["latest"] = sentiment
    return found


def call_captions_after(*, call_id: int, after_seq: int) -> list[CaptionPayload]:
    """The finals stored after sequence number ``after_seq``, in that order."""
    utterances = (
        Utterance.objects.filter(call_id=call_id, seq__gt=after_seq)
        .select_related("participant")
        .order_by("seq")
    )
    return [caption_payload(u, u.participant) for u in utterances]


def call_last_seq(*, call_id: int) -> int:
    return Call.objects.filter(pk=call_id).values_list("last_seq", flat=True).first() or 0


def enabled_alert_rules() -> list[AlertRule]:
    """The alert rules in force (the live analytics make their own ``Rule`` of each)."""
    return list(AlertRule.objects.filter(enabled=True))


def stored_analytics(*, call_id: int) -> AnalyticsPayload | None:
    """The figures last saved for a call, or None if none were."""
    row = CallAnalytics.objects.filter(call_id=call_id).first()
    if row is None:
        return None
    return {
        "call_id": call_id,
        "source": row.source,
        "final": row.final,
        "duration_ms": row.duration_ms,
        "talk_ms": row.talk_ms,
        "overlap_ms": row.overlap_ms,
        "silence_ms": row.silence_ms,
        "hold_ms": row.hold_ms,
        "longest_silence_ms": row.longest_silence_ms,
        "current_silence_ms": 0,
        "interruptions": row.interruptions,
        "speakers": row.speakers,
        "timeline": {"since_ms": 0, "rows": row.timeline},
    }


class AnalyticsInputs:
    """What a call's figures are computed from, as stored."""

    def __init__(self) -> None:
        self.masks: dict[str, dict[int, int]] = {}  # stream key -> {second: voiced mask}
        self.utterances: list[tuple[str, int, int, int]] = []  # (key, start, end ticks, words)
        self.speakers: dict[str, tuple[str, str]] = {}  # key -> (label, role)
        self.holds: dict[str, list[list[str | None]]] = {}  # key -> [[start, end|None], ...]
        self.origin: datetime | None = None  # the call's timeline's tick 0
        self.sentiments: list[float] = []  # the finals' sentiment values in spoken order


def analytics_inputs(*, call_id: int) -> AnalyticsInputs:
    """Talk seconds and utterance timings of a call, to rebuild its figures."""
    found = AnalyticsInputs()
    for p in Participant.objects.filter(call_id=call_id):
        found.speakers[p.raw_id] = (p.display_label, p.role)
        if p.hold_periods:
            found.holds[p.raw_id] = p.hold_periods
    found.origin = call_timeline_origin(call_id=call_id)
    rows = TalkSecond.objects.filter(call_id=call_id).values_list("stream", "second", "voiced_mask")
    for stream, second, mask in rows.iterator():
        found.masks.setdefault(stream, {})[second] = mask
    utterances = (
        Utterance.objects.filter(call_id=call_id, offset_ticks__isnull=False)
        .select_related("participant")
        .order_by("offset_ticks")
    )
    for u in utterances:
        key = u.participant.raw_id if u.participant else ""
        start = u.offset_ticks or 0
        count = len(u.words) if u.words else len(u.text.split())
        found.utterances.append((key, start, start + (u.duration_ticks or 0), count))
        value = sentiment_value(u.sentiment or None, u.sentiment_score)
        if value is not None:
            found.sentiments.append(value)
    return found


def call_timeline_origin(*, call_id: int) -> datetime | None:
    """The wall-clock time of tick 0 of a call's timeline: its first audio frame, or its
    start when it has no audio (ACS transcription counts from its stream's start)."""
    row = Call.objects.filter(pk=call_id).values_list("audio_origin", "started_at").first()
    if row is None:
        return None
    return row[0] or row[1]


@dataclass
class LiveHolds:
    """A live call's timeline origin and its participants' hold periods, as stored."""

    origin: datetime | None
    holds: dict[str, list[list[str | None]]]


def live_holds(*, call_ids: list[int]) -> dict[int, LiveHolds]:
    """The hold periods and timeline origins of these calls, in two queries."""
    found = {
        pk: LiveHolds(audio_origin or started_at, {})
        for pk, audio_origin, started_at in Call.objects.filter(pk__in=call_ids).values_list(
            "pk", "audio_origin", "started_at"
        )
    }
    rows = (
        Participant.objects.filter(call_id__in=call_ids, held_since__isnull=False)
        | Participant.objects.filter(call_id__in=call_ids, hold_ms__gt=0)
    ).values_list("call_id", "raw_id", "hold_periods")
    for call_id, raw_id, periods in rows:
        if call_id in found and isinstance(periods, list):
            found[call_id].holds[raw_id] = periods
    return found


@dataclass(frozen=True, slots=True)
class StaleStream:
    """An open stream whose worker has stopped refreshing its heartbeat."""

    id: int
    call_id: int
    worker: str
    seen_at: datetime
    last_packet_at: datetime | None


def stale_streams(*, seen_before: datetime) -> list[StaleStream]:
    """Open streams not seen since ``seen_before`` whose call has no fresher open stream.

    A call whose stream moved to another worker (ACS reconnected) is not stale, even while
    the dead worker's stream is still open.
    """
    silent = Stream.objects.silent_since(seen_before)
    rows = (
        silent.exclude(pk__in=silent.whose_call_is_heard_since(seen_before).values("pk"))
        .order_by("seen_at", "pk")
        .values_list("pk", "call_id", "worker", "seen_at", "last_packet_at")
    )
    return [StaleStream(*row) for row in rows]
