"""What the API returns for calls, participants, analytics and utterances.

(Fields named ``label`` shadow ``Field.label`` for type checkers only: DRF moves declared
fields out of the class, hence their ``type: ignore``.)

Figures computed in the database (talk ratio, mean confidence, alert count) come from the
annotations of ``dashboard.selectors.annotated_calls``. JSON holds no NaN or infinity, so
every float that could be one is returned as ``null`` instead.
"""

from __future__ import annotations

import math
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from streaming.models import Alert, Call, CallAnalytics, Participant, Recording, Utterance
from streaming.selectors import call_duration_ms, user_label


def finite(value: Any) -> float | None:
    """A finite float, or ``None`` (for ``None``, NaN, infinities and non-numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def whole(value: Any) -> int | None:
    """An integer that is not a bool, or ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class FiniteFloatField(serializers.FloatField):
    """A read-only float that is ``null`` when unknown or not finite."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def to_representation(self, value: Any) -> float | None:  # type: ignore[override]
        return finite(value)


class ErrorSerializer(serializers.Serializer[Any]):
    """An error: 401, 403, 404, 405, 406 or 429."""

    detail = serializers.CharField()


# ------------------------------------------------------------------------------ participants


class ParticipantBriefSerializer(serializers.ModelSerializer[Participant]):
    label = serializers.CharField(source="display_label", read_only=True)  # type: ignore[assignment]

    class Meta:
        model = Participant
        fields = ["raw_id", "label", "role", "kind"]
        read_only_fields = fields


class ParticipantSerializer(serializers.ModelSerializer[Participant]):
    label = serializers.CharField(source="display_label", read_only=True)  # type: ignore[assignment]

    class Meta:
        model = Participant
        fields = [
            "id",
            "raw_id",
            "label",
            "display_name",
            "role",
            "kind",
            "is_muted",
            "is_on_hold",
            "in_call",
            "held_since",
            "hold_ms",
            "longest_hold_ms",
            "muted_since",
            "mute_ms",
            "longest_mute_ms",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "display_name": {"help_text": "The display name ACS gave; empty if none"},
            "held_since": {"help_text": "On hold since this moment; null when not on hold"},
            "hold_ms": {"help_text": "Time on hold in finished holds (ms)"},
            "longest_hold_ms": {"help_text": "The longest finished hold (ms)"},
            "muted_since": {"help_text": "Muted since this moment; null when not muted"},
            "mute_ms": {"help_text": "Time muted in finished mutes (ms)"},
            "longest_mute_ms": {"help_text": "The longest finished mute (ms)"},
        }


# ------------------------------------------------------------------------------------ calls


class CallListSerializer(serializers.ModelSerializer[Call]):
    """One row of the call list."""

    duration_seconds = serializers.SerializerMethodField(
        help_text="From start to end, or to now while the call goes on (the duration every "
        "page shows); null before it started."
    )
    participants: serializers.BaseSerializer[Any] = ParticipantBriefSerializer(
        many=True, read_only=True
    )
    agent_talk_ratio = FiniteFloatField(
        help_text="Agents' share of all talk (0-1), from the call's analytics; null if none."
    )
    mean_confidence = FiniteFloatField(
        help_text="Mean recognition confidence of the call's utterances (0-1); null if none."
    )
    alert_count = serializers.IntegerField(read_only=True, help_text="Alerts fired on the call.")
    ended_sentiment = serializers.SerializerMethodField(
        help_text="The sentiment of the call's last final that has one (positive, neutral, "
        "negative, mixed); null if none has."
    )
    hold_ms = serializers.IntegerField(
        read_only=True, help_text="Time its participants spent in finished holds, in all (ms)."
    )

    class Meta:
        model = Call
        fields = [
            "id",
            "connection_id",
            "state",
            "started_at",
            "ended_at",
            "end_reason",
            "duration_seconds",
            "participants",
            "agent_talk_ratio",
            "mean_confidence",
            "alert_count",
            "ended_sentiment",
            "hold_ms",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_ended_sentiment(self, call: Call) -> str | None:
        return getattr(call, "ended_sentiment", None) or None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_seconds(self, call: Call) -> float | None:
        length = call_duration_ms(call)
        return None if length is None else length / 1000


class SpeakerSerializer(serializers.Serializer[dict[str, Any]]):
    """One speaker's share of the talk and their figures."""

    key = serializers.CharField(help_text="Participant raw id")
    label = serializers.CharField()  # type: ignore[assignment]
    role = serializers.CharField()
    talk_ms = serializers.IntegerField()
    ratio = serializers.FloatField(allow_null=True, help_text="Share of all talk, 0-1")
    share = serializers.FloatField(allow_null=True, help_text="Share of the call's duration, 0-1")
    interruptions = serializers.IntegerField(help_text="Times they started over someone")
    longest_monologue_ms = serializers.IntegerField()
    words = serializers.IntegerField()
    wpm = serializers.FloatField(allow_null=True, help_text="Words per minute of their talk")


