"""In headless Chromium: the demo call, streamed as unmixed ACS audio to a server recording
it, is played back on its page once it ended: clicking its third caption seeks the player
to that caption's start, the caption being played is highlighted, another track takes over
at the same moment, and every request the player made is in the audit."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User

from simulator import DEMO_AUDIO_SCRIPT, load_call_script
from streaming.models import Call, CallState, Recording, RecordingAccess
from tests.dashboard.browser.test_captions import (
    SCREENSHOTS,
    _call_page_with_sound,
    _in_thread,
    _simulate,
)
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

CALL = "playback-call"
# Where the player's next seek lands, taken when it lands (before playing moves it on).
SEEKED = """() => {
  const player = document.getElementById("player");
  window.seekedAt = null;
  player.addEventListener("seeked", () => { window.seekedAt = player.currentTime; }, {once: true});
}"""


def _recorded_call(timeout: float = 60) -> tuple[Call, list[Recording]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = Call.objects.filter(connection_id=CALL, state=CallState.ENDED).first()
        if call is not None:
            recordings = list(Recording.objects.filter(call=call).exclude(file=""))
            if len(recordings) == 3:  # agent, customer, everyone
                return call, recordings
        time.sleep(0.2)
    raise AssertionError("the call never ended with its three recordings assembled")


def _player(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            "() => { const p = document.getElementById('player');"
            " return {time: p.currentTime, duration: p.duration, seeking: p.seeking,"
            " src: p.currentSrc, ready: p.readyState}; }"
        )
    )


def _until(page: Any, check: Any, what: str, within: float = 15) -> dict[str, Any]:
    """The player's state once ``check`` holds."""
    deadline = time.monotonic() + within
    while True:
        state = _player(page)
        if check(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"the player never {what}: {state}")
        page.wait_for_timeout(50)


def test_clicking_a_caption_plays_the_finished_call_from_it(
    daphne_factory: Any, supervisor: User
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    server = daphne_factory(CALLSITE_RECORDING="on")
    simulator, errors = _simulate(server.ws_url, CALL, load_call_script(DEMO_AUDIO_SCRIPT), 4.0)
    simulator.join(60)
    assert not simulator.is_alive()
    assert not errors, errors
    call, recordings = _in_thread(_recorded_call)
    mix = next(r for r in recordings if r.kind == "mixed")
    # Say the call was paused for payment from 2 s to 4 s into it (its audio recorded here).
    origin = call.audio_origin or call.started_at
    assert origin is not None
    call.secure_pause_periods = [
        [(origin + timedelta(seconds=s)).isoformat() for s in (2, 4)],
    ]
    _in_thread(lambda: call.save(update_fields=["secure_pause_periods"]))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser, page = _call_page_with_sound(playwright, chromium, server, supervisor, call.pk)
        expect(page.locator("#player")).to_be_visible()
        expect(page.locator("#follow")).to_have_text("↓ To the end")  # not live any more
        finals = page.locator(".caption.final")
        expect(finals.nth(2)).to_be_visible(timeout=10_000)
        # The browser decoded the FLAC the server sent: it knows how long the call was.
        loaded = _until(page, lambda s: s["ready"] >= 1, "loaded the recording")
        assert abs(loaded["duration"] - mix.duration_ticks / 1e7) < 0.05, loaded

        third = finals.nth(2)
        start = int(third.get_attribute("data-offset") or "") / 1e7
        assert start > 1, "the third caption starts into the call"
        page.evaluate(SEEKED)
        third.locator(".text").click()
        page.wait_for_function("() => window.seekedAt !== null", timeout=10_000)
        seeked_at = page.evaluate("() => window.seekedAt")
        assert abs(seeked_at - start) < 0.05, (seeked_at, start)
        expect(third).to_have_class("caption final playing", timeout=5_000)
        expect(third).to_have_attribute("aria-current", "true")
        assert page.locator(".caption.playing").count() == 1

        # Another track takes over at the same moment.
        page.evaluate("() => document.getElementById('player').pause()")
        at = _player(page)["time"]
        page.evaluate(SEEKED)
        page.select_option("#player-track", index=1)
        page.wait_for_function("() => window.seekedAt !== null", timeout=10_000)
        switched = _player(page)
        assert "/recordings/" in switched["src"], switched
        assert not switched["src"].endswith(f"/{mix.pk}.flac"), switched
        assert abs(page.evaluate("() => window.seekedAt") - at) < 0.05, (switched, at)
        # The customer's hold is marked under the player; the mark plays from the hold.
        hold = page.locator("#player-marks .mark.hold").first
        expect(hold).to_have_attribute("aria-label", re.compile(r"^on hold for 0:0\d at 0:\d\d"))
        left = float(hold.evaluate("el => parseFloat(el.style.left)"))
        duration = _player(page)["duration"]
        page.evaluate(SEEKED)
        hold.click()
        page.wait_for_function("() => window.seekedAt !== null", timeout=10_000)
        assert abs(page.evaluate("() => window.seekedAt") - left * duration / 100) < 0.05
        # So is the pause for payment, its whole length.
        pause = page.locator("#player-marks .mark.pause")
        expect(pause).to_have_attribute(
            "aria-label", "paused for payment (0:02) at 0:02: play from here"
        )
        width = float(pause.evaluate("el => parseFloat(el.style.width)"))
        assert abs(width * duration / 100 - 2) < 0.05, (width, duration)
        page.screenshot(path=str(SCREENSHOTS / "call-playback.png"), full_page=True)
        browser.close()

    audit = _in_thread(
        lambda: list(
            RecordingAccess.objects.filter(call_id=call.pk).values_list("username", "status")
        )
    )
    assert audit
    assert {who for who, _ in audit} == {"sup"}
    assert {status for _, status in audit} <= {200, 206}
