"""A supervisor in headless Chromium watches a simulated call's captions arrive."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from simulator import DEMO_AUDIO_SCRIPT, load_call_script, load_script, stream_call
from streaming.models import Call
from tests.conftest import FIXTURES, ROOT, DaphneServer
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _wait_for_call(connection_id: str, timeout: float = 20) -> Call:
    """Poll the database from a worker thread: Playwright's sync API runs an event loop in
    this one, where Django refuses synchronous queries."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_poll_call, connection_id, timeout).result()


def _poll_call(connection_id: str, timeout: float) -> Call:
    try:
        return _poll_call_inner(connection_id, timeout)
    finally:
        connection.close()


def _poll_call_inner(connection_id: str, timeout: float) -> Call:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = Call.objects.filter(connection_id=connection_id).first()
        if call is not None:
            return call
        time.sleep(0.1)
    raise AssertionError(f"call {connection_id} never reached the server")


def _log_in(page: Any, base_url: str, user: User) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/accounts/login/?next=/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "sup-password-123")
    page.click("#login-submit")
    expect(page.locator("#wall")).to_be_visible()


def _call_page_with_sound(
    playwright: Any, chromium: str | None, server: DaphneServer, user: User, call_id: int
) -> tuple[Any, Any]:
    """Chromium, logged in as ``user``, on a call's page, allowed to play sound unasked."""
    assert chromium is not None
    browser = playwright.chromium.launch(
        executable_path=chromium,
        headless=True,
        args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
    )
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    _log_in(page, server.http_url, user)
    page.goto(f"{server.http_url}/calls/{call_id}/")
    return browser, page


