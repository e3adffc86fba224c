"""The README's first command, as a newcomer takes it.

``make demo`` runs in a subprocess on a port of its own, with nothing configured but the port
and a scratch database: the login it prints opens the wall, the demo call is on it, its page
shows captions of the demo transcript, history lists it, the alert rules open, and the
banner's "another call" command streams a second call. SIGTERM then stops the demo, the
server, the simulator and the recognizer processes, as Ctrl-C does.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from simulator import DEMO_AUDIO_DIR
from tests.conftest import ROOT
from tests.dashboard.browser.test_captions import CHROMIUM_ARGS, SCREENSHOTS
from tests.servers import free_port
from tests.services import chromium_path, require

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

TRANSCRIPT = DEMO_AUDIO_DIR / "transcript.txt"
# Words too common to show that the demo call itself was recognised.
COMMON = {
    *("a", "am", "an", "and", "are", "at", "be", "can", "for", "have", "hi", "i", "in"),
    *("is", "it", "me", "my", "of", "on", "one", "please", "so", "that", "the", "this"),
    *("to", "yes", "you", "your"),
}


def _reference_words() -> set[str]:
    words: set[str] = set()
    for line in TRANSCRIPT.read_text().splitlines():
        text = line.split("\t")[-1]
        words.update(re.findall(r"[a-z']+", text.lower()))
    return words - COMMON


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (children started in sessions of their own
    included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.update(children)
        frontier.extend(children)
    return found


def _command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class DemoOutput:
    """The demo's output, read line by line in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, marker: str, within: float) -> list[str]:
        deadline = time.monotonic() + within
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"the demo never printed {marker!r}:\n" + "\n".join(self.seen)
                    ) from None
                continue
            self.seen.append(line)
            if marker in line:
                return self.seen

    def field(self, name: str) -> str:
        for line in self.seen:
            if line.strip().startswith(name):
                return line.strip()[len(name) :].strip()
        raise AssertionError(f"the banner has no {name!r} line:\n" + "\n".join(self.seen))


