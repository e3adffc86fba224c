"""static/callsite/charts.js in headless Chromium: the figures drawn, live deltas applied.

No server: the page is built in the browser from plotly.js (found by staticfiles, as the
pages load it) and charts.js, and fed the Python builders' output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from dashboard import charts
from streaming.events import AnalyticsPayload
from tests.dashboard.test_charts import payload, speaker
from tests.services import chromium_path, require

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><body>
<div id="talk_time" style="width:600px"></div>
<div id="talk_ratio" style="width:600px"></div>
<div id="timeline" style="width:800px"></div>
</body></html>"""
ELEMENTS = """({
  talk_time: document.getElementById("talk_time"),
  talk_ratio: document.getElementById("talk_ratio"),
  timeline: document.getElementById("timeline"),
})"""
TIMELINE = "document.getElementById('timeline')"

AGENT = speaker("8:acs:a", "Ann", "agent", 9_000, 0.5, 0.6)
CUSTOMER = speaker("4:+1555", "+15551234567", "customer", 6_000, 0.3, 0.4)
NEWCOMER = speaker("speaker:Guest-1", "Guest", "agent", 2_000, 0.1, 0.1)


def at_12s(since_ms: int = 0) -> AnalyticsPayload:
    rows = {
        "8:acs:a": [[0, 5_000], [10_000, 12_000]],
        "4:+1555": [[4_000, 9_000]],
        "overlap": [[4_000, 5_000]],
    }
    return payload([AGENT, CUSTOMER], rows, since_ms=since_ms, duration_ms=12_000)


def at_16s() -> AnalyticsPayload:
    """Since 10 s: Ann's last segment grew, a newcomer spoke over her."""
    rows = {
        "8:acs:a": [[10_000, 14_000]],
        "4:+1555": [],
        "speaker:Guest-1": [[13_000, 15_000]],
        "overlap": [[13_000, 14_000]],
    }
    talker = speaker("8:acs:a", "Ann", "agent", 11_000, 0.6, 0.58)
    return payload([talker, CUSTOMER, NEWCOMER], rows, since_ms=10_000, duration_ms=16_000)


WHOLE_AT_16S = {
    "8:acs:a": [[0.0, 5.0], [10.0, 4.0]],
    "4:+1555": [[4.0, 5.0]],
    "overlap": [[4.0, 1.0], [13.0, 1.0]],
    "speaker:Guest-1": [[13.0, 2.0]],
}


@pytest.fixture
def browser() -> Iterator[Any]:
    """Per test: Playwright's sync API runs an event loop that must not outlive the test."""
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def open_page(browser: Any, *, with_plotly: bool = True) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content(PAGE)
    if with_plotly:
        page.add_script_tag(path=str(finders.find("plotly/plotly.min.js")))
    page.add_script_tag(path=str(settings.BASE_DIR / "static" / "callsite" / "charts.js"))
    return page, errors


def timeline_points(page: Any) -> dict[str, list[list[float]]]:
    traces = page.evaluate(f"{TIMELINE}.data.map(t => [t.meta, t.base, t.x])")
    return {meta: sorted(map(list, zip(base, x, strict=True))) for meta, base, x in traces}


def test_mount_draws_the_three_figures(browser: Any) -> None:
    page, errors = open_page(browser)
    page.evaluate(f"f => CallsiteCharts.mount({ELEMENTS}, f)", charts.figures(at_12s()))
    assert page.locator("#talk_time .bars .point").count() == 4
    assert page.locator("#talk_ratio .slice").count() == 2
    assert timeline_points(page)["8:acs:a"] == [[0.0, 5.0], [10.0, 2.0]]
    assert page.locator("#timeline .xtick text").first.text_content() == "0:00"
    assert errors == []


def test_update_applies_the_timeline_delta_and_redraws_the_rest(browser: Any) -> None:
    page, errors = open_page(browser)
    page.evaluate(f"f => CallsiteCharts.mount({ELEMENTS}, f)", charts.figures(at_12s()))
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_16s()))

    assert timeline_points(page) == WHOLE_AT_16S
    traces = {t["meta"]: t for t in charts.timeline_figure(at_16s())["data"]}
    newcomer = page.evaluate(f"{TIMELINE}.data.find(t => t.meta === 'speaker:Guest-1')")
    assert newcomer["marker"] == traces["speaker:Guest-1"]["marker"]
    assert newcomer["y"] == ["Guest"]
    assert page.evaluate(f"{TIMELINE}.layout.yaxis.categoryarray") == [
        "Ann",
        "+15551234567",
        "Guest",
        "Overlap",
    ]
    talk = page.evaluate("document.getElementById('talk_time').data[0].x")
    assert talk == [11.0, 6.0, 2.0]
    assert errors == []


