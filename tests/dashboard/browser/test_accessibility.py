"""axe-core in headless Chromium on every page a supervisor uses: no serious or critical
violation in Callsite's own markup (plotly's charts are plotly's, and left out).

axe-core is ``axe.min.js`` from the pinned ``axe-playwright-python`` wheel, injected into the
page; nothing is fetched at run time."""

from __future__ import annotations

import importlib.resources
import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

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
from tests.factories import Said, make_call, make_recording
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

AXE = importlib.resources.files("axe_playwright_python").joinpath("axe.min.js").read_text()
SCRIPT = Script(
    title="Accessible",
    locale="en-US",
    speakers=(Speaker("agent", "8:acs:resource_agent-3"), Speaker("customer", "4:+15555550133")),
    turns=tuple(
        Turn("agent" if n % 2 else "customer", f"This is sentence number {n} of a long call.", 1.0)
        for n in range(12)
    ),
)


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE)
    result = page.evaluate(
        """async () => {
          const r = await axe.run({exclude: [[".js-plotly-plot"]]}, {resultTypes: ["violations"]});
          return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def test_no_serious_or_critical_violation_on_any_page(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    finished = make_call(
        "a11y-finished",
        people=("8:acs:resource_agent-1", "4:+15551230000"),
        said=[Said("8:acs:resource_agent-1", "Thank you for calling.", 0.5)],
        alerts=["keyword"],
        started=timezone.now() - timedelta(minutes=5),
        length=timedelta(seconds=30),
    )
    # With its recording: the player, the track chooser and captions that seek it.
    tone = [3000, -3000] * 8000
    make_recording(finished, {"8:acs:resource_agent-1": tone, "4:+15551230000": tone})
    # An agent in the directory, for the agents page.
    Agent.objects.create(name="Ada Reyes").addresses.create(address="+15550100077")
    found: dict[str, list[dict[str, Any]]] = {}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{daphne_server.http_url}/accounts/login/")
        found["login"] = serious_violations(page)
        _log_in(page, daphne_server.http_url, supervisor)
        simulator, errors = _simulate(daphne_server.ws_url, "a11y-live", SCRIPT, 1.0)
        call = _wait_for_call("a11y-live")
        expect(page.locator(f'#wall-rows tr[data-call-id="{call.pk}"] .health')).to_have_text(
            "audio OK", timeout=10_000
        )
        found["wall"] = serious_violations(page)
        page.goto(f"{daphne_server.http_url}/calls/{call.pk}/")
        expect(page.locator("#captions .caption.final").first).to_be_visible(timeout=20_000)
        found["live call"] = serious_violations(page)
        # The transcript can be reached with the keyboard.
        page.focus("#captions")
        assert page.evaluate("() => document.activeElement.id") == "captions"
        page.goto(f"{daphne_server.http_url}/calls/{finished}/")
        expect(page.locator("#captions .caption.final").first).to_be_visible(timeout=10_000)
        expect(page.locator("#player")).to_be_visible()
        found["finished call"] = serious_violations(page)
        page.goto(f"{daphne_server.http_url}/history/")
        found["history"] = serious_violations(page)
        page.goto(f"{daphne_server.http_url}/agents/")
        expect(page.locator("#agents-rows tr").first).to_have_attribute("data-state", "idle")
        found["agents"] = serious_violations(page)
        simulator.join(60)
        assert not errors, errors
        browser.close()
    problems = {name: v for name, v in found.items() if v}
    assert not problems, json.dumps(problems, indent=1)
