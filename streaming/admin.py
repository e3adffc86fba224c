"""Call history in the Django admin.

Every call list and call page starts from ``dashboard.permissions.visible_calls``: a
supervisor who is admin staff sees their teams' calls only, here as on the dashboard. What
was said, what fired and what ACS reported are records: they are shown, never edited.
See docs/history.md.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections import Counter
from collections.abc import Iterable
from functools import cache
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import (
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.template.backends.base import BaseEngine
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from dashboard.api.pagination import DeferredJoinPaginator
from dashboard.models import canonical_address
from dashboard.permissions import sees_all_calls, visible_calls
from streaming import exports, units
from streaming.models import (
    Alert,
    AlertKind,
    AlertRule,
    Call,
    CallAnalytics,
    CallEvent,
    CallState,
    Participant,
    ParticipantRole,
    Utterance,
)
from streaming.search import calls_matching
from streaming.selectors import call_duration_ms
from streaming.transcripts import transcript_for_call

# At most this many calls' transcripts in one download (each costs three queries).
MAX_TRANSCRIPT_DOWNLOAD = 1000


def _only_visible_calls(queryset: QuerySet[Any], user: Any) -> QuerySet[Any]:
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
    fields = ("raw_id", "display_label", "kind", "role", "in_call", "created_at")
    readonly_fields = ("raw_id", "kind", "in_call", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UtteranceInline(RecordInlineMixin, admin.TabularInline):
    model = Utterance
    fields = ("offset_ticks", "participant", "text", "confidence", "source")
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
        "longest_silence_ms",
        "longest_monologue_ms",
        "interruptions",
        "agent_talk_ratio",
        "speakers",
        "updated_at",
    )
    readonly_fields = fields


# ------------------------------------------------------------------------------- filters


class ParticipantFilter(admin.SimpleListFilter):
    """Calls with a participant. The choices are the agents and bots seen on visible calls
    (customers are too many to list: search for their number instead); the parameter also
    takes any raw id, phone number (``+1 555 123-0000``) or exact label."""

    title = "participant"
    parameter_name = "participant"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        rows = (
            _only_visible_calls(Participant.objects.all(), request.user)
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


# ----------------------------------------------------------------------- transcript download


class TranscriptFormatForm(forms.Form):
    format = forms.ChoiceField(
        label="Format",
        choices=[
            ("txt", "Text (.txt): a readable transcript"),
            ("json", "JSON (.json): everything, exact, for programs"),
            ("csv", "CSV (.csv): one row per utterance, for spreadsheets"),
            ("srt", "SubRip (.srt): subtitles for video players and editors"),
            ("vtt", "WebVTT (.vtt): captions for browsers and players"),
        ],
        initial="txt",
        widget=forms.RadioSelect,
    )


_DOWNLOAD_PAGE = """{% extends "admin/base_site.html" %}
{% load i18n l10n admin_urls %}
{% block extrahead %}{{ block.super }}{{ media }}{% endblock %}
{% block bodyclass %}{{ block.super }} app-{{ opts.app_label }} model-{{ opts.model_name }} \
download-transcripts{% endblock %}
{% block breadcrumbs %}
<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">{% translate 'Home' %}</a>
&rsaquo; <a href="{% url 'admin:app_list' app_label=opts.app_label %}">\
{{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}{{ changelist_query }}">\
{{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; {{ title }}
</div>
{% endblock %}
{% block content %}
<form method="post" id="download-transcripts">{% csrf_token %}
<p>{% if calls|length == 1 %}The transcript of this call is downloaded as one file:\
{% else %}The transcripts of these {{ calls|length }} calls are downloaded as a ZIP \
archive, one file per call:{% endif %}</p>
<ul class="download-calls">
{% for call in calls %}<li>{{ call }}{% if call.started_at %} \
({{ call.started_at }}){% endif %}</li>
{% endfor %}</ul>
<fieldset class="module aligned">
{% for field in form %}<div class="form-row field-{{ field.name }}">
{{ field.errors }}<div><div class="flex-container">{{ field.label_tag }}{{ field }}</div></div>
</div>{% endfor %}
</fieldset>
<div class="submit-row">
{% for call in calls %}
<input type="hidden" name="{{ action_checkbox_name }}" value="{{ call.pk|unlocalize }}">
{% endfor %}
<input type="hidden" name="action" value="download_transcripts">
<input type="hidden" name="post" value="yes">
<input type="submit" class="default" value="Download">
<a href="{% url opts|admin_urlname:'changelist' %}{{ changelist_query }}" \
class="button cancel-link">Cancel</a>
</div>
</form>
{% endblock %}
"""


@cache
def _download_page() -> Any:
    engine: BaseEngine = engines["django"]
    return engine.from_string(_DOWNLOAD_PAGE)


def transcript_filename(call_id: int, connection_id: str | None, fmt: str) -> str:
    """``call-<id>-<connection id slug>.<ext>`` (``call-<id>.<ext>`` without an id)."""
    extension = exports.FORMATS[fmt][1]
    slug = slugify(connection_id or "")[:80].strip("-")
    return f"call-{call_id}-{slug}.{extension}" if slug else f"call-{call_id}.{extension}"


def transcripts_response(calls: Iterable[tuple[int, str | None]], fmt: str) -> HttpResponse:
    """One call's transcript as a file, or several as a ZIP of one file per call."""
    files: list[tuple[str, str, str]] = []
    for call_id, connection_id in calls:
        transcript = transcript_for_call(call_id)
        if transcript is None:  # deleted since it was selected
            continue
        body, content_type = exports.render(transcript, fmt)
        files.append((transcript_filename(call_id, connection_id, fmt), body, content_type))
    if len(files) == 1:
        name, body, content_type = files[0]
        response = HttpResponse(body.encode("utf-8"), content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(True, name)
        return response
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body, _content_type in files:
            archive.writestr(name, body.encode("utf-8"))
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    archive_name = f"transcripts-{fmt}-{timezone.now():%Y%m%d-%H%M%S}.zip"
    response["Content-Disposition"] = content_disposition_header(True, archive_name)
    return response


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
        mean_confidence = (
            Utterance.objects.filter(call=OuterRef("pk"))
            .order_by()
            .values("call")
            .annotate(mean=Avg("confidence"))
            .values("mean")
        )
        alert_count = (
            Alert.objects.filter(call=OuterRef("pk"))
            .order_by()
            .values("call")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return queryset.annotate(
            duration=ExpressionWrapper(
                F("ended_at") - F("started_at"), output_field=DurationField()
            ),
            talk_ratio=F("analytics__agent_talk_ratio"),
            confidence_mean=Subquery(mean_confidence, output_field=FloatField()),
            alert_count=Coalesce(Subquery(alert_count, output_field=IntegerField()), Value(0)),
        ).prefetch_related("participants")

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
        """Calls in which the term was said (``streaming.search``), or whose connection id,
        caller, callee or a participant's raw id or label contains it."""
        term = search_term.strip()
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

    @admin.display(description="agent talk", ordering="talk_ratio")
    def agent_talk(self, call: Call) -> str | None:
        ratio: float | None = getattr(call, "talk_ratio", None)
        return None if ratio is None else f"{ratio:.0%}"

    @admin.display(description="mean confidence", ordering="confidence_mean")
    def mean_confidence(self, call: Call) -> str | None:
        mean: float | None = getattr(call, "confidence_mean", None)
        return None if mean is None else f"{mean:.2f}"

    @admin.display(description="alerts", ordering="alert_count")
    def alert_total(self, call: Call) -> int:
        return int(getattr(call, "alert_count", 0) or 0)

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
        return TemplateResponse(request, _download_page(), context)


# ------------------------------------------------------------------------- other records


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return _only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("display_label", "role", "kind", "raw_id", "call")
    list_filter = ("role", "kind")
    search_fields = ("display_label", "raw_id", "call__connection_id")
    list_select_related = ("call",)
    readonly_fields = ("call", "raw_id", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participant]:
        return _only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Utterance]:
        return _only_visible_calls(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