def test_an_update_is_idempotent_and_since_zero_replaces_everything(browser: Any) -> None:
    page, errors = open_page(browser)
    page.evaluate(f"f => CallsiteCharts.mount({ELEMENTS}, f)", charts.figures(at_12s()))
    for _ in range(2):
        page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_16s()))
    assert timeline_points(page) == WHOLE_AT_16S

    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_12s(since_ms=0)))
    points = timeline_points(page)
    assert points["8:acs:a"] == [[0.0, 5.0], [10.0, 2.0]]
    assert points["speaker:Guest-1"] == []
    assert errors == []


def test_zoom_survives_updates_and_ticks_follow_it(browser: Any) -> None:
    page, errors = open_page(browser)
    page.evaluate(f"f => CallsiteCharts.mount({ELEMENTS}, f)", charts.figures(at_12s()))
    page.evaluate(f"Plotly.relayout({TIMELINE}, {{'xaxis.range': [9, 16]}})")
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_16s()))
    page.wait_for_function("document.querySelector('#timeline .xtick text').textContent === '0:09'")
    assert page.evaluate(f"{TIMELINE}._fullLayout.xaxis.range") == [9, 16]
    ticks = page.locator("#timeline .xtick text").all_text_contents()
    assert ticks == ["0:09", "0:10", "0:11", "0:12", "0:13", "0:14", "0:15", "0:16"]
    assert errors == []


def test_the_timeline_keeps_its_scale_as_the_call_grows_and_steps_out(browser: Any) -> None:
    page, errors = open_page(browser)
    page.evaluate(f"f => CallsiteCharts.mount({ELEMENTS}, f)", charts.figures(at_12s()))

    def shown() -> list[float]:
        return [float(v) for v in page.evaluate(f"{TIMELINE}._fullLayout.xaxis.range")]

    assert shown() == [0, 30]
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_16s()))
    assert shown() == [0, 30]  # 16 s of call: the bars keep their size
    later = payload(
        [AGENT, CUSTOMER], {"8:acs:a": [[16_000, 41_000]]}, since_ms=16_000, duration_ms=41_000
    )
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(later))
    assert shown() == [0, 60]  # past 30 s: one step out
    # A user's zoom holds through updates; a double-click gives the stepped scale back.
    page.evaluate(f"Plotly.relayout({TIMELINE}, {{'xaxis.range': [20, 40]}})")
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(later))
    assert shown() == [20, 40]
    page.evaluate(f"Plotly.relayout({TIMELINE}, {{'xaxis.autorange': true}})")
    page.wait_for_function(f"{TIMELINE}._fullLayout.xaxis.range[1] === 60")
    assert errors == []


def test_missing_plotly_or_elements_do_not_throw(browser: Any) -> None:
    page, errors = open_page(browser, with_plotly=False)
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_16s()))
    page.evaluate(f"f => CallsiteCharts.mount({ELEMENTS}, f)", charts.figures(at_12s()))
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_16s()))
    page.close()

    page, more = open_page(browser)
    page.evaluate("f => CallsiteCharts.mount({}, f)", charts.figures(at_12s()))
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(at_16s()))
    page.evaluate("() => CallsiteCharts.mount(undefined, undefined)")
    page.evaluate("() => CallsiteCharts.update(undefined)")
    assert errors == more == []


def test_a_row_takes_its_new_style_from_the_delta(browser: Any) -> None:
    """A speaker whose role becomes known changes colour on the timeline too."""
    page, errors = open_page(browser)
    page.evaluate(f"f => CallsiteCharts.mount({ELEMENTS}, f)", charts.figures(at_12s()))
    later = at_16s()
    later["speakers"][1] = {**later["speakers"][1], "role": "bot"}  # not the shared CUSTOMER
    page.evaluate("u => CallsiteCharts.update(u)", charts.live_update(later))
    colour = page.evaluate(f"{TIMELINE}.data.find(t => t.meta === '4:+1555').marker.color")
    assert colour == charts.ROLE_PALETTES["bot"][0]
    assert errors == []