def _recorded_call(page: Any, site: str, within: float) -> int:
    """The id of an ended call of the demo with its recordings, once there is one."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for call in page.request.get(f"{site}/api/calls/?state=ended").json()["results"]:
            tracks = page.request.get(f"{site}/api/calls/{call['id']}/recordings/").json()
            if tracks["count"]:
                return int(call["id"])
        time.sleep(1)
    raise AssertionError(f"no call of the demo ended with a recording within {within:.0f} s")


def test_make_demo_shows_its_call_to_the_login_it_prints(tmp_path: Path) -> None:
    chromium = chromium_path()
    require(chromium is not None, "Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    secret_file = tmp_path / "demo-acs-secret"
    # A newcomer's shell: nothing of the test suite's configuration, only a port and a
    # database of the test's own (the demo's defaults otherwise: SQLite, in-memory layer,
    # the offline recognizer).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CALLSITE_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        CALLSITE_DEMO_PORT=str(port),
        CALLSITE_DEMO_SECRET_FILE=str(secret_file),
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        CALLSITE_RECORDINGS_DIR=str(tmp_path / "recordings"),
        PYTHONUNBUFFERED="1",
    )
    make = subprocess.Popen(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = DemoOutput(make)
    try:
        output.until("Press Ctrl-C to stop.", within=120)
        username, password = output.field("Username"), output.field("Password").split()[0]
        site = f"http://127.0.0.1:{port}"
        assert output.field("Call wall") == f"{site}/"
        assert output.field("History") == f"{site}/history/"
        assert output.field("Agents").split()[0] == f"{site}/agents/"
        assert output.field("Recordings").startswith("on, in ")
        secret = secret_file.read_text().strip()
        assert len(secret) >= 16
        assert secret_file.stat().st_mode & 0o077 == 0, "only its owner may read the secret"

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(f"{site}/accounts/login/?next=/")
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            page.click("#login-submit")
            # The demo call is on the wall; its page shows what is said in it.
            link = page.locator("#wall-rows tr[data-state='connected'] a").first
            expect(link).to_be_visible(timeout=30_000)
            # Its agent is named from the directory the demo fills in.
            expect(page.locator("#wall-rows tr[data-state='connected']").first).to_contain_text(
                "Dana Whitfield"
            )
            link.click()
            expect(page.locator("#call")).to_be_visible()
            finals = page.locator(".caption.final .text")
            expect(finals.first).to_be_visible(timeout=60_000)
            reference = _reference_words()
            deadline = time.monotonic() + 60
            heard: set[str] = set()
            while time.monotonic() < deadline and len(heard) < 4:
                text = " ".join(finals.all_inner_texts()).lower()
                heard = set(re.findall(r"[a-z']+", text)) & reference
                time.sleep(0.5)
            assert len(heard) >= 4, f"captions do not read like the demo call: {heard}"
            expect(page.locator("#chart-talk-time .main-svg").first).to_be_attached()
            page.screenshot(path=str(SCREENSHOTS / "demo-call.png"), full_page=True)

            # History lists it; the alert rules the README points at open.
            call_id = page.locator("#call").get_attribute("data-call-id")
            page.goto(f"{site}/history/")
            expect(page.locator(f"#history tr[data-call-id='{call_id}']")).to_be_visible()
            # The agents page the banner names follows the demo's agent, by name, in a call.
            page.goto(output.field("Agents").split()[0])
            dana = page.locator("#agents-rows tr", has_text="Dana Whitfield")
            expect(dana.locator('[data-cell="call"] a')).to_have_attribute(
                "href", re.compile(r"^/calls/\d+/$"), timeout=60_000
            )
            assert dana.get_attribute("data-state") != "idle"
            rules = page.goto(output.field("Alert rules"))
            assert rules is not None
            assert rules.status == 200
            expect(page.locator("#result_list")).to_contain_text("Dead air over 5 s")

            # The banner's command streams another call into the running demo, with the
            # secret read from its file: a fresh shell has no secret in its environment.
            another = shlex.split(output.field("Another call"))
            assert secret not in another
            streamed = subprocess.run(
                [*another, "--speed", "10"],
                cwd=ROOT,
                env={k: v for k, v in env.items() if k != "CALLSITE_DEMO_SECRET_FILE"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert streamed.returncode == 0, streamed.stdout + streamed.stderr
            calls = page.request.get(f"{site}/api/calls/").json()
            assert calls["count"] >= 2
            # The demo call, once it has ended, is played on its page: the mix, or either
            # side (the other call was ACS transcription only: no audio to record).
            recorded = _recorded_call(page, site, within=120)
            page.goto(f"{site}/calls/{recorded}/")
            expect(page.locator("#player")).to_be_visible()
            expect(page.locator("#player-track option")).to_have_count(3)
            page.wait_for_function(
                "() => document.getElementById('player').readyState >= 1", timeout=15_000
            )
            assert page.evaluate("() => document.getElementById('player').duration") > 1
            browser.close()

        # No process of the demo carries the secret on its command line.
        # The Python process itself, not the shell make runs it from.
        demo = next(
            pid
            for pid in _descendants(make.pid)
            if _command_line(pid).split()[1:3] == ["manage.py", "demo"]
            and "python" in _command_line(pid).split()[0]
        )
        family = _descendants(demo)
        assert len(family) >= 2  # the server and the simulator, at least
        for pid in family | {demo}:
            assert secret not in _command_line(pid), _command_line(pid)

        # SIGTERM stops the demo and everything it started, as Ctrl-C does.
        os.kill(demo, signal.SIGTERM)
        make.wait(timeout=30)
        output.until("Stopping...", within=5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in family):
            time.sleep(0.2)
        assert not [pid for pid in family if _alive(pid)], "processes outlived the demo"
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
