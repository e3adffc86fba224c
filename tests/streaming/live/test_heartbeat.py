"""A worker killed mid-call (kill -9): its call is flagged stuck, then ended as lost, on another
worker; a stream that comes back in time continues the same call.

Two real Daphne workers share the test database (and Redis in the PostgreSQL pass). The call
streams to worker A; a supervisor watches the wall on worker B. Nothing of A runs after
SIGKILL, so everything the wall sees comes from B finding A's stopped heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from websockets.asyncio.client import ClientConnection, connect

from streaming.live.heartbeat import BEAT_SECONDS
from streaming.models import Call, CallState, Stream, Utterance
from tests.conftest import DaphneServer
from tests.factories import session_cookie
from tests.helpers import transcription_data, transcription_metadata

pytestmark = pytest.mark.live_server

STUCK, LOST = 3, 8
WORKER_ENV = {"CALLSITE_STUCK_SECONDS": str(STUCK), "CALLSITE_STREAM_LOST_SECONDS": str(LOST)}
# A heartbeat round every BEAT_SECONDS on each side, and a second for the message to travel.
SLACK = 2 * BEAT_SECONDS + 1


async def _wall(server: DaphneServer, cookie: str) -> ClientConnection:
    wall = await connect(
        f"{server.ws_url}/ws/dashboard/",
        additional_headers={"Cookie": cookie},
        origin="http://localhost",  # type: ignore[arg-type]
        proxy=None,
    )
    assert json.loads(await wall.recv())["type"] == "snapshot"
    return wall


async def _acs(server: DaphneServer, call: str) -> ClientConnection:
    ws = await connect(
        f"{server.ws_url}/ws/acs/?token={settings.CALLSITE_ACS_SHARED_SECRET}",
        additional_headers={"x-ms-call-connection-id": call},
        proxy=None,
    )
    await ws.send(transcription_metadata(call))
    return ws


async def _until(
    ws: ClientConnection, want: Callable[[dict[str, Any]], bool], within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the expected message never came within {within:.0f} s")
        message = json.loads(await asyncio.wait_for(ws.recv(), left))
        if want(message):
            return message


def _final(n: int) -> str:
    return transcription_data(
        f"final number {n}", offset=n * 20_000_000, duration=10_000_000, speaker="4:+15551230000"
    )


async def _stored(call: str, count: int, within: float = 10) -> int:
    deadline = time.monotonic() + within
    while True:
        found = await Utterance.objects.filter(call__connection_id=call).acount()
        if found >= count:
            return (await Call.objects.aget(connection_id=call)).pk
        assert time.monotonic() < deadline, f"{found} of {count} finals stored"
        await asyncio.sleep(0.05)


def _api_call(server: DaphneServer, cookie: str, call_id: int) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.http_url}/api/calls/{call_id}/", headers={"Cookie": cookie}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_a_killed_workers_call_is_stuck_then_lost_on_another_worker(
    daphne_factory: Callable[..., DaphneServer], supervisor: User
) -> None:
    a, b = daphne_factory(**WORKER_ENV), daphne_factory(**WORKER_ENV)
    cookie = session_cookie(supervisor)

    async def scenario() -> tuple[int, float, float, dict[str, Any]]:
        wall = await _wall(b, cookie)
        acs = await _acs(a, "killed-call")
        await acs.send(_final(1))
        call_id = await _stored("killed-call", 1)
        # Let A's heartbeat record the stream, then kill A: no disconnect() runs.
        await asyncio.sleep(BEAT_SECONDS + 0.5)
        a.process.kill()
        killed = time.monotonic()
        await _until(
            wall,
            lambda m: m["type"] == "calls.health"
            and any(row["call_id"] == call_id and row["stuck"] for row in m["calls"]),
            within=STUCK + SLACK + 2,
        )
        stuck_after = time.monotonic() - killed
        ended = await _until(
            wall,
            lambda m: m["type"] == "call.updated"
            and m["call"]["id"] == call_id
            and m["call"]["state"] == CallState.ENDED,
            within=LOST + SLACK + 2,
        )
        lost_after = time.monotonic() - killed
        await wall.close()
        return call_id, stuck_after, lost_after, ended["call"]

    call_id, stuck_after, lost_after, ended = asyncio.run(scenario())
    assert stuck_after <= STUCK + SLACK
    assert lost_after <= LOST + SLACK
    assert ended["end_reason"] == "stream_lost"
    detail = _api_call(b, cookie, call_id)
    assert (detail["state"], detail["end_reason"]) == ("ended", "stream_lost")
    call = Call.objects.get(pk=call_id)
    stream = Stream.objects.get(call=call)
    assert stream.lost
    assert stream.closed_at is not None
    # Ended when its last packet came, not when it was given up.
    assert call.ended_at is not None
    assert stream.last_packet_at is not None
    assert abs((call.ended_at - stream.last_packet_at).total_seconds()) < 0.01


def test_a_stream_that_comes_back_in_time_continues_the_same_call(
    daphne_factory: Callable[..., DaphneServer], supervisor: User
) -> None:
    a, b = daphne_factory(**WORKER_ENV), daphne_factory(**WORKER_ENV)
    cookie = session_cookie(supervisor)

    async def scenario() -> int:
        wall = await _wall(b, cookie)
        acs = await _acs(a, "returning-call")
        await acs.send(_final(1))
        call_id = await _stored("returning-call", 1)
        await asyncio.sleep(BEAT_SECONDS + 0.5)
        a.process.kill()
        await asyncio.sleep(STUCK)  # flagged stuck by now; ACS reconnects to the other worker
        again = await _acs(b, "returning-call")
        await again.send(_final(2))
        assert await _stored("returning-call", 2) == call_id
        # Past the point where the first stream would have been given up for lost.
        await asyncio.sleep(LOST + SLACK)
        await again.send(_final(3))
        await _stored("returning-call", 3)
        await again.close()
        await wall.close()
        return call_id

    call_id = asyncio.run(scenario())
    call = Call.objects.get(pk=call_id)
    assert call.end_reason in {"", "stream_closed"}  # never "stream_lost"
    assert Call.objects.filter(connection_id="returning-call").count() == 1
    texts = list(call.utterances.order_by("offset_ticks").values_list("text", flat=True))
    assert texts == ["final number 1", "final number 2", "final number 3"]
    first, _second = Stream.objects.filter(call=call).order_by("opened_at")
    assert not first.lost  # replaced by the stream that came back, not lost
    assert first.closed_at is not None
