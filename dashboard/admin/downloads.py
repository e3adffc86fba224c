"""Transcripts downloaded from the admin's call list: one file, or a ZIP of one per call."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from functools import cache
from typing import Any

from django import forms
from django.http import HttpResponse
from django.template import engines
from django.template.backends.base import BaseEngine
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from streaming.history import exports
from streaming.history.transcripts import transcript_for_call

# At most this many calls' transcripts in one download (each costs three queries).
MAX_TRANSCRIPT_DOWNLOAD = 1000

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
def download_page() -> Any:
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
        # Downloaded to be opened: CSV is written safe for spreadsheets.
        body, content_type = exports.render(transcript, fmt, spreadsheet=True)
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
