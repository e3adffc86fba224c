"""Filters of the call list: the query parameters, their validation and the queryset they give.

``CallFilters`` validates the query string (a bad value is a 400 naming the parameter) and is
also what the OpenAPI schema lists as the list's parameters; ``filter_calls`` applies the
validated values to a queryset of calls the user may see.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from streaming.history.search import calls_matching
from streaming.models import (
    Alert,
    AlertKind,
    AlertState,
    CallState,
    Participant,
    ParticipantRole,
    Sentiment,
    Utterance,
)


@extend_schema_field(OpenApiTypes.STR)
class MomentField(serializers.Field):
    """An ISO 8601 date (``2025-03-04``) or date and time (``2025-03-04T10:00:00+01:00``).

    A time without an offset is in the server's time zone (``CALLSITE_TIME_ZONE``), and so is
    the midnight a date stands for: the start of the day, or with ``end_of_day`` the start of
    the next one. Gives an aware datetime in UTC.
    """

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date (2025-03-04) or date and time (2025-03-04T10:00:00Z)."
    }

    def __init__(self, *, end_of_day: bool = False, **kwargs: Any) -> None:
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime:
        try:
            moment = self._parse(str(data).strip())
        except (ValueError, OverflowError):  # 2025-02-30, or out of range once in UTC
            moment = None
        if moment is None:
            self.fail("invalid")
        return moment

    def _parse(self, text: str) -> datetime | None:
        day = parse_date(text)
        if day is not None:
            moment = datetime.combine(day + timedelta(days=1) if self.end_of_day else day, time.min)
        else:
            found = parse_datetime(text)
            if found is None:
                return None
            moment = found
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return moment.astimezone(UTC)

    def to_representation(self, value: Any) -> str:
        return str(value)


class CallFilters(serializers.Serializer[dict[str, Any]]):
    """The call list's query parameters (all optional; given ones must all hold)."""

    state = serializers.ChoiceField(
        choices=CallState.choices, required=False, help_text="Only calls in this state."
    )
    started_after = MomentField(
        required=False,
        help_text=(
            "Calls started at or after this moment: an ISO 8601 date or date and time; a date "
            "is midnight at its start, a time without an offset is in the server's time zone."
        ),
    )
    started_before = MomentField(
        end_of_day=True,
        required=False,
        help_text=(
            "Calls started before this moment; a date includes the whole of that day "
            "(started_after=2025-03-04&started_before=2025-03-04 is that day's calls)."
        ),
    )
    participant = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text=(
            "Calls with a participant whose ACS raw id is exactly this (4:+15551230000, "
            "8:acs:...) or whose label contains it (case-insensitive)."
        ),
    )
    agent = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text=(
            "Calls with an agent whose name (the agent directory's, or the label) contains "
            "this (case-insensitive), or whose ACS raw id is exactly this."
        ),
    )
    has_alerts = serializers.BooleanField(
        required=False,
        help_text="true: only calls on which an alert fired; false: only calls without.",
    )
    sentiment = serializers.ChoiceField(
        choices=Sentiment.choices,
        required=False,
        help_text="Only calls with at least one final of this sentiment.",
    )
    ended_negative = serializers.BooleanField(
        required=False,
        help_text="true: only calls whose last final with a sentiment is negative; false: "
        "only calls whose last one is not (or that have none).",
    )
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text=(
            "Calls in which this was said. PostgreSQL: full-text search (words in any order, "
            '"a quoted phrase" in order, -word to exclude); SQLite: the phrase as a '
            "case-insensitive substring."
        ),
    )


def filter_calls(calls: QuerySet[Any], filters: dict[str, Any]) -> QuerySet[Any]:
    """``calls`` narrowed by validated ``CallFilters`` data."""
    if filters.get("state"):
        calls = calls.filter(state=filters["state"])
    if filters.get("started_after"):
        calls = calls.filter(started_at__gte=filters["started_after"])
    if filters.get("started_before"):
        calls = calls.filter(started_at__lt=filters["started_before"])
    who = unicodedata.normalize("NFC", filters.get("participant") or "").strip()
    if who:
        people = Participant.objects.filter(
            Q(raw_id=who) | Q(display_label__icontains=who), call=OuterRef("pk")
        )
        calls = calls.filter(Exists(people))
    agent = unicodedata.normalize("NFC", filters.get("agent") or "").strip()
    if agent:
        agents = Participant.objects.filter(
            Q(raw_id=agent) | Q(display_label__icontains=agent),
            call=OuterRef("pk"),
            role=ParticipantRole.AGENT,
        )
        calls = calls.filter(Exists(agents))
    if filters.get("has_alerts") is not None:
        fired = Exists(Alert.objects.filter(call=OuterRef("pk")))
        calls = calls.filter(fired if filters["has_alerts"] else ~fired)
    if filters.get("sentiment"):
        felt = Utterance.objects.filter(call=OuterRef("pk"), sentiment=filters["sentiment"])
        calls = calls.filter(Exists(felt))
    if filters.get("ended_negative") is not None:
        ended = Q(ended_sentiment=Sentiment.NEGATIVE)
        calls = calls.filter(ended if filters["ended_negative"] else ~ended)
    phrase = (filters.get("q") or "").strip()
    if phrase:
        calls = calls_matching(calls, phrase)
    return calls


class AlertFilters(serializers.Serializer[dict[str, Any]]):
    """The alert list's query parameters (all optional; given ones must all hold)."""

    state = serializers.ChoiceField(
        choices=AlertState.choices,
        required=False,
        help_text="Only alerts in this state (open, acknowledged, resolved).",
    )
    kind = serializers.ChoiceField(
        choices=AlertKind.choices, required=False, help_text="Only alerts of this rule kind."
    )
    call = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Only alerts of this call."
    )
    agent = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text=(
            "Only alerts on calls with an agent whose ACS raw id is exactly this or whose "
            "label contains it (case-insensitive)."
        ),
    )


def filter_alerts(alerts: QuerySet[Any], filters: dict[str, Any]) -> QuerySet[Any]:
    """``alerts`` narrowed by validated ``AlertFilters`` data."""
    if filters.get("state"):
        alerts = alerts.filter(state=filters["state"])
    if filters.get("kind"):
        alerts = alerts.filter(kind=filters["kind"])
    if filters.get("call") is not None:
        alerts = alerts.filter(call_id=filters["call"])
    who = unicodedata.normalize("NFC", filters.get("agent") or "").strip()
    if who:
        agents = Participant.objects.filter(
            Q(raw_id=who) | Q(display_label__icontains=who),
            call=OuterRef("call_id"),
            role=ParticipantRole.AGENT,
        )
        alerts = alerts.filter(Exists(agents))
    return alerts


class ReportFilters(serializers.Serializer[dict[str, Any]]):
    """The agent report's range: calls started in it (by default the last 7 days)."""

    started_after = MomentField(
        required=False,
        help_text="Calls started at or after this moment (ISO 8601 date or date and time); "
        "by default 7 days before started_before.",
    )
    started_before = MomentField(
        end_of_day=True,
        required=False,
        help_text="Calls started before this moment; a date includes that whole day. By "
        "default now.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("started_before") or timezone.now()
        start = attrs.get("started_after") or end - timedelta(days=7)
        if start >= end:
            raise serializers.ValidationError({"started_after": ["Must be before started_before."]})
        return {"started_after": start, "started_before": end}
