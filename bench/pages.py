"""The supervisor pages in Chromium with live calls: what the wall costs the browser, and
what the call page costs on the wire.

One Callsite worker (static files collected, served by WhiteNoise) gets ``--calls``
simulated calls streamed over the ACS socket (scripted turns: ACS transcription and audio).
Chromium opens the wall and, over ``--seconds``, counts the DOM mutation records of its call
list (a MutationObserver), the main thread's busy time (CDP ``Performance.getMetrics``:
``TaskDuration``) and the page's JavaScript heap. Then a fresh browser logs in and opens one
live call's page: bytes on the wire (CDP ``encodedDataLength``) and load times.

    .venv/bin/python -m bench.pages --calls 50 --seconds 20 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness.db import fresh_sqlite, seed_supervisor
from bench.harness.servers import CALLSITE, ROOT, Server, base_env
from simulator import Script, Speaker, Turn
from simulator.send import stream_call

CHROMIUM = "/usr/bin/chromium"


def script(turns: int) -> Script:
    return Script(
        title="Bench",
        locale="en-US",
        speakers=(
            Speaker("agent", "8:acs:resource_agent-1"),
            Speaker("customer", "4:+15551230000"),
        ),
        turns=tuple(
            Turn("agent" if n % 2 else "customer", f"This is sentence {n} of a long call.", 1.5)
            for n in range(turns)
        ),
    )


def calls_in_thread(url: str, secret: str, count: int, turns: int) -> threading.Thread:
    """Stream ``count`` calls at once from a thread with its own event loop."""

    async def all_calls() -> None:
        await asyncio.gather(
            *(
                stream_call(
                    f"{url}/ws/acs/",
                    call_connection_id=f"bench-pages-{n}",
                    script=script(turns),
                    token=secret,
                )
                for n in range(count)
            ),
            return_exceptions=True,
        )

    thread = threading.Thread(target=lambda: asyncio.run(all_calls()), daemon=True)
    thread.start()
    return thread


def measure(http_url: str, cookie: str, calls: int, seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    name, _, value = cookie.partition("=")
    result: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        context.add_cookies([{"name": name, "value": value, "url": http_url}])
        page = context.new_page()
        page.goto(f"{http_url}/")
        page.wait_for_function(
            f"() => document.querySelectorAll('#wall-rows tr').length >= {calls}", timeout=60_000
        )
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.evaluate(
            """() => { window.benchMutations = 0;
              new MutationObserver((r) => { window.benchMutations += r.length; })
                .observe(document.getElementById('wall-rows'),
                         {subtree: true, childList: true, characterData: true,
                          attributes: true}); }"""
        )

        def metrics() -> dict[str, float]:
            return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}

        before, started = metrics(), time.monotonic()
        page.wait_for_timeout(seconds * 1000)
        after, elapsed = metrics(), time.monotonic() - started
        rows = page.evaluate("() => document.querySelectorAll('#wall-rows tr').length")
        result["wall"] = {
            "rows": rows,
            "seconds": round(elapsed, 1),
            "dom_mutations_per_second": round(
                page.evaluate("() => window.benchMutations") / elapsed, 1
            ),
            "main_thread_ms_per_second": round(
                1000 * (after["TaskDuration"] - before["TaskDuration"]) / elapsed, 1
            ),
            "script_ms_per_second": round(
                1000 * (after["ScriptDuration"] - before["ScriptDuration"]) / elapsed, 1
            ),
            "js_heap_used_mb": round(after["JSHeapUsedSize"] / 1e6, 1),
            "dom_nodes": int(after["Nodes"]),
        }
        first_call = page.evaluate("() => document.querySelector('#wall-rows tr').dataset.callId")
        context.close()

        # A first visit of one live call's page, in a fresh browser context (empty cache).
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_cookies([{"name": name, "value": value, "url": http_url}])
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        urls: dict[str, str] = {}
        sizes: dict[str, int] = {}
        cdp.on(
            "Network.responseReceived",
            lambda e: urls.__setitem__(e["requestId"], e["response"]["url"]),
        )
        cdp.on(
            "Network.loadingFinished",
            lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])),
        )
        page.goto(f"{http_url}/calls/{first_call}/", wait_until="load")
        page.wait_for_selector("#chart-timeline .main-svg", state="attached", timeout=30_000)
        timing = page.evaluate(
            """() => { const n = performance.getEntriesByType('navigation')[0];
              return {dom_content_loaded_ms: Math.round(n.domContentLoadedEventEnd),
                      load_ms: Math.round(n.loadEventEnd)}; }"""
        )
        result["call_page"] = {
            "first_visit_bytes": sum(sizes.values()),
            "static_bytes": sum(n for rid, n in sizes.items() if "/static/" in urls.get(rid, "")),
            "requests": len(sizes),
            **timing,
        }
        browser.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="live simulated calls")
    parser.add_argument("--seconds", type=float, default=20, help="how long the wall is watched")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    secret = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        workdir = Path(tmp)
        key = base_env(secret)["DJANGO_SECRET_KEY"]
        server_env = {
            "DATABASE_URL": fresh_sqlite(workdir / "pages.sqlite3"),
            "DJANGO_SECRET_KEY": key,
            "CALLSITE_HTTPS": "0",
            "CALLSITE_STATIC_ROOT": str(workdir / "static"),
        }
        cookie = seed_supervisor(secret, server_env)
        env = {**base_env(secret), **server_env}
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
            env=env,
            check=True,
        )
        server = Server(CALLSITE, workdir, secret, server_env, entry="callsite.server")
        try:
            asyncio.run(server.ready())
            url = f"127.0.0.1:{server.port}"
            turns = int(args.seconds * 2 + 60)  # the calls outlive the measurement
            calls_in_thread(f"ws://{url}", secret, args.calls, turns)
            figures = measure(f"http://{url}", cookie, args.calls, args.seconds)
        finally:
            server.stop()
    report = {"benchmark": "pages", "calls": args.calls, **figures}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
