"""Transcripts: every format by extension and by Accept header, as attachments; 406 otherwise."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from streaming.history.exports import render
from streaming.history.transcripts import transcript_for_call
from tests.dashboard.api.conftest import AGENT

pytestmark = pytest.mark.django_db

FORMATS = {
    "json": "application/json; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
ACCEPT = {
    "application/json": "json",
    "text/plain": "txt",
    "text/csv": "csv",
    "application/x-subrip": "srt",
    "text/vtt": "vtt",
}


def expected_body(call_id: int, fmt: str) -> bytes:
    transcript = transcript_for_call(call_id)
    assert transcript is not None
    body, content_type = render(transcript, fmt)
    assert content_type == FORMATS[fmt]
    return body.encode("utf-8")


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_by_extension(staff_api: Client, team_call: int, fmt: str) -> None:
    response = staff_api.get(f"/api/calls/{team_call}/transcript.{fmt}")
    assert response.status_code == 200
    assert response["Content-Type"] == FORMATS[fmt]
    assert response["Content-Disposition"] == f'attachment; filename="call-{team_call}.{fmt}"'
    assert response.content == expected_body(team_call, fmt)


@pytest.mark.parametrize(("accept", "fmt"), ACCEPT.items())
def test_each_format_by_accept_header(
    staff_api: Client, team_call: int, accept: str, fmt: str
) -> None:
    response = staff_api.get(f"/api/calls/{team_call}/transcript/", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == FORMATS[fmt]
    assert response["Content-Disposition"] == f'attachment; filename="call-{team_call}.{fmt}"'
    assert "Accept" in response["Vary"]
    assert response.content == expected_body(team_call, fmt)


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (None, "json"),
        ("*/*", "json"),
        ("text/*", "txt"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "json"),
        ("text/vtt;q=0.5, text/csv", "csv"),
        ("application/x-subrip; charset=utf-8", "srt"),
    ],
)
def test_negotiation_picks_the_best_format(
    staff_api: Client, team_call: int, accept: str | None, fmt: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = staff_api.get(f"/api/calls/{team_call}/transcript/", headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"] == FORMATS[fmt]


@pytest.mark.parametrize("fmt", ["csv", "vtt"])
def test_format_query_parameter_overrides_accept(
    staff_api: Client, team_call: int, fmt: str
) -> None:
    response = staff_api.get(
        f"/api/calls/{team_call}/transcript/?format={fmt}", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == FORMATS[fmt]


@pytest.mark.parametrize("accept", ["text/html", "application/pdf", "image/*", "application/xml"])
def test_unservable_accept_is_406_in_json(staff_api: Client, team_call: int, accept: str) -> None:
    response = staff_api.get(f"/api/calls/{team_call}/transcript/", HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert "Content-Disposition" not in response
    assert "Could not satisfy the request Accept header." in response.json()["detail"]


def test_the_extension_wins_over_the_accept_header(staff_api: Client, team_call: int) -> None:
    response = staff_api.get(f"/api/calls/{team_call}/transcript.srt", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == FORMATS["srt"]


def test_unknown_extensions_are_json_404s(staff_api: Client, team_call: int) -> None:
    for url in (f"/api/calls/{team_call}/transcript.pdf", f"/api/calls/{team_call}/transcript."):
        response = staff_api.get(url)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"


def test_errors_are_json_whatever_the_format(team_api: Client, other_call: int) -> None:
    for url, accept in [
        (f"/api/calls/{other_call}/transcript.csv", "text/csv"),
        (f"/api/calls/{other_call}/transcript/", "text/vtt"),
    ]:
        response = team_api.get(url, HTTP_ACCEPT=accept)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "Not found."}


def test_anonymous_transcript_requests_get_json_401(client: Client, team_call: int) -> None:
    response = client.get(f"/api/calls/{team_call}/transcript/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"


def test_the_json_transcript_is_the_export(staff_api: Client, team_call: int) -> None:
    document = json.loads(staff_api.get(f"/api/calls/{team_call}/transcript.json").content)
    assert document["call"]["id"] == team_call
    assert [line["text"] for line in document["lines"]][:3] == [
        "Hello, thanks for calling. How can I help?",
        "I was charged twice for my order.",
        "Let me refund the second charge.",
    ]
    assert document["lines"][0]["speaker_key"] == AGENT


def test_a_call_without_utterances_has_an_empty_transcript(staff_api: Client, db: None) -> None:
    from tests.dashboard.api.conftest import make_call

    call_id = make_call("silent")
    assert staff_api.get(f"/api/calls/{call_id}/transcript.srt").content == b""
    assert staff_api.get(f"/api/calls/{call_id}/transcript.vtt").content == b"WEBVTT\n"
    assert json.loads(staff_api.get(f"/api/calls/{call_id}/transcript.json").content)["lines"] == []


def test_transcripts_are_read_in_a_constant_number_of_queries(
    staff_api: Client, django_assert_max_num_queries: object, team_call: int
) -> None:
    # Token and user, permissions (2), visibility, then the transcript's four queries.
    with django_assert_max_num_queries(8):  # type: ignore[operator]
        assert staff_api.get(f"/api/calls/{team_call}/transcript.txt").status_code == 200


def test_other_api_urls_are_json_404s(staff_api: Client, team_call: int) -> None:
    for url in ("/api/calls/abc/", f"/api/calls/{team_call}/nothing/", "/api/x.csv"):
        response = staff_api.get(url)
        assert response.status_code == 404, url
        assert response.json() == {"detail": "Not found."}


def test_a_missing_trailing_slash_is_redirected(staff_api: Client, team_call: int) -> None:
    response = staff_api.get(f"/api/calls/{team_call}/utterances?page=1")
    assert response.status_code == 301
    assert response["Location"] == f"/api/calls/{team_call}/utterances/?page=1"
