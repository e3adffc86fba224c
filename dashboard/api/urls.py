"""/api/: an index, calls, one call, its utterances, its transcript, its recordings, alerts,
the OpenAPI schema and its browsable docs."""

from __future__ import annotations

from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dashboard.api import views
from dashboard.api.renderers import TRANSCRIPT_FORMATS


class CallIdConverter:
    """Any integer, so that every id a client may send is answered by the API (a JSON 404
    for one that names no call) and not by Django's HTML page for unknown URLs."""

    regex = "-?[0-9]+"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class TranscriptFormatConverter:
    regex = "|".join(TRANSCRIPT_FORMATS)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(CallIdConverter, "call_id")
register_converter(TranscriptFormatConverter, "transcript_format")

app_name = "api"

urlpatterns = [
    path("", views.ApiIndexView.as_view(), name="index"),
    path("calls/", views.CallListView.as_view(), name="calls"),
    path("calls/<call_id:pk>/", views.CallDetailView.as_view(), name="call"),
    path("calls/<call_id:pk>/utterances/", views.CallUtterancesView.as_view(), name="utterances"),
    path("calls/<call_id:pk>/transcript/", views.CallTranscriptView.as_view(), name="transcript"),
    path(
        "calls/<call_id:pk>/transcript.<transcript_format:fmt>",
        views.CallTranscriptFileView.as_view(),
        name="transcript-file",
    ),
    path("calls/<call_id:pk>/recordings/", views.CallRecordingsView.as_view(), name="recordings"),
    path(
        "calls/<call_id:pk>/recordings/<call_id:recording_id>.flac",
        views.RecordingFileView.as_view(),
        name="recording-file",
    ),
    path("alerts/", views.AlertListView.as_view(), name="alerts"),
    path("alerts/<call_id:pk>/<str:step>/", views.AlertTriageView.as_view(), name="alert-triage"),
    path("reports/agents/", views.AgentReportView.as_view(), name="agent-report"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from drf-spectacular-sidecar's static files: nothing from a CDN.
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"", views.not_found),
]
