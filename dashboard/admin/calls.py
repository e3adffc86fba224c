"""Call history in the Django admin: the call list, its filters and the call page.

Every call list and call page starts from ``dashboard.permissions.visible_calls``: a
supervisor who is admin staff sees their teams' calls only, here as on the dashboard. What
was said, what fired and what ACS reported are records: they are shown, never edited.
See docs/history.md.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections import Counter
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import (
    Exists,
    OuterRef,
    Q,
    QuerySet,
)
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from dashboard.admin.actions import ControlActionInline
from dashboard.admin.downloads import (
    MAX_TRANSCRIPT_DOWNLOAD,
    TranscriptFormatForm,
    download_page,
    transcripts_response,
)
from dashboard.admin.recordings import RecordingInline
from dashboard.admin.records import (
    AlertInline,
    CallAnalyticsInline,
    CallEventInline,
    ParticipantInline,
    UtteranceInline,
    only_visible_calls,
)
from dashboard.models import canonical_address
from dashboard.permissions import sees_all_calls, visible_calls
from dashboard.selectors import DeferredJoinPaginator, annotated_calls
from streaming import units
from streaming.history.search import calls_matching
from streaming.models import (
    Alert,
    AlertKind,
    Call,
    CallState,
    Participant,
    ParticipantRole,
)
from streaming.selectors import call_duration_ms

# ------------------------------------------------------------------------------- filters


class ParticipantFilter(admin.SimpleListFilter):
    """Calls with a participant. The choices are the agents and bots seen on visible calls
    (customers are too many to list: search for their number instead); the parameter also
    takes any raw id, phone number (``+1 555 123-0000``) or exact label."""

    title = "participant"
    parameter_name = "participant"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        rows = (
            only_visible_calls(Participant.objects.all(), request.user)
            .filter(role__in=[ParticipantRole.AGENT, ParticipantRole.BOT])
            .order_by("display_label", "raw_id")
            .values_list("raw_id", "display_label")
            .distinct()
        )
        labels: dict[str, str] = {}
        for raw_id, label in rows:
            labels.setdefault(raw_id, label or raw_id)
        uses = Counter(labels.values())
        return [
            (raw_id, f"{label} ({raw_id})" if uses[label] > 1 else label)
            for raw_id, label in labels.items()
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        raw_ids = {value}
        with contextlib.suppress(ValidationError):  # not an address: a label, or no match
            raw_ids.add(canonical_address(value)[0])
        match = Participant.objects.filter(call=OuterRef("pk")).filter(
            Q(raw_id__in=raw_ids) | Q(display_label__iexact=value)
        )
        return queryset.filter(Exists(match))


class HasAlertsFilter(admin.SimpleListFilter):
    title = "has alerts"
    parameter_name = "has_alerts"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        fired = Exists(Alert.objects.filter(call=OuterRef("pk")))
        if self.value() == "yes":
            return queryset.filter(fired)
        if self.value() == "no":
            return queryset.filter(~fired)
        return queryset


class AlertKindFilter(admin.SimpleListFilter):
    title = "alert kind"
    parameter_name = "alert_kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(value), str(label)) for value, label in AlertKind.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        return queryset.filter(Exists(Alert.objects.filter(call=OuterRef("pk"), kind=self.value())))


# ------------------------------------------------------------------------------ call admin


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = (
        "connection_id",
        "state",
        "started_at",
        "duration",
        "participant_labels",
        "agent_talk",
        "mean_confidence",
        "alert_total",
        "hold_time",
        "ended_sentiment_shown",
    )
    list_filter = (
        "started_at",
        "state",
        ParticipantFilter,
        HasAlertsFilter,
        AlertKindFilter,
        "transcript_source",
        "managed",
    )
    # 50 rows with their figures, no second count of every call, and no date drill-down (its
    # two queries evaluated a search twice more): docs/benchmarks.md, "Call history and
    # exports". Dates are filtered on the side ("started at").
    list_per_page = 50
    show_full_result_count = False
    paginator = DeferredJoinPaginator
    # get_search_results does the searching; a search field makes the admin show the box.
    search_fields = ("connection_id",)
    search_help_text = (
        "Words said in the call (on PostgreSQL a “quoted phrase” matches words in order), "
        "or part of a call connection id, caller, callee or participant."
    )
    actions = ("download_transcripts",)
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
        "origin",
        "room_id",
        "placed_by",
        "bidirectional",
        "recording_id",
        "recording_state",
        "secure_pause_since",
        "secure_pause_periods",
        "transcription_options",
        "participants_sequence",
        "created_at",
        "updated_at",
    )
    inlines = (
        CallAnalyticsInline,
        ParticipantInline,
        AlertInline,
        UtteranceInline,
        CallEventInline,
        ControlActionInline,
        RecordingInline,
    )

    # -- which calls

    def get_queryset(self, request: HttpRequest) -> QuerySet[Call]:
        """The user's visible calls with the list's figures, in a constant number of queries:
        counts and averages are correlated subqueries (no join multiplies rows), the talk
        ratio comes from the one-to-one analytics row, participants are prefetched."""
        queryset = visible_calls(request.user)
        ordering = self.get_ordering(request)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return annotated_calls(queryset)

    def _is_visible(self, request: HttpRequest, obj: Call | None) -> bool:
        if obj is None or sees_all_calls(request.user):
            return True
        # Asked several times per page: once per call and request is enough.
        known: dict[int, bool] = request.__dict__.setdefault("_callsite_visible_calls", {})
        if obj.pk not in known:
            known[obj.pk] = visible_calls(request.user).filter(pk=obj.pk).exists()
        return known[obj.pk]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # calls come from ACS

    def has_view_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return super().has_view_permission(request, obj) and self._is_visible(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return super().has_change_permission(request, obj) and self._is_visible(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self._is_visible(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Call], search_term: str
    ) -> tuple[QuerySet[Call], bool]:
        """Calls in which the term was said (``streaming.history.search``), or whose connection id,
        caller, callee or a participant's raw id or label contains it."""
        term = unicodedata.normalize("NFC", search_term).strip()
        if not term:
            return queryset, False
        said = calls_matching(Call.objects.all(), term).values("pk")
        participant = Participant.objects.filter(call=OuterRef("pk")).filter(
            Q(raw_id__icontains=term) | Q(display_label__icontains=term)
        )
        return (
            queryset.filter(
                Q(pk__in=said)
                | Q(connection_id__icontains=term)
                | Q(caller__icontains=term)
                | Q(caller_display_name__icontains=term)
                | Q(callee__icontains=term)
                | Exists(participant)
            ),
            False,
        )

    # -- columns

    @admin.display(description="duration", ordering="duration")
    def duration(self, call: Call) -> str | None:
        length = call_duration_ms(call)
        if length is None:
            return None
        return units.clock(length) + ("" if call.state == CallState.ENDED else " so far")

    @admin.display(description="participants")
    def participant_labels(self, call: Call) -> str | None:
        labels = [p.display_label or p.raw_id for p in call.participants.all()]
        return ", ".join(labels) or None

    @admin.display(description="agent talk", ordering="agent_talk_ratio")
    def agent_talk(self, call: Call) -> str | None:
        ratio: float | None = getattr(call, "agent_talk_ratio", None)
        return None if ratio is None else f"{ratio:.0%}"

    @admin.display(description="mean confidence", ordering="mean_confidence")
    def mean_confidence(self, call: Call) -> str | None:
        mean: float | None = getattr(call, "mean_confidence", None)
        return None if mean is None else f"{mean:.2f}"

    @admin.display(description="alerts", ordering="alert_count")
    def alert_total(self, call: Call) -> int:
        return int(getattr(call, "alert_count", 0) or 0)

    @admin.display(description="on hold", ordering="hold_ms")
    def hold_time(self, call: Call) -> str:
        held = int(getattr(call, "hold_ms", 0) or 0)
        return units.clock(held) if held else ""

    @admin.display(description="ended", ordering="ended_sentiment")
    def ended_sentiment_shown(self, call: Call) -> str:
        return str(getattr(call, "ended_sentiment", "") or "")

    # -- download

    @admin.action(description="Download transcripts", permissions=["view"])
    def download_transcripts(
        self, request: HttpRequest, queryset: QuerySet[Call]
    ) -> HttpResponse | None:
        """Ask for a format, then send the selected calls' transcripts (visible calls only:
        ``queryset`` comes from ``get_queryset``)."""
        calls = list(queryset.only("pk", "connection_id", "started_at").prefetch_related(None))
        if not calls:
            self.message_user(request, "None of the selected calls can be shown.", messages.WARNING)
            return None
        if len(calls) > MAX_TRANSCRIPT_DOWNLOAD:
            self.message_user(
                request,
                f"Select at most {MAX_TRANSCRIPT_DOWNLOAD} calls to download at once.",
                messages.WARNING,
            )
            return None
        form = TranscriptFormatForm(request.POST if "post" in request.POST else None)
        if form.is_valid():
            return transcripts_response(
                ((call.pk, call.connection_id) for call in calls), form.cleaned_data["format"]
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Download transcripts",
            "opts": self.model._meta,
            "calls": calls,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_query": f"?{request.GET.urlencode()}" if request.GET else "",
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, download_page(), context)
