"""Supervisors' actions on calls in the Django admin: the audit trail, read-only, and the
profiles that hold each supervisor's own number and ACS id ("join this call")."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from dashboard.admin.records import RecordInlineMixin, only_visible_calls
from dashboard.models import SupervisorProfile
from streaming.models import ControlAction

AUDIT_FIELDS = (
    "created_at",
    "username",
    "label",
    "target",
    "status",
    "outcome",
    "result_code",
    "settled_at",
)


class ControlActionInline(RecordInlineMixin, admin.TabularInline):
    """A call's audit trail on its admin page."""

    model = ControlAction
    fields = (*AUDIT_FIELDS, "request")
    readonly_fields = fields
    ordering = ("created_at", "pk")


@admin.register(ControlAction)
class ControlActionAdmin(admin.ModelAdmin):
    """Every action a supervisor took: who, when, on which call, what was asked, what came
    of it. Records: read, never added or changed here."""

    list_display = ("created_at", "username", "label", "call", "target", "status")
    list_filter = ("status", "action", "created_at")
    search_fields = ("username", "target", "call__connection_id", "operation_context")
    list_select_related = ("call",)
    readonly_fields = (
        "call",
        "user",
        "action",
        "request",
        "operation_context",
        *AUDIT_FIELDS,
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ControlAction]:
        return only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SupervisorProfile)
class SupervisorProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "phone_number", "acs_id")
    search_fields = ("user__username", "phone_number", "acs_id")
    autocomplete_fields = ("user",)