def _simulate(url: str, connection_id: str, script: Any, speed: float) -> tuple[Any, list[Any]]:
    """Stream ``script`` to ``url`` from a thread; returns the thread and its errors."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(
                stream_call(
                    f"{url}/ws/acs/",
                    call_connection_id=connection_id,
                    script=script,
                    token=settings.CALLSITE_ACS_SHARED_SECRET,
                    speed=speed,
                )
            )
        except BaseException as error:  # surfaced in the test thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_supervisor_sees_interim_then_final_captions(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    """Log in, open the call page while the simulator runs, see captions arrive live."""
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    script = load_script(FIXTURES / "scripts" / "browser_call.toml")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        _log_in(page, daphne_server.http_url, supervisor)

        simulator, errors = _simulate(daphne_server.ws_url, "browser-call", script, 1.0)
        call = _wait_for_call("browser-call")
        # The wall learns of the new call live, without a reload.
        expect(page.locator(f'tr[data-call-id="{call.pk}"]')).to_be_visible(timeout=10_000)
        page.screenshot(path=str(SCREENSHOTS / "call-wall.png"), full_page=True)

        page.goto(f"{daphne_server.http_url}/calls/{call.pk}/")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        assert page.locator(".caption.final").count() == 0, "page opened after the first final"

        interim = page.locator(".caption.interim").first
        expect(interim).to_be_visible(timeout=15_000)
        expect(interim.locator(".speaker")).not_to_be_empty()

        last_line = script.turns[-1].text
        expect(page.locator(".caption.final .text").last).to_have_text(last_line, timeout=30_000)
        finals = page.locator(".caption.final")
        expect(finals).to_have_count(len(script.turns))
        texts = finals.locator(".text").all_inner_texts()
        assert texts == [turn.text for turn in script.turns]
        speakers = finals.locator(".speaker").all_inner_texts()
        assert speakers[1] == "+15555550199"
        assert speakers[0].startswith("Agent")
        expect(page.locator(".caption.interim")).to_have_count(0)
        page.screenshot(path=str(SCREENSHOTS / "call-page.png"), full_page=True)
        browser.close()

    simulator.join(30)
    assert not simulator.is_alive()
    assert not errors, errors


def test_supervisor_sees_the_recognized_audio_call_live(
    daphne_factory: Any, supervisor: User
) -> None:
    """The demo WAVs as unmixed ACS audio, recognized by pocketsphinx, captioned live."""
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    server = daphne_factory(CALLSITE_RECOGNIZER="sphinx", CALLSITE_SPHINX_WORKERS="1")
    script = load_call_script(DEMO_AUDIO_SCRIPT)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _log_in(page, server.http_url, supervisor)
        simulator, errors = _simulate(server.ws_url, "browser-audio-call", script, 2.0)
        call = _wait_for_call("browser-audio-call")
        page.goto(f"{server.http_url}/calls/{call.pk}/")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        # The agent's greeting appears while it is being spoken, then as a final.
        expect(page.locator(".caption.interim").first).to_be_visible(timeout=15_000)
        first_final = page.locator(".caption.final").first
        expect(first_final.locator(".text")).to_contain_text("how can i help you", timeout=20_000)
        expect(first_final.locator(".speaker")).to_contain_text("Agent")
        # The customer's reply, under the caller's number.
        reply = page.locator(".caption.final", has_text="internet connection")
        expect(reply).to_be_visible(timeout=20_000)
        expect(reply.locator(".speaker")).to_have_text("+15551230000")
        simulator.join(60)
        expect(page.locator(".caption.final", has_text="goodbye")).to_be_visible(timeout=20_000)
        page.screenshot(path=str(SCREENSHOTS / "call-page-audio.png"), full_page=True)
        browser.close()
    assert not simulator.is_alive()
    assert not errors, errors


def _chart_data(page: Any, element_id: str) -> Any:
    """What plotly is drawing in a chart (plotly keeps it on the element)."""
    return page.evaluate(
        "(id) => { const el = document.getElementById(id);"
        " return el && el.data ? JSON.parse(JSON.stringify(el.data)) : null; }",
        element_id,
    )


def _timeline_seconds(page: Any) -> float:
    data = _chart_data(page, "chart-timeline") or []
    return sum(sum(trace.get("x") or []) for trace in data)


def test_charts_move_live_and_a_hold_is_not_dead_air(daphne_factory: Any, supervisor: User) -> None:
    """The demo call streamed as unmixed audio: the talk-time charts move while it runs,
    the customer's hold in the middle shows as "on hold" and fires the hold rule, not the
    dead-air one, and the finished call keeps its charts."""
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    from streaming.models import AlertRule

    # Exactly these rules (the default rules may or may not be there, depending on test order).
    AlertRule.objects.all().delete()
    AlertRule.objects.create(name="Dead air over 5 s", kind="dead_air", seconds=5)
    AlertRule.objects.create(name="On hold over 4 s", kind="hold", seconds=4)
    server = daphne_factory(CALLSITE_RECOGNIZER="none")
    script = load_call_script(DEMO_AUDIO_SCRIPT)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _log_in(page, server.http_url, supervisor)
        simulator, errors = _simulate(server.ws_url, "browser-charts-call", script, 2.0)
        call = _wait_for_call("browser-charts-call")
        page.goto(f"{server.http_url}/calls/{call.pk}/")
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live")

        # plotly.js is served from the installed package and draws the three charts.
        for chart in ("chart-talk-time", "chart-talk-ratio", "chart-timeline"):
            expect(page.locator(f"#{chart} .main-svg").first).to_be_attached(timeout=10_000)
        # The timeline grows while the call runs, without a reload.
        page.wait_for_function(
            "() => (document.getElementById('chart-timeline').data || [])"
            ".some((t) => (t.x || []).length > 0)",
            timeout=15_000,
        )
        early = _timeline_seconds(page)
        page.wait_for_timeout(3000)
        later = _timeline_seconds(page)
        assert later > early, (early, later)
        talk = _chart_data(page, "chart-talk-time")
        assert talk is not None
        assert any(sum(trace.get("x") or []) > 0 for trace in talk)

        # The customer is on hold 23-29 s into the call (a ParticipantsUpdated callback): the
        # page says so live, and the 7 s pause around it is a hold, not dead air.
        customer = page.locator('#participants li[data-raw-id="4:+15551230000"]')
        expect(customer.locator('.badge.flag[data-flag="on"]')).to_contain_text(
            "on hold", timeout=25_000
        )
        alert = page.locator('#alerts li[data-kind="hold"]')
        expect(alert).to_be_visible(timeout=25_000)
        expect(alert).to_contain_text("On hold over 4 s")
        expect(page.locator("#alert-count")).to_have_text("1")
        page.screenshot(path=str(SCREENSHOTS / "call-page-charts.png"), full_page=True)

        # The wall shows the call's talk ratio, health and alert.
        page.goto(f"{server.http_url}/")
        row = page.locator(f'tr[data-call-id="{call.pk}"]')
        expect(row.locator(".ratio span").first).to_be_attached(timeout=10_000)
        expect(row.locator(".health")).to_contain_text("audio OK", timeout=10_000)
        expect(row.locator(".badge.alert")).to_have_text("1 alert")
        page.screenshot(path=str(SCREENSHOTS / "call-wall-live.png"), full_page=True)

        simulator.join(60)
        assert not simulator.is_alive()
        # The finished call keeps its figures and charts.
        page.goto(f"{server.http_url}/calls/{call.pk}/")
        expect(page.locator("#figures")).to_have_attribute("data-final", "true", timeout=15_000)
        expect(page.locator('#alerts li[data-kind="hold"]')).to_have_count(1)
        expect(page.locator('#alerts li[data-kind="dead_air"]')).to_have_count(0)
        expect(page.locator("#figures")).to_contain_text("On hold")
        page.wait_for_function(
            "() => (document.getElementById('chart-timeline').data || [])"
            ".some((t) => (t.x || []).length > 0)",
            timeout=10_000,
        )
        page.screenshot(path=str(SCREENSHOTS / "call-page-finished.png"), full_page=True)
        browser.close()
    assert not errors, errors


def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a database function off Playwright's event loop thread."""

    def run() -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _store_finals(call_id: int, first: int, count: int) -> None:
    from streaming import services
    from streaming.acs.packets import Word

    for n in range(first, first + count):
        services.utterance_record(
            call_id=call_id,
            participant_raw_id="4:+15555550199" if n % 2 else "8:acs:agent-0001",
            text=f"Line {n}: the parcel is on its way, and it should arrive by Friday.",
            confidence=0.9,
            offset_ticks=n * 30_000_000,
            duration_ticks=20_000_000,
            words=[
                Word(text="Line", offset=n * 30_000_000, duration=2_000_000, confidence=0.95),
                Word(
                    text=f"{n}",
                    offset=n * 30_000_000 + 2_000_000,
                    duration=1_000_000,
                    confidence=0.95,
                ),
                Word(
                    text="the",
                    offset=n * 30_000_000 + 3_000_000,
                    duration=1_000_000,
                    confidence=0.95,
                ),
                Word(
                    text="parcel",
                    offset=n * 30_000_000 + 4_000_000,
                    duration=3_000_000,
                    confidence=0.31,
                ),
            ],
            source="recognizer",
        )


