"""``/api/`` says what the API offers; ``/api/docs/`` is a browsable page of its schema,
served with its own static files (no CDN)."""

from __future__ import annotations

import re

from django.test import Client


def test_api_index_lists_resources_that_answer(staff_api: Client) -> None:
    """Every link of the index answers; the templated ones once an id is put in."""
    answer = staff_api.get("/api/")
    assert answer.status_code == 200
    index = answer.json()
    assert set(index) >= {"calls", "call", "transcript", "schema", "docs"}
    assert staff_api.get(index["calls"]).status_code == 200
    assert staff_api.get(index["schema"]).status_code == 200
    assert staff_api.get(index["docs"]).status_code == 200
    assert index["call"].endswith("/api/calls/{id}/")
    assert any(url.endswith("/transcript.srt") for url in index["transcript_files"])
    assert staff_api.get(index["alerts"]).status_code == 200
    assert staff_api.get(index["agent_report"]).status_code == 200
    assert index["recordings"].endswith("/api/calls/{id}/recordings/")
    assert sorted(url.split("/")[-2] for url in index["alert_triage"]) == [
        "acknowledge",
        "reopen",
        "resolve",
    ]


def test_api_index_and_docs_need_a_user_who_may_see_calls(client: Client) -> None:
    assert client.get("/api/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code in (401, 403)


def test_api_docs_page_uses_local_swagger_ui(staff_api: Client) -> None:
    """The page's scripts and styles are Callsite's own static files, and they are served."""
    page = staff_api.get("/api/docs/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert any("swagger-ui-bundle" in a for a in assets), assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert staff_api.get(asset).status_code == 200, asset
    assert "/api/schema/" in html


def test_unknown_api_urls_still_get_a_json_404(staff_api: Client) -> None:
    answer = staff_api.get("/api/no-such-thing/")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Not found."}
