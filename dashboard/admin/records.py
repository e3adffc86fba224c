"""The records of a call in the admin (participants, utterances, alerts, events, figures)
and the alert rules: shown inline on the call and in lists of their own, never edited but
for the rules."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import (
    QuerySet,
)
from django.http import HttpRequest

from dashboard.permissions import sees_all_calls, visible_calls
from streaming.models import (
    Alert,
    AlertRule,
    CallAnalytics,
    CallEvent,
    Participant,
    Utterance,
)


def only_visible_calls(queryset: QuerySet[Any], user: Any) -> QuerySet[Any]:
    """Rows of ``queryset`` (which have a ``call``) that belong to calls ``user`` may see."""
    if sees_all_calls(user):
        return queryset
    return queryset.filter(call__in=visible_calls(user).values("pk"))


# ------------------------------------------------------------------------------- inlines


class RecordInlineMixin:
    """Rows that record what happened on a call: shown, never added, changed or deleted."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ParticipantInline(admin.TabularInline):
    """Who was on the call: their label and role may be corrected, nothing else."""

    model = Participant
    extra = 0
    can_delete = False
    fields = (
        "raw_id",
        "display_label",
        "display_name",
        "kind",
        "role",
        "in_call",
        "is_muted",
        "is_on_hold",
        "hold_ms",
        "longest_hold_ms",
        "mute_ms",
        "created_at",
    )
    readonly_fields = (
        "raw_id",
        "display_name",
        "kind",
        "in_call",
        "is_muted",
        "is_on_hold",
        "hold_ms",
        "longest_hold_ms",
        "mute_ms",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UtteranceInline(RecordInlineMixin, admin.TabularInline):
    model = Utterance
    fields = (
        "offset_ticks",
        "participant",
        "text",
        "confidence",
        "sentiment",
        "sentiment_source",
        "language",
        "redacted",
        "source",
    )
    readonly_fields = fields
    ordering = ("offset_ticks", "pk")
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Utterance]:
        return super().get_queryset(request).select_related("participant")


class CallEventInline(RecordInlineMixin, admin.TabularInline):
    model = CallEvent
    fields = (
        "received_at",
        "type",
        "result_code",
        "result_subcode",
        "result_message",
        "is_failure",
    )
    readonly_fields = fields
    ordering = ("received_at", "pk")


class AlertInline(RecordInlineMixin, admin.TabularInline):
    model = Alert
    fields = ("at_ms", "kind", "message", "participant", "fired_at")
    readonly_fields = fields
    ordering = ("at_ms", "pk")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return super().get_queryset(request).select_related("participant")


class CallAnalyticsInline(RecordInlineMixin, admin.StackedInline):
    model = CallAnalytics
    fields = (
        "source",
        "final",
        "duration_ms",
        "talk_ms",
        "overlap_ms",
        "silence_ms",
        "hold_ms",
        "longest_silence_ms",
        "longest_monologue_ms",
        "interruptions",
        "agent_talk_ratio",
        "speakers",
        "updated_at",
    )
    readonly_fields = fields


# ------------------------------------------------------------------------- other records


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "enabled",
        "phrase",
        "seconds",
        "percent",
        "finals",
        "speaker_role",
    )
    list_editable = ("enabled",)
    list_filter = ("kind", "enabled")
    search_fields = ("name", "phrase")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled")}),
        ("Keyword or phrase", {"fields": ("phrase", "window", "expect")}),
        ("Thresholds", {"fields": ("seconds", "percent", "percent_max", "finals")}),
        ("Who", {"fields": ("speaker_role",)}),
    )

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        from dashboard.admin.delivery import AlertDestinationInline

        return [AlertDestinationInline]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Fired alerts are records of what happened: they can be read and deleted, not edited."""

    list_display = ("fired_at", "call", "kind", "message", "state")
    list_filter = ("state", "kind", "fired_at")
    search_fields = ("message", "call__connection_id")
    list_select_related = ("call",)
    # Triage happens on the pages, which tell every supervisor watching.
    readonly_fields = (
        "call",
        "rule",
        "kind",
        "message",
        "participant",
        "at_ms",
        "seq",
        "fired_at",
        "state",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_by",
        "resolved_at",
        "note",
    )
    exclude = ("episode",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("display_label", "role", "kind", "raw_id", "hold_ms", "call")
    list_filter = ("role", "kind", "is_on_hold", "is_muted")
    search_fields = ("display_label", "raw_id", "call__connection_id")
    list_select_related = ("call",)
    readonly_fields = (
        "call",
        "raw_id",
        "display_name",
        "is_muted",
        "is_on_hold",
        "held_since",
        "hold_ms",
        "longest_hold_ms",
        "hold_periods",
        "muted_since",
        "mute_ms",
        "longest_mute_ms",
        "mute_periods",
        "created_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participant]:
        return only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Utterance)
class UtteranceAdmin(admin.ModelAdmin):
    list_display = (
        "call",
        "participant",
        "text",
        "confidence",
        "sentiment",
        "language",
        "redacted",
        "offset_ticks",
        "source",
    )
    list_filter = ("source", "sentiment", "sentiment_source", "redacted")
    search_fields = ("text", "call__connection_id")
    list_select_related = ("call", "participant")
    readonly_fields = (
        "call",
        "participant",
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
        "redaction",
        "dedupe_key",
        "created_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Utterance]:
        return only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
