"""In headless Chromium: a supervisor pauses a live call for payment from its page, the page
says nothing is recorded or transcribed, and resumes it; both are in the call's audit, and the
pause is on the call's timeline."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from simulator import DEMO_DIR, load_script
from streaming.models import CallEvent, ControlAction
from tests.dashboard.browser.test_captions import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    _in_thread,
    _log_in,
    _simulate,
    _wait_for_call,
)
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]


def test_a_supervisor_pauses_a_live_call_for_payment_and_resumes_it(
    daphne_factory: Any, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    server = daphne_factory()
    # Slowed down, so that the call is still live while the supervisor acts.
    simulator, errors = _simulate(
        server.ws_url, "payment-call", load_script(DEMO_DIR / "short_call.toml"), 0.3
    )
    call = _wait_for_call("payment-call")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _log_in(page, server.http_url, supervisor)
        page.goto(f"{server.http_url}/calls/{call.pk}/")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        notice = page.locator("#secure-pause-notice")
        expect(notice).to_be_hidden()

        page.click("#secure-pause-button")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("nothing said now is recorded or transcribed")
        expect(page.locator("#secure-pause-button")).to_have_text("Resume after payment")
        expect(page.locator("#audit")).to_contain_text("Pause for payment")
        page.screenshot(path=str(SCREENSHOTS / "call-secure-pause.png"), full_page=True)
        # Reloaded, the page still says so: the pause is the call's, not the browser's.
        page.reload()
        expect(notice).to_be_visible()

        page.click("#secure-pause-button")
        expect(notice).to_be_hidden()
        expect(page.locator("#secure-pause-button")).to_have_text("Pause for payment")
        expect(page.locator("#audit")).to_contain_text("Resume after payment")
        # The pause is shaded on the "Who spoke when" chart, across every speaker's row.
        pause = "document.getElementById('chart-timeline').data?.find(t => t.meta === 'mark:pause')"
        page.wait_for_function(f"({pause})?.y.length > 0")
        shaded = page.evaluate(
            f"(() => {{ const t = {pause}; return [t.name, t.y, t.base, t.x]; }})()"
        )
        rows = page.evaluate(
            "document.getElementById('chart-timeline').data"
            ".filter(t => !String(t.meta).startsWith('mark:')).map(t => t.name)"
        )
        assert shaded[0] == "Paused for payment"
        assert sorted(shaded[1]) == sorted(rows), (shaded, rows)
        assert all(start >= 0 for start in shaded[2])
        assert all(width > 0 for width in shaded[3])
        browser.close()

    audit = _in_thread(
        lambda: list(
            ControlAction.objects.filter(call_id=call.pk).values_list("action", "username")
        )
    )
    assert audit == [("secure-pause", "sup"), ("secure-resume", "sup")]
    simulator.join(60)
    assert not errors, errors
    # The stream applied both (it records where on the call's timeline).
    kinds = _in_thread(
        lambda: sorted(
            CallEvent.objects.filter(call_id=call.pk, type__startswith="secure_pause").values_list(
                "type", flat=True
            )
        )
    )
    assert kinds == ["secure_pause.ended", "secure_pause.started"]
