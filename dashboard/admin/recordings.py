"""A call's recordings in the admin (a player on the call's page) and the audit of who
listened to or downloaded them: records, never added or changed here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from dashboard.admin.records import RecordInlineMixin, only_visible_calls
from streaming import units
from streaming.models import Recording, RecordingAccess, RecordingKind


class RecordingInline(RecordInlineMixin, admin.TabularInline):
    model = Recording
    fields = ("who", "length", "size", "assembled_at", "player")
    readonly_fields = fields
    ordering = ("kind", "pk")
    verbose_name_plural = "recordings (each participant, and everyone mixed)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Recording]:
        return super().get_queryset(request).exclude(file="").select_related("participant")

    @admin.display(description="who")
    def who(self, recording: Recording) -> str:
        if recording.kind == RecordingKind.MIXED:
            return "Everyone"
        return recording.participant.display_label if recording.participant else recording.track

    @admin.display(description="length")
    def length(self, recording: Recording) -> str:
        return units.clock(recording.duration_ticks / 10_000)

    @admin.display(description="listen")
    def player(self, recording: Recording) -> str:
        url = reverse("api:recording-file", args=[recording.call_id, recording.pk])
        return format_html(
            '<audio controls preload="none" src="{}"></audio> <a href="{}?download=1">Download</a>',
            url,
            url,
        )


@admin.register(RecordingAccess)
class RecordingAccessAdmin(admin.ModelAdmin):
    """Who listened to or downloaded which recording, which bytes, and when."""

    list_display = ("at", "username", "how", "call", "recording", "byte_range", "status")
    list_filter = ("how", "at")
    search_fields = ("username", "call__connection_id")
    list_select_related = ("call", "recording")
    readonly_fields = ("at", "username", "user", "how", "call", "recording", "byte_range", "status")

    def get_queryset(self, request: HttpRequest) -> QuerySet[RecordingAccess]:
        return only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an audit that could be edited would prove nothing
