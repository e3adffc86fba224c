"""In headless Chromium: the agents page follows an agent of the directory through a call
streamed over the ACS socket (in the call, talking, then idle once it ends) while another
agent stays idle, and the call is a link to its page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from dashboard.models import Agent
from simulator import DEMO_DIR, load_script
from tests.dashboard.browser.test_captions import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    _log_in,
    _simulate,
    _wait_for_call,
)
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

DANA = "8:acs:5f0c2a91-3d4e-4b6a-9c1f-7e2d8b3a6c40_0000002a-7d1e-4c2b-a0f3-9b8e6d5c4a31"


def test_the_agents_page_follows_an_agent_through_a_call(
    daphne_factory: Any, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    dana = Agent.objects.create(name="Dana Reyes")
    dana.addresses.create(address=DANA)
    sam = Agent.objects.create(name="Sam Idle")
    sam.addresses.create(address="+15550100099")
    server = daphne_factory()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        _log_in(page, server.http_url, supervisor)
        page.click("nav >> text=Agents")
        dana_row = page.locator(f'#agents-rows tr[data-agent="{dana.pk}"]')
        sam_row = page.locator(f'#agents-rows tr[data-agent="{sam.pk}"]')
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        expect(dana_row).to_have_attribute("data-state", "idle")
        expect(page.locator("#agents-summary")).to_have_text("2 idle")

        # Slowed down, so the page sees the call going on.
        simulator, errors = _simulate(
            server.ws_url, "agents-call", load_script(DEMO_DIR / "short_call.toml"), 0.3
        )
        call = _wait_for_call("agents-call")
        expect(dana_row).to_have_attribute("data-state", "talking", timeout=15_000)
        expect(dana_row.locator(".agent-state")).to_have_text("Talking")
        link = dana_row.locator('[data-cell="call"] a')
        expect(link).to_have_attribute("href", f"/calls/{call.pk}/")
        expect(link).to_contain_text("with")
        # The call's page is named by its people too.
        link.click()
        expect(page.locator("#call-title")).to_have_text(re.compile(r"^Dana Reyes with \+1555"))
        page.go_back()
        expect(sam_row).to_have_attribute("data-state", "idle")
        expect(page.locator("#agents-summary")).to_contain_text("1 idle")
        # Between her turns she is in the call, listening.
        expect(dana_row).to_have_attribute("data-state", "in-call", timeout=15_000)
        page.screenshot(path=str(SCREENSHOTS / "agents-live.png"), full_page=True)

        simulator.join(60)
        assert not errors, errors
        expect(dana_row).to_have_attribute("data-state", "idle", timeout=15_000)
        expect(dana_row.locator('[data-cell="call"] a')).to_have_count(0)
        # Idle since the call ended, counting on.
        expect(dana_row.locator('[data-cell="since"]')).to_have_text("0:02", timeout=5_000)
        # A reload keeps it: the server says when her last call ended.
        page.reload()
        expect(dana_row).to_have_attribute("data-state", "idle")
        expect(dana_row.locator('[data-cell="since"]')).not_to_have_text("")
        expect(sam_row.locator('[data-cell="since"]')).to_have_text("")
        browser.close()
