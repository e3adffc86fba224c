"""Two Daphne workers behind nginx, sharing Redis and the test database.

ACS's socket lands on one worker and the supervisor's pages on the other: captions, chart
updates and the wall's health cross between them through Redis. Then the worker holding the
call is killed mid-call; ACS reconnects through nginx, which sends it to the surviving
worker, and replays what it had sent: every final is stored exactly once and the
supervisor's page, on the surviving worker, shows each once, in order.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from websockets.asyncio.client import ClientConnection, connect

from callsite.management.commands.nginx_config import render
from streaming.models import Call, Utterance
from tests.conftest import DaphneServer
from tests.factories import session_cookie
from tests.helpers import transcription_data, transcription_metadata
from tests.servers import Stalls, consecutive_free_ports, free_port
from tests.services import REDIS_TEST_URL, nginx_path, reachable, require

pytestmark = pytest.mark.live_server

CALL = "scale-out-call"
SECONDS = 10_000_000  # ticks


class Nginx:
    def __init__(self, process: subprocess.Popen[bytes], port: int, prefix: Path) -> None:
        self.process, self.port, self.prefix = process, port, prefix
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"


@pytest.fixture
def workers(daphne_factory: Callable[..., DaphneServer]) -> tuple[DaphneServer, DaphneServer]:
    require(reachable(REDIS_TEST_URL, 6379), f"Redis is not reachable at {REDIS_TEST_URL}")
    env = {
        "REDIS_URL": REDIS_TEST_URL,
        "CALLSITE_CHANNEL_PREFIX": f"test-scale-{uuid.uuid4().hex[:8]}",
        "CALLSITE_WORKERS": "2",
        "CALLSITE_SHED_LOOP_LAG_MS": "50",  # production's: behind nginx a 503 is retried
    }
    # As `manage.py serve` runs them: behind nginx, with its headers trusted.
    proxied = ("--proxy-headers",)
    return daphne_factory(options=proxied, **env), daphne_factory(options=proxied, **env)


@pytest.fixture
def nginx(workers: tuple[DaphneServer, DaphneServer], tmp_path: Path) -> Iterator[Nginx]:
    binary = nginx_path()
    require(binary is not None, "nginx is not installed (apt-get install nginx)")
    assert binary is not None
    port = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render(
            host="127.0.0.1",
            ports=[w.port for w in workers],
            listen=f"127.0.0.1:{port}",
            server_name="localhost",
            static_root=Path(settings.STATIC_ROOT),
            static_url=settings.STATIC_URL,
            standalone_prefix=prefix,
        )
    )
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = Nginx(process, port, prefix)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"nginx exited with {process.returncode}: {output}")
        try:
            _get(f"{server.http_url}/healthz")
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("nginx did not answer within 10 s")
            time.sleep(0.1)
    yield server
    process.terminate()
    process.wait(10)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def _page(url: str, cookie: str) -> ClientConnection:
    return await connect(
        url,
        additional_headers={"Cookie": cookie},
        origin="http://localhost",  # type: ignore[arg-type]
        proxy=None,
    )


async def _acs(url: str) -> ClientConnection:
    ws = await connect(
        f"{url}/ws/acs/?token={settings.CALLSITE_ACS_SHARED_SECRET}",
        additional_headers={"x-ms-call-connection-id": CALL},
        proxy=None,
    )
    await ws.send(transcription_metadata(CALL))
    return ws


def _final(n: int) -> str:
    speaker = "4:+15551230000" if n % 2 else "8:acs:agent-1"
    return transcription_data(
        f"final number {n}", offset=n * 2 * SECONDS, duration=SECONDS, speaker=speaker
    )


async def _until(
    ws: ClientConnection, want: Callable[[dict[str, Any]], bool], within: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the expected message never came")
        message = json.loads(await asyncio.wait_for(ws.recv(), left))
        if want(message):
            return message


def _stored_texts(call_id: int) -> list[str]:
    return list(
        Utterance.objects.filter(call_id=call_id).order_by("seq").values_list("text", flat=True)
    )


async def _scenario(
    a: DaphneServer, b: DaphneServer, front: Nginx, cookie: str
) -> tuple[int, list[str], list[int], int]:
    wall = await _page(f"{b.ws_url}/ws/dashboard/", cookie)
    await _until(wall, lambda m: m["type"] == "snapshot")
    acs = await _acs(a.ws_url)  # the call's socket on worker A
    for n in (1, 2, 3):
        await acs.send(_final(n))
    update = await _until(
        wall, lambda m: m["type"] == "call.updated" and m["call"]["connection_id"] == CALL
    )
    call_id = update["call"]["id"]
    # The wall on B hears A's health ticks for the call.
    await _until(
        wall,
        lambda m: m["type"] == "calls.health" and any(c["call_id"] == call_id for c in m["calls"]),
    )
    page = await _page(f"{b.ws_url}/ws/dashboard/calls/{call_id}/", cookie)
    snapshot = await _until(page, lambda m: m["type"] == "snapshot")
    shown = [c["text"] for c in snapshot["captions"]]
    seqs = [c["seq"] for c in snapshot["captions"]]
    while len(shown) < 3:  # finals stored after the snapshot arrive live
        m = await _until(page, lambda m: m["type"] == "caption.final")
        shown.append(m["caption"]["text"])
        seqs.append(m["caption"]["seq"])

    # An interim and a final sent to A appear on B's page; so does A's chart update.
    await acs.send(transcription_data("final numb", status="Intermediate", offset=8 * SECONDS))
    interim = await _until(page, lambda m: m["type"] == "caption.interim")
    assert interim["caption"]["text"] == "final numb"
    await acs.send(_final(4))
    analytics_seen = 0

    def final_or_chart(m: dict[str, Any]) -> bool:
        nonlocal analytics_seen
        if m["type"] == "analytics.updated":
            analytics_seen += 1
            assert m["charts"]["talk_time"]["data"], "a chart update without figures"
        return m["type"] == "caption.final"

    m = await _until(page, final_or_chart)
    shown.append(m["caption"]["text"])
    seqs.append(m["caption"]["seq"])
    await _until(page, lambda m: m["type"] == "analytics.updated")
    analytics_seen += 1

    # Worker A dies mid-call, with final 5 sent and maybe not stored.
    await acs.send(_final(5))
    a.process.send_signal(signal.SIGKILL)
    a.process.wait(10)
    await acs.close()
    # ACS reconnects through the proxy (A refuses: nginx picks B) and replays 4 and 5.
    again = await _acs(front.ws_url)
    for n in (4, 5, 6, 7):
        await again.send(_final(n))
    while len(shown) < 7:
        m = await _until(page, lambda m: m["type"] == "caption.final")
        shown.append(m["caption"]["text"])
        seqs.append(m["caption"]["seq"])
    await again.close()
    await page.close()
    await wall.close()
    return call_id, shown, seqs, analytics_seen


def test_two_workers_behind_nginx_share_calls_and_survive_a_worker_kill(
    workers: tuple[DaphneServer, DaphneServer], nginx: Nginx, supervisor: User
) -> None:
    a, b = workers
    # Both workers are ready (database and Redis), and nginx reaches them.
    for url in (a.http_url, b.http_url, nginx.http_url):
        status, body = _get(f"{url}/readyz")
        assert status == 200, body
        assert body["checks"]["channel_layer"]["ok"]
        assert body["checks"]["database"]["ok"]

    call_id, shown, seqs, charts = asyncio.run(_scenario(a, b, nginx, session_cookie(supervisor)))

    expected = [f"final number {n}" for n in range(1, 8)]
    assert _stored_texts(call_id) == expected  # each once, none lost, in order
    assert shown == expected  # the page on B: every final once, in order, across the kill
    assert seqs == list(range(seqs[0], seqs[0] + 7))
    assert charts >= 1
    assert Call.objects.get(pk=call_id).connection_id == CALL
    # With A dead, nginx still answers from B.
    for _ in range(3):
        status, body = _get(f"{nginx.http_url}/readyz")
        assert status == 200, body
    # nginx logged ACS's reconnect without the shared secret it carried as ?token=.
    access = (nginx.prefix / "access.log").read_text()
    assert "GET /ws/acs/ HTTP/1.1" in access
    assert settings.CALLSITE_ACS_SHARED_SECRET not in access


def test_readyz_names_a_database_it_cannot_reach(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    """A worker whose database is gone is alive (/healthz) but not ready (/readyz: 503)."""
    port = free_port()  # nothing listens there
    worker = daphne_factory(DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/nothing")
    assert _get(f"{worker.http_url}/healthz") == (200, {"status": "ok"})
    status, body = _get(f"{worker.http_url}/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["error"]


def test_readyz_names_a_channel_layer_it_cannot_reach(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    port = free_port()
    worker = daphne_factory(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    status, body = _get(f"{worker.http_url}/readyz")
    assert status == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["channel_layer"]["ok"] is False


def test_more_than_one_worker_needs_redis() -> None:
    """The system check refuses CALLSITE_WORKERS > 1 on the in-memory layer."""
    from django.core.checks import run_checks
    from django.test import override_settings

    memory = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CALLSITE_WORKERS=2, CHANNEL_LAYERS=memory):
        ids = {m.id for m in run_checks(tags=["callsite"])}
    assert "callsite.E020" in ids
    with override_settings(CALLSITE_WORKERS=1, CHANNEL_LAYERS=memory):
        assert "callsite.E020" not in {m.id for m in run_checks(tags=["callsite"])}
    redis = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}
    with override_settings(CALLSITE_WORKERS=2, CHANNEL_LAYERS=redis):
        assert "callsite.E020" not in {m.id for m in run_checks(tags=["callsite"])}


def test_nginx_config_command_writes_a_config_nginx_accepts(tmp_path: Path) -> None:
    binary = nginx_path()
    require(binary is not None, "nginx is not installed (apt-get install nginx)")
    assert binary is not None
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    from io import StringIO

    out = StringIO()
    call_command(
        "nginx_config", workers=3, port=9001, listen="127.0.0.1:8080", standalone=prefix, stdout=out
    )
    conf = prefix / "nginx.conf"
    conf.write_text(out.getvalue())
    for port in (9001, 9002, 9003):
        assert f"server 127.0.0.1:{port} " in out.getvalue()
    checked = subprocess.run(
        [binary, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


def _wait_healthy(url: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if _get(f"{url}/healthz")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {within:.0f} s")
        time.sleep(0.2)


def test_serve_runs_workers_restarts_a_dead_one_and_stops_on_sigterm(
    transactional_db: Any, tmp_path: Path
) -> None:
    """`manage.py serve --workers 2`: both answer; a killed worker comes back; SIGTERM ends all."""
    import os
    import sys

    from tests.conftest import ROOT, _database_url

    require(reachable(REDIS_TEST_URL, 6379), f"Redis is not reachable at {REDIS_TEST_URL}")
    first = consecutive_free_ports(2)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": REDIS_TEST_URL,
        "CALLSITE_CHANNEL_PREFIX": f"test-serve-{uuid.uuid4().hex[:8]}",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--workers", "2", "--port", str(first)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for port in (first, first + 1):
            _wait_healthy(f"http://127.0.0.1:{port}")
        output = log.read_text()
        assert "(2 in the deployment)" in output
        pids = [int(line.rsplit(" ", 1)[1]) for line in output.splitlines() if ": pid " in line]
        assert len(pids) == 2
        os.kill(pids[1], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "exited with code -9" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        _wait_healthy(f"http://127.0.0.1:{first + 1}")  # started again
        assert _get(f"http://127.0.0.1:{first + 1}/readyz")[0] == 200
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(40) == 0, log.read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    output = log.read_text()
    assert "Stopped." in output
    new_pid = [int(line.rsplit(" ", 1)[1]) for line in output.splitlines() if ": pid " in line][-1]
    for pid in (pids[0], new_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _login_attempt(base: str, username: str, password: str, forged: str) -> int:
    """One login through ``base`` with a forged ``X-Forwarded-For``: the status."""
    import http.cookiejar
    import re
    import urllib.error
    import urllib.parse

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    body = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/",
        data=body,
        headers={"X-Forwarded-For": forged, "Referer": f"{base}/accounts/login/"},
    )
    try:
        return int(opener.open(request, timeout=10).status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_behind_nginx_a_client_cannot_choose_its_own_address(
    nginx: Nginx, transactional_db: Any
) -> None:
    """nginx sets X-Forwarded-For to the address it sees: a client that forges a new address
    for every guess still meets the limit of guesses per address (10)."""
    User.objects.create_user("guessed", password="right-password-123")
    statuses = [
        _login_attempt(nginx.http_url, "guessed", "wrong-password-123", f"203.0.113.{n}")
        for n in range(12)
    ]
    assert statuses[:10] == [200] * 10  # the form again: wrong password
    assert statuses[10:] == [429, 429]  # one address, whatever the header said


def test_behind_nginx_a_worker_over_capacity_passes_new_calls_on(
    nginx: Nginx, workers: tuple[DaphneServer, DaphneServer]
) -> None:
    """One worker falls behind (stopped for 300 ms of every 330): it answers new ACS streams
    503 and nginx gives each to the other worker. Every call ACS opens is taken."""
    behind, keeping_up = workers
    secret = settings.CALLSITE_ACS_SHARED_SECRET

    async def calls(count: int) -> None:
        for n in range(count):
            url = f"{nginx.ws_url}/ws/acs/?token={secret}&call=rush-{n}"
            async with connect(url, proxy=None, open_timeout=20) as ws:
                await ws.send(transcription_metadata(f"rush-{n}"))

    with Stalls(behind.process.pid):
        deadline = time.monotonic() + 20
        while _get(f"{behind.http_url}/readyz")[0] != 503:
            assert time.monotonic() < deadline, "the stalled worker never said it was behind"
            time.sleep(0.1)
        asyncio.run(calls(6))
        shed = _metric(behind, "callsite_ingest_streams_shed_total")
    assert shed >= 1
    assert _metric(keeping_up, "callsite_ingest_sockets_total") >= 6 - _metric(
        behind, "callsite_ingest_sockets_total"
    )
    assert "refused (503)" in behind.output()


def _metric(server: DaphneServer, name: str) -> float:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
