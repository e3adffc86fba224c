"""Numbers a supervisor can trust: one duration everywhere, parts that add up, one time zone.

A call streamed through a real server, then its page, the wall and history in Chromium
(set to Europe/Berlin, an hour ahead of the server's UTC in winter).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User

from simulator import DEMO_DIR, load_script
from streaming import units
from streaming.models import Call
from tests.conftest import DaphneServer
from tests.dashboard.browser.test_captions import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    _in_thread,
    _log_in,
    _simulate,
)
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

FIXED_ROWS = {
    "Duration",
    "Someone talking",
    "Nobody talking",
    "On hold",
    "Two or more talking",
    "Interruptions",
}


def _seconds(clock: str) -> int:
    parts = [int(p) for p in clock.split(":")]
    return sum(value * 60**power for power, value in enumerate(reversed(parts)))


def _figures(page: Any) -> dict[str, str]:
    terms = page.locator("#figures dt").all_inner_texts()
    values = page.locator("#figures dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def _ended_call(connection_id: str) -> Call:
    import time

    deadline = time.monotonic() + 15
    while True:
        call = Call.objects.filter(connection_id=connection_id, analytics__final=True).first()
        if call is not None:
            return call
        assert time.monotonic() < deadline, "the call never ended with its figures"
        time.sleep(0.1)


def test_a_calls_duration_agrees_everywhere_and_its_parts_add_up(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    thread, errors = _simulate(
        daphne_server.ws_url,
        "numbers-call",
        load_script(DEMO_DIR / "short_call.toml"),
        speed=1,  # in real time, as ACS streams: offsets and the call's clock agree
    )
    thread.join(60)
    assert not errors, errors
    call = _in_thread(_ended_call, "numbers-call")
    assert call.ended_at is not None
    assert call.started_at is not None
    duration = units.clock((call.ended_at - call.started_at).total_seconds() * 1000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(timezone_id="Europe/Berlin")
        page = context.new_page()
        _log_in(page, daphne_server.http_url, supervisor)
        # The page names the zone its times are in: the browser's.
        page.reload()
        expect(page.locator("#time-zone")).to_have_text("Europe/Berlin")
        row = page.locator(f"#wall-rows tr[data-call-id='{call.pk}']")
        expect(row.locator(".duration")).to_have_text(duration)

        page.goto(f"{daphne_server.http_url}/calls/{call.pk}/")
        expect(page.locator("#figures dt").first).to_have_text("Duration")
        figures = _figures(page)
        assert page.locator("#call-duration").inner_text() == figures["Duration"] == duration
        talk = figures["Someone talking"].split(" · ")[0]
        silence = figures["Nobody talking"].split(" · ")[0]
        hold = figures["On hold"].split(" · ")[0]
        assert _seconds(talk) + _seconds(hold) + _seconds(silence) == _seconds(duration)
        # Every share is of the call's duration, and says so.
        assert figures["Someone talking"].endswith("% of the call")
        speakers = {k: v for k, v in figures.items() if k not in FIXED_ROWS}
        assert len(speakers) == 2, figures
        for value in speakers.values():
            assert re.search(r"\d+ % of the call", value), value
        page.screenshot(path=str(SCREENSHOTS / "call-numbers.png"), full_page=True)

        # History and the admin: the same duration, the start in the viewer's zone.
        page.goto(f"{daphne_server.http_url}/history/")
        history = page.locator(f"#history tr[data-call-id='{call.pk}']")
        expect(history).to_contain_text(duration)
        shown = history.locator("time").inner_text()
        expected = _berlin(call.started_at).strftime("%Y-%m-%d %H:%M:%S")
        assert shown == expected, (shown, expected)
        browser.close()


def _berlin(moment: datetime) -> datetime:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("Europe/Berlin"))
