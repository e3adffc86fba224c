"""A supervisor triages the call wall in headless Chromium: with 30 live calls, the call an
alert fires on moves to the top at once, keeps its alert's words after a reload, and the row
a supervisor has focused keeps the keyboard focus while the wall updates around it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from simulator import Script, Speaker, Turn
from streaming.models import Alert, AlertRule
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

LIVE_CALLS = 30
SCRIPT = Script(
    title="Cancel",
    locale="en-US",
    speakers=(Speaker("agent", "8:acs:resource_agent-7"), Speaker("customer", "4:+15555550177")),
    turns=(
        Turn("agent", "Thank you for calling, how can I help you today?", 0.5, 0.9, 170),
        Turn("customer", "I would like to cancel my contract please.", 2.0, 0.9, 150),
        Turn("agent", "I am sorry to hear that, let me look at your account.", 0.5, 0.9, 160),
    ),
)

# The second call goes on well after the 10 s of the focus check, so it is still live then.
LONGER = Script(
    title="Cancel, at length",
    locale="en-US",
    speakers=SCRIPT.speakers,
    turns=SCRIPT.turns
    + tuple(
        Turn("agent", "Bear with me a moment while I check the details on your account.", 2.0)
        for _ in range(6)
    ),
)


def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run database work off Playwright's event loop thread (Django refuses it there)."""

    def run() -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _live_calls(count: int) -> list[int]:
    """``count`` connected calls of an agent and a customer, started minutes ago (longer
    than the simulated call, so before its alert it sorts below them)."""
    now = timezone.now()
    return [
        make_call(
            f"wall-live-{n}",
            people=(f"8:acs:resource_agent-{100 + n}", f"4:+1555010{n:04d}"),
            started=now - timedelta(minutes=5, seconds=n),
        )
        for n in range(count)
    ]


def _alert(call_id: int, timeout: float = 30) -> Alert:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alert = Alert.objects.filter(call_id=call_id).first()
        if alert is not None:
            return alert
        time.sleep(0.05)
    raise AssertionError(f"no alert fired on call {call_id}")


def _first_row(page: Any) -> str | None:
    return page.evaluate(
        "() => document.querySelector('#wall-rows tr:not([hidden])')?.dataset.callId ?? null"
    )


def test_alerted_call_goes_to_the_top_keeps_its_text_and_focus_stays(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    AlertRule.objects.all().delete()
    AlertRule.objects.create(name="Wants to cancel", kind="keyword", phrase="cancel")
    others = _live_calls(LIVE_CALLS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        _log_in(page, daphne_server.http_url, supervisor)
        expect(page.locator("#wall-rows tr[data-call-id]")).to_have_count(LIVE_CALLS)
        # Compact rows: a 1440x900 screen shows at least 20 calls.
        height = page.evaluate("() => document.querySelector('#wall-rows tr').offsetHeight")
        assert height <= 40, height

        simulator, errors = _simulate(daphne_server.ws_url, "wall-alerted", SCRIPT, 1.0)
        call = _wait_for_call("wall-alerted")
        row = page.locator(f'#wall-rows tr[data-call-id="{call.pk}"]')
        expect(row).to_be_visible(timeout=10_000)
        expect(row.locator(".health")).to_have_text("audio OK", timeout=10_000)
        assert _first_row(page) != str(call.pk)

        # The alert fires: within a second of it the call is the wall's first row.
        alert = _in_thread(_alert, call.pk)
        page.wait_for_function(
            f"() => document.querySelector('#wall-rows tr')?.dataset.callId === '{call.pk}'",
            timeout=5_000,
        )
        moved_at = page.evaluate("() => Date.now()") / 1000
        assert moved_at - alert.fired_at.timestamp() < 1.0, moved_at - alert.fired_at.timestamp()
        expect(row).to_have_attribute("data-attention", "alert")
        expect(row.locator(".marker")).to_have_css("background-color", "rgb(207, 34, 46)")
        expect(row.locator(".latest-alert")).to_have_text(alert.message)
        page.screenshot(path=str(SCREENSHOTS / "wall-triage.png"))

        # After a reload the alert's words come from the snapshot, and it is still on top.
        page.reload()
        expect(row.locator(".latest-alert")).to_have_text(alert.message)
        assert _first_row(page) == str(call.pk)

        # A supervisor tabs to the link of a call in the middle of the wall. For 10 s the
        # wall keeps updating around it: durations and audio tick, a second call comes in
        # and fires its alert (to the top), the first ends (to the bottom). The focus stays.
        target = others[LIVE_CALLS // 2]
        link = page.locator(f'#wall-rows tr[data-call-id="{target}"] a.call-link')
        link.focus()
        page.evaluate(
            """() => {
              window.wallMutations = 0;
              new MutationObserver((records) => { window.wallMutations += records.length; })
                .observe(document.getElementById('wall-rows'),
                         {subtree: true, childList: true, characterData: true, attributes: true});
            }"""
        )
        second, second_errors = _simulate(daphne_server.ws_url, "wall-second", LONGER, 1.0)
        deadline = time.monotonic() + 10
        lost: list[str] = []
        while time.monotonic() < deadline:
            focused = page.evaluate(
                "() => document.activeElement?.closest('tr')?.dataset.callId ?? "
                "document.activeElement?.tagName"
            )
            if focused != str(target):
                lost.append(str(focused))
            page.wait_for_timeout(200)
        assert not lost, lost
        mutations = page.evaluate("() => window.wallMutations")
        print(f"wall mutations in 10 s at {LIVE_CALLS + 2} rows: {mutations}")
        second_call = _wait_for_call("wall-second")
        expect(page.locator(f'#wall-rows tr[data-call-id="{second_call.pk}"]')).to_have_attribute(
            "data-attention", "alert", timeout=20_000
        )
        # Filters: "needs attention" leaves the calls that do; they survive a reload (the
        # second call is still live: its alert keeps it in).
        page.check("#filter-attention")
        visible = page.locator("#wall-rows tr:not([hidden])")
        expect(visible.first).to_have_attribute("data-attention", "alert")
        assert page.locator('#wall-rows tr:not([hidden])[data-attention=""]').count() == 0
        page.reload()
        expect(page.locator("#filter-attention")).to_be_checked()
        assert page.locator('#wall-rows tr:not([hidden])[data-attention=""]').count() == 0
        page.uncheck("#filter-attention")
        simulator.join(60)
        second.join(60)
        assert not errors, errors
        assert not second_errors, second_errors

        page.select_option("#filter-state", "ended")
        expect(visible.first).to_have_attribute("data-state", "ended", timeout=15_000)
        assert page.locator('#wall-rows tr:not([hidden]):not([data-state="ended"])').count() == 0
        assert page.locator("#wall-rows tr[hidden]").count() >= LIVE_CALLS
        browser.close()
