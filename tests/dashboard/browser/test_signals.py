"""A supervisor in headless Chromium sees what ACS says besides words: sentiment badges and
trend, DTMF tones (masked), who is speaking now, on the call page and the wall; and on the
timeline, each speaker's sentiment strip, the tones and the mutes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from simulator import Script, Speaker, Turn
from simulator.scripts import Signal
from tests.conftest import DaphneServer
from tests.dashboard.browser.test_captions import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    _log_in,
    _simulate,
    _wait_for_call,
)
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

CUSTOMER = "4:+15555550166"
SCRIPT = Script(
    title="Signals",
    locale="en-US",
    speakers=(Speaker("agent", "8:acs:resource_agent-5"), Speaker("customer", CUSTOMER)),
    turns=(
        Turn(
            "customer",
            "I have been waiting for an hour and I am not happy at all today.",
            1.5,
            0.9,
            120,
            "negative",
            "en-US",
        ),
        Turn("agent", "I am sorry. Please type your card number.", 0.5, 0.9, 150),
        Turn(
            "customer",
            "Done. Thank you, that was quick and helpful, great service.",
            0.5,
            0.9,
            120,
            "positive",
            "en-US",
        ),
    ),
    signals=(
        Signal("mute", CUSTOMER, before=2, seconds=1.5),
        Signal("dtmf", CUSTOMER, before=3, tones="1234"),
    ),
)


def test_sentiment_tones_and_speaking_show_live(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _log_in(page, daphne_server.http_url, supervisor)
        simulator, errors = _simulate(daphne_server.ws_url, "browser-signals", SCRIPT, 1.0)
        call = _wait_for_call("browser-signals")
        row = page.locator(f'tr[data-call-id="{call.pk}"]')
        expect(row).to_be_visible(timeout=10_000)
        # The wall: the customer speaking now, from their interims.
        expect(
            row.locator(f'.participant[data-raw-id="{CUSTOMER}"] .badge.flag[data-flag="speaking"]')
        ).to_be_visible(timeout=10_000)
        page.goto(f"{daphne_server.http_url}/calls/{call.pk}/")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        first = page.locator(".caption.final").first
        expect(first.locator('.badge.sentiment[data-sentiment="negative"]')).to_be_visible(
            timeout=15_000
        )
        expect(first.locator(".badge.language")).to_have_text("en-US")
        tones = page.locator(".caption.dtmf")
        expect(tones).to_have_count(4, timeout=15_000)
        assert set(tones.locator(".text").all_inner_texts()) == {"pressed •"}
        expect(page.locator(f'#participants li[data-raw-id="{CUSTOMER}"]')).to_have_attribute(
            "data-speaking", "true", timeout=15_000
        )
        expect(page.locator("#sentiment")).to_have_attribute(
            "data-latest", "positive", timeout=20_000
        )
        expect(page.locator("#sentiment svg.sentiment-trend polyline")).to_be_attached()
        # The agent's line had no ACS sentiment: the lexicon's, marked as such.
        agent = page.locator(".caption.final", has_text="type your card number")
        expect(agent.locator(".badge.sentiment")).to_have_attribute("data-source", "lexicon")
        # The timeline: a sentiment strip under the customer's row (negative, then positive),
        # the agent's lexicon sentiment under theirs, four tone diamonds and the 1.5 s mute.
        page.wait_for_function(
            """() => {
              const el = document.getElementById("chart-timeline");
              const marks = Object.fromEntries((el.data || [])
                .filter((t) => String(t.meta).startsWith("mark:"))
                .map((t) => [t.meta, t]));
              return marks["mark:dtmf"]?.x.length === 4 && marks["mark:mute"]?.x.length === 1
                && marks["mark:sentiment:negative"] && marks["mark:sentiment:positive"];
            }""",
            timeout=20_000,
        )
        marks = page.evaluate(
            """() => document.getElementById("chart-timeline").data
              .filter((t) => String(t.meta).startsWith("mark:"))
              .map((t) => ({meta: t.meta, y: t.y, x: t.x, base: t.base || null}))"""
        )
        by_meta = {m["meta"]: m for m in marks}
        rows = {m["meta"]: set(m["y"]) for m in marks}
        customer_row = rows["mark:dtmf"]
        assert len(customer_row) == 1
        assert rows["mark:sentiment:negative"] == customer_row
        assert rows["mark:mute"] == customer_row
        assert by_meta["mark:mute"]["x"][0] == pytest.approx(1.5, abs=0.2)
        lexicon_rows = (
            set().union(*(rows[m] for m in rows if m.startswith("mark:sentiment:"))) - customer_row
        )
        assert len(lexicon_rows) == 1  # the agent's strip, from the lexicon scorer
        tone_times = by_meta["mark:dtmf"]["x"]
        assert tone_times == sorted(tone_times)
        assert by_meta["mark:mute"]["base"][0] < tone_times[0]  # muted before turn 2, tones 3
        page.screenshot(path=str(SCREENSHOTS / "call-page-signals.png"), full_page=True)
        browser.close()
    simulator.join(30)
    assert not simulator.is_alive()
    assert not errors, errors
