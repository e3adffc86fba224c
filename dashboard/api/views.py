"""The API's views: calls, one call, its utterances and its transcript. Read-only.

Every queryset starts from ``visible_calls(request.user)``, so another team's call is a 404
on every endpoint, exactly like a call that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
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
from dashboard.api.ranges import Unsatisfiable, byte_range
from dashboard.api.renderers import (
    TRANSCRIPT_FORMATS,
    TRANSCRIPT_MEDIA_TYPES,
    TRANSCRIPT_RENDERERS,
    FlacRenderer,
    FormatFirstNegotiation,
    TranscriptRenderer,
)
from dashboard.api.serializers import (
    AgentReportSerializer,
    AlertSerializer,
    AlertTriageSerializer,
    CallDetailSerializer,
    CallListSerializer,
    ErrorSerializer,
    RecordingSerializer,
    TranscriptSerializer,
    UtteranceSerializer,
)
from dashboard.permissions import visible_calls
from dashboard.reports import agent_report
from dashboard.selectors import newest_first, spoken_order, user_calls
from streaming.history.exports import Transcript
from streaming.history.transcripts import transcript_for_call
from streaming.models import Alert, Call, Recording, RecordingAccess, Utterance
from streaming.recording.store import read_bytes
from streaming.selectors import ALERT_RELATED
from streaming.services.alerts import TRIAGE_STEPS, TriageError, alert_triage

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


ALERT_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The alert's id."
)
TRIAGE_STEP = OpenApiParameter(
    "step",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    enum=sorted(TRIAGE_STEPS),
    description="acknowledge, resolve or reopen.",
)


@extend_schema_view(
    post=extend_schema(
        operation_id="alerts_triage",
        summary="Acknowledge, resolve or reopen an alert",
        description=(
            "Any supervisor who may see the alert's call may take a step; every page watching "
            "the call sees it at once. Acknowledging an acknowledged alert changes its note; "
            "resolving keeps the acknowledgement; reopening clears both (docs/analytics.md)."
        ),
        parameters=[ALERT_ID, TRIAGE_STEP],
        request=AlertTriageSerializer,
        responses={(200, JSON): AlertSerializer, **_errors(400, 401, 403, 404, 406, 429)},
    )
)
class AlertTriageView(APIView):
    """``POST /api/alerts/<id>/<step>/``: the pages' triage, for API clients (a token)."""

    http_method_names: Sequence[str] = ["post", "options"]

    def post(self, request: Request, pk: int, step: str) -> Response:
        if step not in TRIAGE_STEPS:
            raise NotFound(f"No such step {step!r}: acknowledge, resolve or reopen.")
        if not 0 < pk < 2**63:
            raise NotFound("No such alert.")
        visible = visible_calls(request.user).values("pk")
        if not Alert.objects.filter(pk=pk, call_id__in=visible).exists():
            raise NotFound("No such alert.")
        given = AlertTriageSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            alert_triage(
                alert_id=pk, step=step, user=request.user, note=given.validated_data["note"]
            )
        except TriageError as error:
            raise ValidationError({"step": [str(error)]}) from None
        except Alert.DoesNotExist:
            raise NotFound("No such alert.") from None
        alert = Alert.objects.select_related(*ALERT_RELATED).get(pk=pk)
        return Response(AlertSerializer(alert).data)


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


@csrf_exempt  # it changes nothing: a POST to no resource is a JSON 404, not a CSRF page
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
                "recordings": url("calls") + "{id}/recordings/",
                "alerts": url("alerts"),
                "alert_triage": [url("alerts") + "{id}/" + step + "/" for step in TRIAGE_STEPS],
                "agent_report": url("agent-report"),
                "schema": url("schema"),
                "docs": url("docs"),
                "documentation": "docs/api.md in the Callsite repository",
            }
        )


