"""One DRF renderer per transcript format: the body is ``streaming.history.exports.render``'s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import Http404
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from streaming.history.exports import FORMATS, Transcript, render


class TranscriptRenderer(BaseRenderer):
    """Renders a ``Transcript``; a subclass is one format of ``streaming.history.exports.FORMATS``.

    The views render anything else (errors, OPTIONS) as JSON, so this is never given one.
    """

    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if not isinstance(data, Transcript):
            raise TypeError(f"{type(self).__name__} renders transcripts, not {type(data)}")
        request = (renderer_context or {}).get("request")
        spreadsheet = request is not None and request.query_params.get("for") == "spreadsheet"
        body, _content_type = render(data, self.format, spreadsheet=spreadsheet)
        return body.encode("utf-8")

    @property
    def content_type(self) -> str:
        """The Content-Type header of a transcript in this format."""
        return f"{self.media_type}; charset={self.charset}"

    @property
    def extension(self) -> str:
        return FORMATS[self.format][1]


class TranscriptJSONRenderer(TranscriptRenderer):
    media_type, format = FORMATS["json"][0], "json"


class TranscriptTXTRenderer(TranscriptRenderer):
    media_type, format = FORMATS["txt"][0], "txt"


class TranscriptCSVRenderer(TranscriptRenderer):
    media_type, format = FORMATS["csv"][0], "csv"


class TranscriptSRTRenderer(TranscriptRenderer):
    media_type, format = FORMATS["srt"][0], "srt"


class TranscriptVTTRenderer(TranscriptRenderer):
    media_type, format = FORMATS["vtt"][0], "vtt"


# The first is what "Accept: */*" (or no Accept header) gets; "text/*" gets plain text.
TRANSCRIPT_RENDERERS: tuple[type[TranscriptRenderer], ...] = (
    TranscriptJSONRenderer,
    TranscriptTXTRenderer,
    TranscriptCSVRenderer,
    TranscriptSRTRenderer,
    TranscriptVTTRenderer,
)
TRANSCRIPT_MEDIA_TYPES: tuple[str, ...] = tuple(r.media_type for r in TRANSCRIPT_RENDERERS)
TRANSCRIPT_FORMATS: tuple[str, ...] = tuple(r.format for r in TRANSCRIPT_RENDERERS)


class FormatFirstNegotiation(DefaultContentNegotiation):
    """A format named in the URL (``transcript.csv``, ``?format=csv``) wins over Accept.

    Without one, the Accept header decides as usual (406 when nothing in it can be served).
    """

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> Any:
        fmt = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE or "")
        if fmt:
            for renderer in renderers:
                if renderer.format == fmt:
                    return renderer, renderer.media_type
            raise Http404(f"No transcript format {fmt!r}")
        return super().select_renderer(request, renderers, format_suffix)


class FlacRenderer(BaseRenderer):
    """Lets a client ask for ``audio/flac``: the recording views answer with the file itself
    (errors are JSON), so this renders nothing."""

    media_type, format = "audio/flac", "flac"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        raise TypeError("recordings are served as files, not rendered")
