"""The pages on a phone (390 px wide) and a small tablet (800 px): no page scrolls sideways,
the call page stacks into one column with a transcript as wide as the screen."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from dashboard.models import Agent
from simulator import Script, Speaker, Turn
from tests.conftest import DaphneServer
from tests.dashboard.browser.test_captions import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    _log_in,
    _simulate,
    _wait_for_call,
)
from tests.factories import make_call
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

SCRIPT = Script(
    title="Phone",
    locale="en-US",
    speakers=(Speaker("agent", "8:acs:resource_agent-9"), Speaker("customer", "4:+15555550199")),
    turns=(
        Turn("agent", "Good morning, you are through to the billing team, how can I help?", 0.5),
        Turn("customer", "My last invoice shows a charge I do not recognise at all.", 0.5),
        Turn("agent", "Let me look at that invoice with you right now.", 0.5),
    ),
)


def _sideways(page: Any) -> int:
    """How far the page itself can scroll sideways, in CSS pixels (0: not at all)."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))


def test_pages_fit_a_phone_and_the_call_page_stacks(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    for n in range(3):
        make_call(
            f"phone-history-{n}-with-a-long-connection-id-0f8e7d6c5b4a",
            people=("8:acs:resource_agent-1", f"4:+1555020{n:04d}"),
        )
    agent = Agent.objects.create(name="Priya Raman-Whitcombe")
    agent.addresses.create(address="8:acs:resource_agent-9")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        page.goto(f"{daphne_server.http_url}/accounts/login/")
        assert _sideways(page) <= 0
        _log_in(page, daphne_server.http_url, supervisor)
        simulator, errors = _simulate(daphne_server.ws_url, "phone-call", SCRIPT, 1.0)
        call = _wait_for_call("phone-call")

        # The wall: each call a card as wide as the screen.
        row = page.locator(f'#wall-rows tr[data-call-id="{call.pk}"]')
        expect(row).to_be_visible(timeout=10_000)
        assert _sideways(page) <= 0, "the wall scrolls sideways"
        box = row.bounding_box()
        assert box is not None
        assert box["width"] <= 390, box
        page.screenshot(path=str(SCREENSHOTS / "phone-wall.png"), full_page=True)

        # The live call page: one column, the transcript readable (most of the screen wide).
        page.goto(f"{daphne_server.http_url}/calls/{call.pk}/")
        expect(page.locator("#captions .caption.final").first).to_be_visible(timeout=20_000)
        transcript = page.locator("#captions").bounding_box()
        assert transcript is not None
        assert transcript["width"] >= 330, transcript
        text = page.locator("#captions .caption.final .text").first.bounding_box()
        assert text is not None
        assert text["width"] >= 280, text
        assert _sideways(page) <= 0, "the call page scrolls sideways"
        page.screenshot(path=str(SCREENSHOTS / "phone-call-page.png"), full_page=True)

        # History: the table scrolls inside its own region, not the page.
        page.goto(f"{daphne_server.http_url}/history/")
        expect(page.locator("#history tbody tr[data-call-id]").first).to_be_visible()
        assert _sideways(page) <= 0, "history scrolls sideways"
        region = page.locator(".table-scroll").bounding_box()
        assert region is not None
        assert region["width"] <= 390, region
        page.screenshot(path=str(SCREENSHOTS / "phone-history.png"), full_page=True)

        # The agents page: the agent in the call, and the page no wider than the screen.
        page.goto(f"{daphne_server.http_url}/agents/")
        agent_row = page.locator("#agents-rows tr").first
        expect(agent_row).not_to_have_attribute("data-state", "idle", timeout=10_000)
        assert _sideways(page) <= 0, "the agents page scrolls sideways"
        page.screenshot(path=str(SCREENSHOTS / "phone-agents.png"), full_page=True)

        # Under 900 px the call page is one column: the insights come below the transcript.
        page.set_viewport_size({"width": 800, "height": 1000})
        page.goto(f"{daphne_server.http_url}/calls/{call.pk}/")
        expect(page.locator("#captions .caption.final").first).to_be_visible(timeout=10_000)
        transcript = page.locator("#captions").bounding_box()
        insights = page.locator(".insights").bounding_box()
        assert transcript is not None
        assert insights is not None
        assert insights["y"] >= transcript["y"] + transcript["height"], (transcript, insights)
        assert _sideways(page) <= 0
        simulator.join(60)
        assert not errors, errors
        browser.close()
