"""The API's views: calls, one call, its utterances and its transcript. Read-only.

Every queryset starts from ``visible_calls(request.user)``, so another team's call is a 404
on every endpoint, exactly like a call that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard.api.filters import (
    AlertFilters,
    CallFilters,
    ReportFilters,
    filter_alerts,
    filter_calls,
)
from dashboard.api.renderers import (
    TRANSCRIPT_FORMATS,
    TRANSCRIPT_MEDIA_TYPES,
    TRANSCRIPT_RENDERERS,
    FormatFirstNegotiation,
    TranscriptRenderer,
)
from dashboard.api.serializers import (
    AgentReportSerializer,
    AlertSerializer,
    CallDetailSerializer,
    CallListSerializer,
    ErrorSerializer,
    TranscriptSerializer,
    UtteranceSerializer,
)
from dashboard.permissions import visible_calls
from dashboard.reports import agent_report
from dashboard.selectors import newest_first, spoken_order, user_calls
from streaming.history.exports import Transcript
from streaming.history.transcripts import transcript_for_call
from streaming.models import Alert, Call, Utterance
from streaming.selectors import ALERT_RELATED

JSON = "application/json"

_ERRORS = {
    400: "A query parameter is not valid: each one named, with what is wrong (any endpoint"
    " refuses a NUL character in the query this way).",
    401: "No credentials, or wrong ones (Authorization: Token <key>, or a session).",
    403: "The user may not view calls (no streaming.view_call permission).",
    404: "No such call among those the user may see (or no such page).",
    406: "None of the media types in the Accept header can be served.",
    429: "Too many requests for this user: retry after the Retry-After header's seconds.",
}

# A parameter's problems by its name, or (a NUL in the query string, refused before any view:
# callsite.middleware) {"error": reason}.
_VALIDATION_ERROR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
    },
}


def _errors(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    """The JSON error responses an endpoint can give, for the OpenAPI schema."""
    return {
        (code, JSON): OpenApiResponse(
            response=_VALIDATION_ERROR if code == 400 else ErrorSerializer,
            description=_ERRORS[code],
        )
        for code in codes
    }


CALL_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The call's id."
)


class ReadOnlyMixin:
    http_method_names: Sequence[str] = ["get", "head", "options"]

    def fake_view(self) -> bool:
        """True while drf-spectacular inspects the view to write the schema."""
        return bool(getattr(self, "swagger_fake_view", False))


@extend_schema_view(
    get=extend_schema(
        operation_id="calls_list",
        summary="Calls the user may see, newest first",
        parameters=[CallFilters],
        responses={
            (200, JSON): CallListSerializer(many=True),
            **_errors(400, 401, 403, 404, 406, 429),
        },
    )
)
class CallListView(ReadOnlyMixin, generics.ListAPIView[Call]):
    serializer_class = CallListSerializer

    def get_queryset(self) -> QuerySet[Call]:
        if self.fake_view():
            return Call.objects.none()
        filters = CallFilters(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        calls = filter_calls(user_calls(self.request.user), filters.validated_data)
        return newest_first(calls)


@extend_schema_view(
    get=extend_schema(
        operation_id="calls_retrieve",
        summary="One call: participants, figures and analytics",
        parameters=[CALL_ID],
        responses={(200, JSON): CallDetailSerializer, **_errors(400, 401, 403, 404, 406, 429)},
    )
)
class CallDetailView(ReadOnlyMixin, generics.RetrieveAPIView[Call]):
    serializer_class = CallDetailSerializer

    def get_queryset(self) -> QuerySet[Call]:
        if self.fake_view():
            return Call.objects.none()
        return user_calls(self.request.user).select_related("analytics")


@extend_schema_view(
    get=extend_schema(
        operation_id="calls_utterances_list",
        summary="A call's final utterances in spoken order",
        description=(
            "By start, then in the order they were stored; utterances without a start come last."
        ),
        parameters=[CALL_ID],
        responses={
            (200, JSON): UtteranceSerializer(many=True),
            **_errors(400, 401, 403, 404, 406, 429),
        },
    )
)
class CallUtterancesView(ReadOnlyMixin, generics.ListAPIView[Utterance]):
    serializer_class = UtteranceSerializer

    def get_queryset(self) -> QuerySet[Utterance]:
        if self.fake_view():
            return Utterance.objects.none()
        call_id = generics.get_object_or_404(
            visible_calls(self.request.user).values_list("pk", flat=True), pk=self.kwargs["pk"]
        )
        return spoken_order(Utterance.objects.filter(call_id=call_id).select_related("participant"))


@extend_schema_view(
    get=extend_schema(
        operation_id="alerts_list",
        summary="Alerts on the calls the user may see, newest first",
        description=(
            "Each alert with its triage: open, acknowledged (by whom, when) or resolved, and "
            "the supervisor's note. Filter by state, kind, call and agent."
        ),
        parameters=[AlertFilters],
        responses={
            (200, JSON): AlertSerializer(many=True),
            **_errors(400, 401, 403, 404, 406, 429),
        },
    )
)
class AlertListView(ReadOnlyMixin, generics.ListAPIView[Alert]):
    serializer_class = AlertSerializer

    def get_queryset(self) -> QuerySet[Alert]:
        if self.fake_view():
            return Alert.objects.none()
        filters = AlertFilters(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        calls = visible_calls(self.request.user).values("pk")
        alerts = Alert.objects.filter(call_id__in=calls).select_related(*ALERT_RELATED)
        return filter_alerts(alerts, filters.validated_data).order_by("-fired_at", "-pk")


@extend_schema_view(
    get=extend_schema(
        operation_id="reports_agents",
        summary="Figures per agent and per team over a date range",
        description=(
            "Calls, handle time, talk ratio, interruptions, silence, hold, alerts and sentiment "
            "of the calls the user may see that started in the range, per agent of the "
            "directory heard on them and per team (docs/reports.md)."
        ),
        parameters=[ReportFilters],
        responses={(200, JSON): AgentReportSerializer, **_errors(400, 401, 403, 404, 406, 429)},
    )
)
class AgentReportView(ReadOnlyMixin, APIView):
    def get(self, request: Request, **kwargs: Any) -> Response:
        filters = ReportFilters(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        span = filters.validated_data
        report = agent_report(user=request.user, **span)
        return Response({**span, **report})


_TRANSCRIPT_BODIES: dict[tuple[int, str], Any] = {
    (200, media_type): OpenApiResponse(
        response=TranscriptSerializer if media_type == JSON else OpenApiTypes.STR,
        description=(
            "The transcript (docs/exports.md), as an attachment named call-<id>.<extension>."
        ),
    )
    for media_type in TRANSCRIPT_MEDIA_TYPES
}


SPREADSHEET = OpenApiParameter(
    "for",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=["spreadsheet"],
    description=(
        "CSV only: for=spreadsheet writes a cell that begins with =, +, -, @, a tab or a "
        "carriage return after an apostrophe, so a spreadsheet shows it as text instead of "
        "running it as a formula (the call page's CSV download does this)."
    ),
)


@extend_schema_view(
    get=extend_schema(
        operation_id="calls_transcript_negotiated",
        summary="A call's transcript, in the format the Accept header asks for",
        description=(
            "Accept: application/json (the default, and for */*), text/plain (also for text/*), "
            "text/csv, application/x-subrip or text/vtt; anything else is 406. ?format=csv (or "
            "json, txt, srt, vtt) overrides the Accept header. Errors are JSON."
        ),
        parameters=[CALL_ID, SPREADSHEET],
        responses={**_TRANSCRIPT_BODIES, **_errors(400, 401, 403, 404, 406, 429)},
    )
)
class CallTranscriptView(ReadOnlyMixin, APIView):
    """A call's transcript, rendered by the renderer content negotiation picked."""

    renderer_classes = TRANSCRIPT_RENDERERS
    content_negotiation_class = FormatFirstNegotiation
    negotiated = True

    def get(self, request: Request, pk: int, **kwargs: Any) -> Response:
        if not visible_calls(request.user).filter(pk=pk).exists():
            raise NotFound
        transcript = transcript_for_call(pk)
        if transcript is None:  # deleted in between
            raise NotFound
        return Response(transcript)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if not isinstance(response, Response):
            return response
        renderer = response.accepted_renderer
        if isinstance(response.data, Transcript) and isinstance(renderer, TranscriptRenderer):
            response.content_type = renderer.content_type
            response["Content-Disposition"] = (
                f'attachment; filename="call-{response.data.call_id}.{renderer.extension}"'
            )
        else:
            # Errors and OPTIONS are JSON whatever the format asked for.
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSON
        if self.negotiated:
            patch_vary_headers(response, ["Accept"])
        return response


