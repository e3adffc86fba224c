"""Where alert rules deliver (edited on the rule), and the deliveries with every try.

A destination's secret is write-only here: the form never shows it, and leaving the field
empty keeps the one stored. Deliveries are records: read, filtered by state, and a failed
one can be queued again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from dashboard.admin.records import RecordInlineMixin, only_visible_calls
from streaming.models import AlertDelivery, AlertDestination, DeliveryAttempt, DeliveryState


class AlertDestinationForm(forms.ModelForm):
    url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Webhook and chat: where to POST (https://…). Chat webhook URLs are secrets.",
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook: the HMAC-SHA256 key. Never shown; leave empty to keep the current one.",
    )

    class Meta:
        model = AlertDestination
        fields = ("kind", "enabled", "url", "secret", "recipients")

    def clean_secret(self) -> str:
        given = str(self.cleaned_data.get("secret") or "")
        return given or (self.instance.secret if self.instance.pk else "")


class AlertDestinationInline(admin.StackedInline):
    model = AlertDestination
    form = AlertDestinationForm
    extra = 0
    fields = ("kind", "enabled", "url", "secret", "recipients", "has_secret")
    readonly_fields = ("has_secret",)

    @admin.display(boolean=True, description="Secret set")
    def has_secret(self, destination: AlertDestination) -> bool:
        return bool(destination.secret)


class DeliveryAttemptInline(RecordInlineMixin, admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "at", "ok", "status_code", "error", "duration_ms")
    readonly_fields = fields
    ordering = ("number", "pk")


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "alert",
        "destination",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("state", "destination__kind", "created_at")
    search_fields = ("alert__message", "alert__call__connection_id", "last_error")
    list_select_related = ("alert", "destination")
    readonly_fields = (
        "alert",
        "destination",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
        "created_at",
    )
    inlines = (DeliveryAttemptInline,)
    actions = ("queue_again",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertDelivery]:
        rows = super().get_queryset(request)
        return rows.filter(alert__in=only_visible_calls(_alerts(), request.user))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Queue the selected failed deliveries again")
    def queue_again(self, request: HttpRequest, queryset: QuerySet[AlertDelivery]) -> None:
        n = queryset.filter(state=DeliveryState.FAILED).update(
            state=DeliveryState.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
        self.message_user(request, f"{n} deliveries queued again.", messages.SUCCESS)


def _alerts() -> QuerySet[Any]:
    from streaming.models import Alert

    return Alert.objects.all()