# Records every WebSocket the page opens, so a test can drop one.
RECORD_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = function (url, protocols) {
    const socket = new Native(url, protocols);
    window.__sockets.push(socket);
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
})();
"""


def test_call_page_marks_doubtful_words_keeps_the_reader_s_place_and_resumes(
    daphne_server: DaphneServer, supervisor: User
) -> None:
    """Low-confidence words are marked; scrolling up stops auto-scroll; a dropped socket
    reconnects with ?after=<seq> and the page ends with every final exactly once."""
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    from streaming import services

    call = _in_thread(services.call_stream_opened, connection_id="resume-call")
    _in_thread(_store_finals, call["id"], 1, 30)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1300, "height": 800})
        page.add_init_script(RECORD_SOCKETS)
        _log_in(page, daphne_server.http_url, supervisor)
        page.goto(f"{daphne_server.http_url}/calls/{call['id']}/")
        finals = page.locator(".caption.final")
        expect(finals).to_have_count(30)

        # "parcel" was recognized with 31 % confidence: marked, with the figure on hover.
        doubtful = finals.first.locator("mark.low-confidence")
        expect(doubtful).to_have_text("parcel")
        expect(doubtful).to_have_attribute("title", "confidence 31 %")
        expect(finals.first.locator(".text")).to_have_text(
            "Line 1: the parcel is on its way, and it should arrive by Friday."
        )

        # The page followed the captions to the bottom; the supervisor scrolls up to read.
        pane = page.locator("#captions")
        assert pane.evaluate("(el) => el.scrollHeight > el.clientHeight + 100")
        assert pane.evaluate("(el) => el.scrollTop + el.clientHeight >= el.scrollHeight - 40")
        pane.evaluate("(el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        expect(page.locator("#follow")).to_be_visible()

        # Two finals are stored, then the socket drops: the page comes back with ?after=.
        _in_thread(_store_finals, call["id"], 31, 2)
        page.evaluate("() => window.__sockets.at(-1).close()")
        page.wait_for_function(
            "() => window.__sockets.length === 2 && window.__sockets[1].readyState === 1",
            timeout=10_000,
        )
        expect(finals).to_have_count(32, timeout=10_000)
        urls = page.evaluate("() => window.__sockets.map((s) => s.url)")
        assert "after=" not in urls[-2]
        # However many of the two new finals arrived before the drop, the page resumes after
        # the last one it had.
        assert urls[-1].split("after=")[1] in {"30", "31", "32"}, urls
        texts = finals.locator(".text").all_inner_texts()
        assert texts == [
            f"Line {n}: the parcel is on its way, and it should arrive by Friday."
            for n in range(1, 33)
        ]
        # The reader's place is kept until they ask to go back to live.
        assert pane.evaluate("(el) => el.scrollTop") < 50
        page.click("#follow")
        assert pane.evaluate("(el) => el.scrollTop + el.clientHeight >= el.scrollHeight - 40")
        expect(page.locator("#follow")).to_be_hidden()
        page.screenshot(path=str(SCREENSHOTS / "call-page-resumed.png"), full_page=True)
        browser.close()