@extend_schema_view(
    get=extend_schema(
        operation_id="calls_transcript_file",
        summary="A call's transcript in the format its extension names",
        description=(
            "The extension decides the format, whatever the Accept header. Errors are JSON."
        ),
        parameters=[
            OpenApiParameter("format", exclude=True),
            CALL_ID,
            OpenApiParameter(
                "fmt",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                enum=list(TRANSCRIPT_FORMATS),
                description="json, txt, csv, srt or vtt (docs/exports.md).",
            ),
            SPREADSHEET,
        ],
        responses={**_TRANSCRIPT_BODIES, **_errors(400, 401, 403, 404, 429)},
    )
)
class CallTranscriptFileView(CallTranscriptView):
    """``transcript.<fmt>``: the extension decides the format, whatever the Accept header."""

    negotiated = False

    def get_format_suffix(self, **kwargs: Any) -> str | None:
        return kwargs.get("fmt")


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other URL under /api/: a JSON 404 like the API's own, not Django's HTML page.

    A URL that only lacks its trailing slash is redirected, as ``APPEND_SLASH`` would have.
    """
    if settings.APPEND_SLASH and not request.path_info.endswith("/"):
        try:
            match = resolve(f"{request.path_info}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return JsonResponse({"detail": "Not found."}, status=404)


@extend_schema(exclude=True)
class ApiIndexView(ReadOnlyMixin, APIView):
    """``/api/``: what the API offers, as links a client (or a person) can follow."""

    renderer_classes = [JSONRenderer]

    def get(self, request: Request) -> Response:
        def url(name: str, *args: Any) -> str:
            return request.build_absolute_uri(reverse(f"api:{name}", args=args))

        formats = sorted(TRANSCRIPT_FORMATS)
        return Response(
            {
                "calls": url("calls"),
                "call": url("calls") + "{id}/",
                "utterances": url("calls") + "{id}/utterances/",
                "transcript": url("calls") + "{id}/transcript/",
                "transcript_files": [url("calls") + "{id}/transcript." + f for f in formats],
                "schema": url("schema"),
                "docs": url("docs"),
                "documentation": "docs/api.md in the Callsite repository",
            }
        )
