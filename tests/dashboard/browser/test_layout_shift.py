"""Layout shift on a live call's page, measured by Chromium while captions, figures and
charts arrive: its cumulative layout shift stays under 0.1 ("good" by Web Vitals), so
nothing a supervisor is reading jumps about as the call goes on."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from simulator import DEMO_DIR, load_script
from tests.dashboard.browser.test_captions import (
    CHROMIUM_ARGS,
    _log_in,
    _simulate,
    _wait_for_call,
)
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

CLS_LIMIT = 0.1
# Every layout shift not caused by the user, from the page's start (buffered), with the
# elements that moved: the largest session window of shifts (at most 1 s apart, 5 s long)
# is the page's CLS, as Web Vitals defines it.
OBSERVE = """() => {
  window.shifts = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.hadRecentInput) continue;
      window.shifts.push({t: e.startTime, v: e.value,
        who: e.sources.map((s) => s.node ? s.node.id || s.node.className || s.node.nodeName : "?"),
      });
    }
  }).observe({type: "layout-shift", buffered: true});
}"""
CLS = """() => {
  let best = 0, sum = 0, first = 0, last = -Infinity;
  for (const s of window.shifts) {
    if (s.t - last > 1000 || s.t - first > 5000) { sum = 0; first = s.t; }
    sum += s.v; last = s.t; best = Math.max(best, sum);
  }
  return best;
}"""


def test_a_live_call_page_does_not_shift_as_the_call_goes_on(
    daphne_server: Any, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    simulator, errors = _simulate(
        daphne_server.ws_url, "steady-call", load_script(DEMO_DIR / "billing_call.toml"), 1.0
    )
    call = _wait_for_call("steady-call")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        _log_in(page, daphne_server.http_url, supervisor)
        page.add_init_script(f"({OBSERVE})()")
        page.goto(f"{daphne_server.http_url}/calls/{call.pk}/")
        finals = page.locator("#captions .caption.final")
        expect(finals.nth(3)).to_be_visible(timeout=30_000)
        expect(page.locator("#chart-timeline .main-svg").first).to_be_attached()
        page.wait_for_timeout(5_000)  # more captions, figures and chart updates
        cls = page.evaluate(CLS)
        shifts = page.evaluate("() => window.shifts")
        browser.close()
    simulator.join(90)
    assert not errors, errors
    print(f"CLS {cls:.4f} over {len(shifts)} shifts")
    assert cls < CLS_LIMIT, shifts
