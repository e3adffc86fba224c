"""In headless Chromium: a supervisor finds a past call by a phrase, opens it and downloads its
transcript in each format; another team's supervisor cannot find or open it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import srt  # type: ignore[import-untyped]  # no type hints
import webvtt
from django.contrib.auth.models import User

from dashboard.models import Team, TeamAddress
from streaming.history.exports import FORMATS
from tests.conftest import DaphneServer
from tests.dashboard.api.conftest import (
    CONVERSATION,
    OTHER_LINE,
    SUPERVISORS_GROUP,
    Said,
    make_call,
    user_in,
)
from tests.dashboard.api.conftest import team_supervisor as team_supervisor
from tests.dashboard.browser.test_captions import CHROMIUM_ARGS, SCREENSHOTS
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]


def _log_in(page: Any, base_url: str, user: User, password: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/accounts/login/?next=/history/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.click("#login-submit")
    expect(page.locator("#history")).to_be_visible()


def _search(page: Any, phrase: str) -> None:
    page.fill('#history-search input[name="q"]', phrase)
    page.click('#history-search button[type="submit"]')
    page.wait_for_load_state()


def _texts(fmt: str, path: Path) -> list[str]:
    body = path.read_text(encoding="utf-8")
    if fmt == "json":
        return [line["text"] for line in json.loads(body)["lines"]]
    if fmt == "csv":
        return [row["text"] for row in csv.DictReader(io.StringIO(body))]
    if fmt == "srt":
        return [s.content for s in srt.parse(body)]
    if fmt == "vtt":
        return [c.text for c in webvtt.read(str(path), strict=True).captions]
    return body.splitlines()


def test_a_supervisor_finds_a_past_call_and_downloads_every_format(
    daphne_server: DaphneServer, team_supervisor: User, tmp_path: Path
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    wanted = make_call("refund-call", said=CONVERSATION, alerts=1, agent_ratio=0.6)
    make_call(
        "other-team-call",
        line=OTHER_LINE,
        said=[Said(f"4:{OTHER_LINE}", "I was charged twice for my order.", 1.0)],
    )
    for n in range(3):
        make_call(f"routine-{n}", said=[])
    stranger = user_in("stranger", SUPERVISORS_GROUP)
    billing = Team.objects.create(name="Billing")
    billing.members.add(stranger)
    TeamAddress.objects.create(team=billing, address=OTHER_LINE)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1200, "height": 800}
        )
        page = context.new_page()
        _log_in(page, daphne_server.http_url, team_supervisor, "teamsup-password-123")
        expect(page.locator("#history tbody tr[data-call-id]")).to_have_count(4)

        _search(page, "charged twice")
        rows = page.locator("#history tbody tr[data-call-id]")
        expect(rows).to_have_count(1)  # not the other team's call that said the same
        expect(rows.first).to_have_attribute("data-call-id", str(wanted))
        expect(page.locator("#history-count")).to_have_text("1 call found")
        page.screenshot(path=str(SCREENSHOTS / "history-search.png"), full_page=True)

        rows.first.locator("a").click()
        expect(page.locator("#call")).to_have_attribute("data-call-id", str(wanted))
        expect(page.locator(".caption.final")).to_have_count(len(CONVERSATION))
        links = page.locator("#downloads a")
        expect(links).to_have_count(len(FORMATS))
        for fmt, (_media_type, extension) in FORMATS.items():
            with page.expect_download() as info:
                page.click(f'#downloads a[data-format="{fmt}"]')
            download = info.value
            assert download.suggested_filename == f"call-{wanted}.{extension}"
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            texts = _texts(fmt, saved)
            assert any("charged twice" in t for t in texts), (fmt, texts)
        page.screenshot(path=str(SCREENSHOTS / "call-downloads.png"), full_page=True)

        other = browser.new_context(accept_downloads=True)
        theirs = other.new_page()
        _log_in(theirs, daphne_server.http_url, stranger, "stranger-password-123")
        _search(theirs, "charged twice")
        found = theirs.locator("#history tbody tr[data-call-id]")
        expect(found).to_have_count(1)
        assert found.first.get_attribute("data-call-id") != str(wanted)
        response = theirs.goto(f"{daphne_server.http_url}/calls/{wanted}/")
        assert response is not None
        assert response.status == 404
        file = theirs.request.get(f"{daphne_server.http_url}/api/calls/{wanted}/transcript.srt")
        assert file.status == 404
        browser.close()