@extend_schema_view(
    get=extend_schema(
        operation_id="calls_recordings_list",
        summary="A call's recordings: each participant's track, and everyone mixed",
        description=(
            "Each track starts at the call's first audio, so an utterance's offset is the same "
            "time in the file. Recordings are kept when CALLSITE_RECORDING is on."
        ),
        parameters=[CALL_ID],
        responses={
            (200, JSON): RecordingSerializer(many=True),
            **_errors(400, 401, 403, 404, 406, 429),
        },
    )
)
class CallRecordingsView(ReadOnlyMixin, generics.ListAPIView[Recording]):
    serializer_class = RecordingSerializer

    def get_queryset(self) -> QuerySet[Recording]:
        if self.fake_view():
            return Recording.objects.none()
        call_id = generics.get_object_or_404(
            visible_calls(self.request.user).values_list("pk", flat=True), pk=self.kwargs["pk"]
        )
        return (
            Recording.objects.filter(call_id=call_id)
            .exclude(file="")
            .select_related("participant")
            .order_by("kind", "pk")  # the mix first
        )


_RANGE_ERROR = "The Range starts past the end of the file (Content-Range: bytes */<size>)."


@extend_schema_view(
    get=extend_schema(
        operation_id="calls_recordings_file",
        summary="One recording as FLAC, whole or the byte range asked for",
        description=(
            "Answers a Range header (one range: bytes=100-199, bytes=1000-, bytes=-500) with 206 "
            "and exactly those bytes, or 416 past the end. Every request "
            "is recorded (who, which recording, which bytes). ?download=1 asks for an "
            "attachment, recorded as a download."
        ),
        parameters=[
            CALL_ID,
            OpenApiParameter(
                "recording_id",
                OpenApiTypes.INT,
                OpenApiParameter.PATH,
                description="The recording's id (from the call's recordings).",
            ),
            OpenApiParameter(
                "download",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="1: served as an attachment, recorded as a download.",
            ),
        ],
        responses={
            (200, "audio/flac"): OpenApiResponse(OpenApiTypes.BINARY, description="The file"),
            (206, "audio/flac"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The bytes the Range asked for"
            ),
            (416, JSON): OpenApiResponse(ErrorSerializer, description=_RANGE_ERROR),
            **_errors(400, 401, 403, 404, 406, 429),
        },
    )
)
class RecordingFileView(ReadOnlyMixin, APIView):
    renderer_classes = [FlacRenderer, JSONRenderer]

    def get(self, request: Request, pk: int, recording_id: int) -> HttpResponseBase:
        if not (0 < pk < 2**63 and 0 < recording_id < 2**63):  # no row has such an id
            raise NotFound
        recording = (
            Recording.objects.filter(
                pk=recording_id, call_id=pk, call__in=visible_calls(request.user)
            )
            .exclude(file="")
            .first()
        )
        if recording is None:
            raise NotFound
        download = request.query_params.get("download") == "1"
        asked = request.headers.get("Range", "")
        try:
            span = byte_range(asked, recording.size)
        except Unsatisfiable:
            _audit(request, recording, download, asked, 416)
            refused = JsonResponse({"detail": "Range not satisfiable."}, status=416)
            refused["Content-Range"] = f"bytes */{recording.size}"
            return refused
        first, last = span if span is not None else (0, recording.size - 1)
        status = 206 if span is not None else 200
        _audit(request, recording, download, asked, status)
        response = StreamingHttpResponse(
            read_bytes(str(recording.file.name), first, last - first + 1),
            status=status,
            content_type="audio/flac",
        )
        response["Accept-Ranges"] = "bytes"
        response["Content-Length"] = str(last - first + 1)
        if span is not None:
            response["Content-Range"] = f"bytes {first}-{last}/{recording.size}"
        name = f"call-{recording.call_id}-{recording.track or 'mixed'}.flac".replace(":", "-")
        disposition = "attachment" if download else "inline"
        response["Content-Disposition"] = f'{disposition}; filename="{name}"'
        response["Cache-Control"] = "private, no-store"
        return response

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):  # errors and OPTIONS are JSON
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSON
        return response


def _audit(request: Request, recording: Recording, download: bool, asked: str, status: int) -> None:
    user = request.user
    RecordingAccess.objects.create(
        recording=recording,
        call_id=recording.call_id,
        user=user if user.is_authenticated else None,
        username=user.get_username(),
        how=RecordingAccess.How.DOWNLOAD if download else RecordingAccess.How.LISTEN,
        byte_range=asked[:100],
        status=status,
    )
