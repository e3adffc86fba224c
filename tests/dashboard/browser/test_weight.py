"""What the call page costs on the wire, measured by Chromium: static files collected as in
production (hashed names, compressed copies) and served by Daphne through WhiteNoise.

First visit under 1.5 MB; a second visit transfers no static file at all (hashed names are
cached for a year, immutable, so the browser does not even revalidate them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.conftest import ROOT, DaphneServer
from tests.dashboard.browser.test_captions import CHROMIUM_ARGS, _log_in
from tests.factories import Said, make_call
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

FIRST_VISIT_LIMIT = 1_500_000


def collect_static(root: Path) -> None:
    """``manage.py collectstatic`` into ``root``, as a deployment runs it."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "collectstatic",
            "--noinput",
            "-v",
            "0",
            "-i",
            "plotly.min.js",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CALLSITE_STATIC_ROOT": str(root),
        },
        check=True,
        timeout=300,
    )


class Transfers:
    """Bytes on the wire per URL, from Chromium's network events (0 for a cache hit)."""

    def __init__(self, page: Any) -> None:
        self.urls: dict[str, str] = {}
        self.bytes: dict[str, int] = {}
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.on("Network.loadingFinished", self._finished)

    def _response(self, event: dict[str, Any]) -> None:
        self.urls[event["requestId"]] = event["response"]["url"]

    def _finished(self, event: dict[str, Any]) -> None:
        url = self.urls.get(event["requestId"])
        if url is not None:
            self.bytes[url] = self.bytes.get(url, 0) + int(event["encodedDataLength"])

    def reset(self) -> None:
        self.urls.clear()
        self.bytes.clear()

    def total(self, matching: Callable[[str], bool] = lambda url: True) -> int:
        return sum(n for url, n in self.bytes.items() if matching(url))


def test_call_page_is_light_and_a_second_visit_fetches_no_static_file(
    daphne_factory: Callable[..., DaphneServer], supervisor: User, tmp_path: Path
) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    static = tmp_path / "static"
    collect_static(static)
    assert list((static / "vendor" / "plotly").glob("plotly-basic.min.*.js.gz"))
    server = daphne_factory(CALLSITE_STATIC_ROOT=str(static))
    call_id = make_call(
        "weight-call",
        people=("8:acs:resource_agent-1", "4:+15551230000"),
        said=[Said("8:acs:resource_agent-1", "Hello, how can I help you today?", 0.5)],
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # A new browser: everything from the login page to the drawn call page counts.
        transfers = Transfers(page)
        _log_in(page, server.http_url, supervisor)
        page.goto(f"{server.http_url}/calls/{call_id}/", wait_until="load")
        expect(page.locator("#chart-timeline .main-svg").first).to_be_attached(timeout=15_000)
        first = transfers.total()
        static_first = transfers.total(lambda url: "/static/" in url)
        print(f"login and call page, first visit: {first} bytes ({static_first} of static files)")
        assert first < FIRST_VISIT_LIMIT, transfers.bytes
        # Hashed names, so cacheable for ever.
        assert any(
            re.search(r"/plotly-basic\.min\.[0-9a-f]{12}\.js$", url) for url in transfers.bytes
        )

        # A second visit: every static file comes from the browser's cache, unasked.
        transfers.reset()
        page.goto(f"{server.http_url}/", wait_until="load")
        page.goto(f"{server.http_url}/calls/{call_id}/", wait_until="load")
        expect(page.locator("#chart-timeline .main-svg").first).to_be_attached(timeout=15_000)
        again = {url: n for url, n in transfers.bytes.items() if "/static/" in url and n}
        assert again == {}, again
        browser.close()
