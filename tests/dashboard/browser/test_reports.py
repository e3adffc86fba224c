"""In headless Chromium: a supervisor opens the reports, sees each agent's and team's row and
the plotly charts drawn, narrows the range, and downloads the CSV."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from dashboard.models import Agent, AgentAddress, Team
from tests import factories
from tests.conftest import DaphneServer
from tests.dashboard.browser.test_captions import CHROMIUM_ARGS, SCREENSHOTS, _log_in
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

ANN = "8:acs:r_agent-ann"


def test_the_report_page_draws_its_charts_and_downloads_csv(
    daphne_server: DaphneServer, supervisor: User, tmp_path: Path
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    agent = Agent.objects.create(name="Ann Lee", team=Team.objects.create(name="Billing"))
    AgentAddress.objects.create(agent=agent, address=ANN)
    now = timezone.now()
    for n, days in enumerate((1, 2, 20)):
        factories.make_call(
            f"reported-{n}",
            people=[ANN, "4:+15550001111"],
            alerts=1,
            analytics={"duration_ms": 120_000, "talk_ms": 100_000, "agent_talk_ratio": 0.5},
            started=now - timedelta(days=days),
            length=timedelta(minutes=2),
        )

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_context(
            accept_downloads=True, viewport={"width": 1200, "height": 900}
        ).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        _log_in(page, daphne_server.http_url, supervisor)
        page.click("text=Reports")
        ann = page.locator('#report-agents tr[data-name="Ann Lee"]')
        expect(ann.locator('[data-field="calls"]')).to_have_text("2")
        expect(ann.locator('[data-field="mean_handle_ms"]')).to_have_text("2:00")
        expect(ann.locator('[data-field="talk_ratio"]')).to_have_text("50 %")
        expect(page.locator('#report-teams tr[data-name="Billing"]')).to_be_visible()
        # plotly.js is 3.5 MB: on a loaded machine it may take a while to arrive.
        expect(page.locator("#chart-agents .main-svg").first).to_be_visible(timeout=30_000)
        expect(page.locator("#chart-teams .main-svg").first).to_be_visible(timeout=30_000)
        assert errors == []
        page.screenshot(path=str(SCREENSHOTS / "reports.png"), full_page=True)

        page.fill('input[name="started_after"]', (now - timedelta(days=30)).date().isoformat())
        page.click('#report-range button[type="submit"]')
        expect(ann.locator('[data-field="calls"]')).to_have_text("3")
        with page.expect_download() as info:
            page.click("#report-csv")
        saved = tmp_path / "report.csv"
        info.value.save_as(saved)
        rows = list(csv.DictReader(saved.open(encoding="utf-8")))
        assert [(r["kind"], r["name"], r["calls"]) for r in rows] == [
            ("agent", "Ann Lee", "3"),
            ("team", "Billing", "3"),
        ]
        browser.close()
