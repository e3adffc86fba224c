"""In headless Chromium: a supervisor granted ``listen_call`` listens to the demo call live
from its page, and the audio reaches the page under a second after the media socket sent it;
a supervisor without the permission has no such button."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User

from simulator import DEMO_AUDIO_SCRIPT, load_call_script
from tests.dashboard.browser.test_captions import (
    SCREENSHOTS,
    _call_page_with_sound,
    _in_thread,
    _simulate,
    _wait_for_call,
)
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]


def test_a_supervisor_listens_to_a_live_call(daphne_factory: Any, supervisor: User) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    server = daphne_factory()
    simulator, errors = _simulate(
        server.ws_url, "listen-call", load_call_script(DEMO_AUDIO_SCRIPT), 2.0
    )
    call = _wait_for_call("listen-call")
    with sync_playwright() as playwright:
        browser, page = _call_page_with_sound(playwright, chromium, server, supervisor, call.pk)
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        # Not granted listening yet: no button.
        expect(page.locator("#listen-button")).to_have_count(0)

        _in_thread(
            lambda: supervisor.user_permissions.add(Permission.objects.get(codename="listen_call"))
        )
        page.reload()
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        page.click("#listen-button")
        # Audio within a second of asking, and under a second behind the media socket.
        page.wait_for_function("() => window.listenStats.messages > 0", timeout=1_000)
        page.wait_for_function("() => window.listenStats.messages >= 20", timeout=5_000)
        lag = page.evaluate("() => window.listenStats.lagMs")
        assert lag < 1000, lag
        expect(page.locator("#listen-status")).to_contain_text("s behind")
        expect(page.locator("#listen-track option")).to_have_count(3)  # everyone, two people
        page.screenshot(path=str(SCREENSHOTS / "call-listen.png"), full_page=True)
        page.click("#listen-button")
        expect(page.locator("#listen-button")).to_have_text("Listen live")
        browser.close()
    simulator.join(90)
    assert not errors, errors
