"""A worker over capacity says so and sheds new streams, at a small scale.

A real worker is made to fall behind by stopping it (SIGSTOP) for 300 ms of every 330: its
event loop then runs late, as it does on a machine that does not give it its core. Or it is
kept busy by a call streaming flat out, as it is when it holds more calls than it can
carry. While it
is over capacity it refuses new ACS streams at the handshake with 503 and a reason, counts
and logs each refusal, and answers ``/readyz`` with 503 "over capacity"; the call it already
holds stays connected. Once the stalls stop it takes new streams again within seconds.
(``bench/overload.py`` measures the same at full scale, calls already held keeping their
frame lag.)
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.conftest import DaphneServer
from tests.helpers import audio_data, audio_metadata, quiet_frame
from tests.servers import Stalls

pytestmark = pytest.mark.live_server


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def _metric(server: DaphneServer, name: str) -> float:
    _, text = _get(f"{server.http_url}/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _open(server: DaphneServer, call: str) -> ClientConnection:
    secret = settings.CALLSITE_ACS_SHARED_SECRET
    return await connect(
        f"{server.ws_url}/ws/acs/?token={secret}&call={call}", proxy=None, open_timeout=20
    )


async def _until(
    check: Callable[[], bool], within: float, what: str, every: float = 0.1
) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {within:.0f} s")
        await asyncio.sleep(every)


def _over_capacity(server: DaphneServer) -> bool:
    status, body = _get(f"{server.http_url}/readyz")
    return status == 503 and "over capacity" in body


def test_a_worker_behind_refuses_new_streams_and_says_why(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    server = daphne_factory(CALLSITE_SHED_LOOP_LAG_MS="20")
    assert _metric(server, "callsite_over_capacity") == 0

    async def run() -> None:
        held = await _open(server, "held-call")
        await held.send(audio_metadata())
        for i in range(5):
            await held.send(audio_data(quiet_frame(), index=i, speaker="8:acs:held"))

        with Stalls(server.process.pid):
            await _until(lambda: _over_capacity(server), 20, "over capacity on /readyz")
            with pytest.raises(InvalidStatus) as refused:
                await (await _open(server, "one-too-many")).close()
            assert refused.value.response.status_code == 503
            assert "over capacity" in refused.value.response.reason_phrase

        # The stalls have stopped: the worker catches up and takes new streams again.
        await _until(lambda: _get(f"{server.http_url}/readyz")[0] == 200, 20, "ready again")
        after = await _open(server, "after-the-rush")
        await after.send(audio_metadata())
        await after.close()
        # The call it held was never dropped.
        await held.send(audio_data(quiet_frame(), index=5, speaker="8:acs:held"))
        await held.ping()
        await held.close()

    asyncio.run(run())
    assert _metric(server, "callsite_ingest_streams_shed_total") >= 1
    assert _metric(server, "callsite_event_loop_longest_stall_seconds") >= 0.1
    assert _metric(server, "callsite_over_capacity") == 0
    _, ready = _get(f"{server.http_url}/readyz")
    assert json.loads(ready)["checks"]["capacity"]["ok"] is True
    server.stop()
    log = server.output()
    assert "over capacity: its event loop runs" in log
    assert "refused (503): this worker is over capacity" in log
    assert "back under capacity" in log


def test_a_worker_kept_busy_refuses_new_streams_before_it_falls_behind(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    server = daphne_factory(CALLSITE_SHED_LOOP_LAG_MS="0", CALLSITE_SHED_LOOP_BUSY_PERCENT="30")

    async def run() -> None:
        held = await _open(server, "busy-call")
        await held.send(audio_metadata())
        stop = asyncio.Event()

        async def flat_out() -> None:
            # As fast as the socket takes them (thousands of frames a second, a hundred
            # calls' worth and more): a fixed rate would keep a fast machine's worker under
            # the limit. The socket's flow control keeps the worker from being buried.
            frame, index = quiet_frame(), 0
            while not stop.is_set():
                for _ in range(60):
                    await held.send(audio_data(frame, index=index, speaker="8:acs:busy"))
                    index += 1
                await asyncio.sleep(0)

        sender = asyncio.create_task(flat_out())
        try:
            # Asked twice a second: each question is work for the loop too.
            await _until(lambda: _over_capacity(server), 20, "over capacity", every=0.5)
            _, body = _get(f"{server.http_url}/readyz")
            assert "busy" in json.loads(body)["checks"]["capacity"]["error"]
            with pytest.raises(InvalidStatus) as refused:
                await (await _open(server, "one-too-many")).close()
            assert refused.value.response.status_code == 503
        finally:
            stop.set()
            await sender
        await held.ping()  # the worker has handled every frame sent
        await _until(lambda: _get(f"{server.http_url}/readyz")[0] == 200, 20, "ready", every=0.5)
        await (await _open(server, "after-the-rush")).close()
        await held.close()

    asyncio.run(run())
    assert _metric(server, "callsite_ingest_streams_shed_total") >= 1
    server.stop()
    log = server.output()
    assert "over capacity: its event loop is busy" in log
    assert "back under capacity" in log
