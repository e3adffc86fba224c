"""Call history in the Django admin. Utterances are records of what was said: read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from streaming.models import (
    Alert,
    AlertRule,
    Call,
    CallAnalytics,
    CallEvent,
    Participant,
    Utterance,
)


class ParticipantInline(admin.TabularInline):
    model = Participant
    extra = 0
    fields = ("raw_id", "display_label", "kind", "role", "created_at")
    readonly_fields = ("raw_id", "kind", "created_at")


class UtteranceInline(admin.TabularInline):
    model = Utterance
    extra = 0
    fields = ("offset_ticks", "participant", "text", "confidence", "source")
    readonly_fields = fields
    ordering = ("offset_ticks", "pk")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return False


class CallEventInline(admin.TabularInline):
    model = CallEvent
    extra = 0
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

    def has_add_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return False


class AlertInline(admin.TabularInline):
    model = Alert
    extra = 0
    fields = ("at_ms", "kind", "message", "participant", "fired_at")
    readonly_fields = fields
    ordering = ("at_ms", "pk")

    def has_add_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return False


class CallAnalyticsInline(admin.StackedInline):
    model = CallAnalytics
    extra = 0
    can_delete = False
    fields = (
        "source",
        "final",
        "duration_ms",
        "talk_ms",
        "overlap_ms",
        "silence_ms",
        "longest_silence_ms",
        "longest_monologue_ms",
        "interruptions",
        "agent_talk_ratio",
        "speakers",
        "updated_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "phrase", "seconds", "percent", "speaker_role")
    list_editable = ("enabled",)
    list_filter = ("kind", "enabled")
    search_fields = ("name", "phrase")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled")}),
        ("Keyword", {"fields": ("phrase",)}),
        ("Thresholds", {"fields": ("seconds", "percent")}),
        ("Who", {"fields": ("speaker_role",)}),
    )


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Fired alerts are records of what happened: they can be read and deleted, not edited."""

    list_display = ("fired_at", "call", "kind", "message")
    list_filter = ("kind", "fired_at")
    search_fields = ("message", "call__connection_id")
    list_select_related = ("call",)
    readonly_fields = ("call", "rule", "kind", "message", "participant", "at_ms", "seq", "fired_at")
    exclude = ("episode",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = (
        "connection_id",
        "state",
        "caller",
        "managed",
        "transcript_source",
        "started_at",
        "ended_at",
    )
    list_filter = ("state", "managed", "transcript_source", "started_at")
    search_fields = ("connection_id", "correlation_id", "caller", "participants__raw_id")
    readonly_fields = (
        "connection_id",
        "correlation_id",
        "server_call_id",
        "callback_id",
        "managed",
        "caller",
        "caller_display_name",
        "callee",
        "media_state",
        "transcription_state",
        "participants_sequence",
        "created_at",
        "updated_at",
    )
    date_hierarchy = "created_at"
    inlines = (
        CallAnalyticsInline,
        ParticipantInline,
        AlertInline,
        UtteranceInline,
        CallEventInline,
    )


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("display_label", "role", "kind", "raw_id", "call")
    list_filter = ("role", "kind")
    search_fields = ("display_label", "raw_id", "call__connection_id")
    readonly_fields = ("call", "raw_id", "created_at")


@admin.register(Utterance)
class UtteranceAdmin(admin.ModelAdmin):
    list_display = ("call", "participant", "text", "confidence", "offset_ticks", "source")
    list_filter = ("source",)
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
        "dedupe_key",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