def speaker_summary(stored: Any) -> dict[str, Any] | None:
    """A stored speaker entry with the types the schema promises, or None if it is no entry."""
    if not isinstance(stored, dict):
        return None
    return {
        "key": str(stored.get("key", "")),
        "label": str(stored.get("label", "")),
        "role": str(stored.get("role", "")),
        "talk_ms": whole(stored.get("talk_ms")) or 0,
        "ratio": finite(stored.get("ratio")),
        "share": finite(stored.get("share")),
        "interruptions": whole(stored.get("interruptions")) or 0,
        "longest_monologue_ms": whole(stored.get("longest_monologue_ms")) or 0,
        "words": whole(stored.get("words")) or 0,
        "wpm": finite(stored.get("wpm")),
    }


class AnalyticsSerializer(serializers.ModelSerializer[CallAnalytics]):
    """A call's talk-time figures, as last saved (final once the call has ended)."""

    agent_talk_ratio = FiniteFloatField(help_text="Agents' share of all talk (0-1)")
    speakers = serializers.SerializerMethodField(help_text="Talk ratio and figures per speaker")

    class Meta:
        model = CallAnalytics
        fields = [
            "source",
            "final",
            "duration_ms",
            "talk_ms",
            "silence_ms",
            "overlap_ms",
            "hold_ms",
            "longest_silence_ms",
            "longest_monologue_ms",
            "interruptions",
            "agent_talk_ratio",
            "speakers",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(SpeakerSerializer(many=True))
    def get_speakers(self, analytics: CallAnalytics) -> list[dict[str, Any]]:
        stored = analytics.speakers if isinstance(analytics.speakers, list) else []
        return [s for s in (speaker_summary(x) for x in stored) if s is not None]


class CallDetailSerializer(CallListSerializer):
    """One call: the list's row, its participants in full and its analytics."""

    participants: serializers.BaseSerializer[Any] = ParticipantSerializer(many=True, read_only=True)
    analytics = serializers.SerializerMethodField(
        help_text="Talk-time figures, or null when none were computed for the call."
    )

    class Meta(CallListSerializer.Meta):
        fields = [
            *CallListSerializer.Meta.fields,
            "correlation_id",
            "caller",
            "caller_display_name",
            "callee",
            "managed",
            "locale",
            "transcript_source",
            "media_state",
            "transcription_state",
            "transcription_options",
            "analytics",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "transcription_options": {
                "help_text": "What ACS transcription was asked for, as its metadata said: "
                "sentiment (bool), pii_redaction, summarization, locales, "
                "speech_model_endpoint_id"
            }
        }

    @extend_schema_field(AnalyticsSerializer(allow_null=True))
    def get_analytics(self, call: Call) -> dict[str, Any] | None:
        try:
            analytics = call.analytics
        except CallAnalytics.DoesNotExist:
            return None
        return dict(AnalyticsSerializer(analytics, context=self.context).data)


# ------------------------------------------------------------------------------- utterances


class WordSerializer(serializers.Serializer[dict[str, Any]]):
    text = serializers.CharField()
    offset = serializers.IntegerField(allow_null=True, help_text="100-ns ticks")
    duration = serializers.IntegerField(allow_null=True, help_text="100-ns ticks")
    confidence = serializers.FloatField(allow_null=True)


class SpeakerRefSerializer(serializers.Serializer[dict[str, Any]]):
    key = serializers.CharField(help_text="Participant raw id")
    label = serializers.CharField()  # type: ignore[assignment]
    role = serializers.CharField()


def word_summary(stored: Any) -> dict[str, Any] | None:
    if not isinstance(stored, dict):
        return None
    return {
        "text": str(stored.get("text", "")),
        "offset": whole(stored.get("offset")),
        "duration": whole(stored.get("duration")),
        "confidence": finite(stored.get("confidence")),
    }


class UtteranceSerializer(serializers.ModelSerializer[Utterance]):
    """A final utterance: who said what, when (100-ns ticks from the stream's start)."""

    speaker = serializers.SerializerMethodField(help_text="null: an unknown speaker")
    confidence = FiniteFloatField()
    words = serializers.SerializerMethodField()
    sentiment = serializers.SerializerMethodField(
        help_text="positive, neutral, negative or mixed; null when not known"
    )
    sentiment_score = FiniteFloatField(
        help_text="The lexicon scorer's compound score (-1 to 1); null for ACS's sentiment"
    )
    sentiment_source = serializers.SerializerMethodField(
        help_text='Who judged it: "acs" (ACS transcription) or "lexicon" (Callsite\'s offline '
        "scorer); null when not known"
    )
    language = serializers.SerializerMethodField(
        help_text="The language ACS identified (en-US); null when not known"
    )

    class Meta:
        model = Utterance
        fields = [
            "id",
            "seq",
            "speaker",
            "text",
            "confidence",
            "offset_ticks",
            "duration_ticks",
            "words",
            "source",
            "sentiment",
            "sentiment_score",
            "sentiment_source",
            "language",
            "redacted",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_sentiment(self, utterance: Utterance) -> str | None:
        return utterance.sentiment or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_sentiment_source(self, utterance: Utterance) -> str | None:
        return utterance.sentiment_source or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_language(self, utterance: Utterance) -> str | None:
        return utterance.language or None

    @extend_schema_field(SpeakerRefSerializer(allow_null=True))
    def get_speaker(self, utterance: Utterance) -> dict[str, str] | None:
        person = utterance.participant
        if person is None:
            return None
        return {"key": person.raw_id, "label": person.display_label, "role": person.role}

    @extend_schema_field(WordSerializer(many=True))
    def get_words(self, utterance: Utterance) -> list[dict[str, Any]]:
        stored = utterance.words if isinstance(utterance.words, list) else []
        return [w for w in (word_summary(x) for x in stored) if w is not None]


# ------------------------------------------------------------ the JSON transcript (schema only)


class TranscriptCallSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    connection_id = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    locale = serializers.CharField()


class TranscriptParticipantSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    role = serializers.CharField()


class TranscriptLineSerializer(serializers.Serializer[Any]):
    start_ticks = serializers.IntegerField(allow_null=True)
    end_ticks = serializers.IntegerField(allow_null=True)
    start_seconds = serializers.FloatField(allow_null=True)
    end_seconds = serializers.FloatField(allow_null=True)
    speaker_key = serializers.CharField()
    speaker = serializers.CharField()
    role = serializers.CharField()
    text = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    words = WordSerializer(many=True)
    kind = serializers.CharField(help_text="speech, or dtmf for a DTMF tone")
    sentiment = serializers.CharField(allow_null=True)
    sentiment_source = serializers.CharField(allow_null=True)
    language = serializers.CharField(allow_null=True)
    redacted = serializers.BooleanField(
        allow_null=True, help_text="PII/PCI masked before storage; null: redaction was off"
    )


class TranscriptSerializer(serializers.Serializer[Any]):
    """The JSON transcript (docs/exports.md), as `streaming.history.exports.render_json` writes."""

    call = TranscriptCallSerializer()
    ticks_per_second = serializers.IntegerField()
    participants = TranscriptParticipantSerializer(many=True)
    lines = TranscriptLineSerializer(many=True)


# ------------------------------------------------------------------------------------ alerts


class AlertSerializer(serializers.ModelSerializer[Alert]):
    """An alert that fired on a call, and its triage."""

    call = serializers.IntegerField(source="call_id", read_only=True)
    rule = serializers.SerializerMethodField(help_text="The rule's name; empty once deleted")
    speaker = serializers.SerializerMethodField(
        help_text="The participant it is about: key (raw id), label and role; null if none"
    )
    acknowledged_by = serializers.SerializerMethodField(help_text="The supervisor's name")
    resolved_by = serializers.SerializerMethodField(help_text="The supervisor's name")

    class Meta:
        model = Alert
        fields = [
            "id",
            "call",
            "seq",
            "kind",
            "rule",
            "message",
            "at_ms",
            "speaker",
            "fired_at",
            "state",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_by",
            "resolved_at",
            "note",
        ]
        read_only_fields = fields

    def get_rule(self, alert: Alert) -> str:
        return alert.rule.name if alert.rule_id and alert.rule else ""

    @extend_schema_field(SpeakerRefSerializer(allow_null=True))
    def get_speaker(self, alert: Alert) -> dict[str, str] | None:
        p = alert.participant
        if p is None:
            return None
        return {"key": p.raw_id, "label": p.display_label, "role": p.role}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_acknowledged_by(self, alert: Alert) -> str | None:
        return user_label(alert.acknowledged_by) if alert.acknowledged_by_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_resolved_by(self, alert: Alert) -> str | None:
        return user_label(alert.resolved_by) if alert.resolved_by_id else None


# ----------------------------------------------------------------------------------- reports


class ReportRowSerializer(serializers.Serializer[dict[str, Any]]):
    """One agent's (or team's) figures over the range (docs/reports.md)."""

    name = serializers.CharField()
    team = serializers.CharField(help_text="The agent's team; for a team row, its own name")
    calls = serializers.IntegerField()
    handle_ms = serializers.IntegerField(help_text="The calls' durations, summed")
    mean_handle_ms = serializers.IntegerField(allow_null=True)
    talk_ratio = serializers.FloatField(
        allow_null=True, help_text="The agents' share of all talk on the calls (0-1)"
    )
    interruptions = serializers.IntegerField()
    silence_ms = serializers.IntegerField()
    hold_ms = serializers.IntegerField()
    alerts = serializers.IntegerField()
    negative_finals = serializers.IntegerField()
    sentiment_finals = serializers.IntegerField(help_text="Finals with a sentiment")
    negative_share = serializers.FloatField(allow_null=True)


class AlertTriageSerializer(serializers.Serializer[dict[str, Any]]):
    """What a triage step takes: an optional note (it replaces the alert's note)."""

    note = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        max_length=500,
        default="",
        help_text="The supervisor's note, up to 500 characters",
    )


class AgentReportSerializer(serializers.Serializer[dict[str, Any]]):
    started_after = serializers.DateTimeField()
    started_before = serializers.DateTimeField()
    agents = ReportRowSerializer(many=True)
    teams = ReportRowSerializer(many=True)


# -------------------------------------------------------------------------------- recordings


class RecordingSerializer(serializers.ModelSerializer[Recording]):
    """One track of a call's recording: a participant's, or everyone mixed."""

    participant = ParticipantBriefSerializer(read_only=True, allow_null=True)
    duration_seconds = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField(help_text="The FLAC file (HTTP Range requests)")

    class Meta:
        model = Recording
        fields = [
            "id",
            "kind",
            "track",
            "participant",
            "sample_rate",
            "size",
            "duration_seconds",
            "assembled_at",
            "url",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, recording: Recording) -> float:
        return round(recording.duration_ticks / 10_000_000, 3)

    def get_url(self, recording: Recording) -> str:
        path = reverse("api:recording-file", args=[recording.call_id, recording.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path
