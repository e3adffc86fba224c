"""Listening in, through the real ACS socket and the real listen socket: a supervisor granted
``listen_call`` hears a live call's audio, each participant's as sent, a tenth of a second at
a time; nobody else may open the socket; paused for payment, nothing is sent."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User

from streaming.models import Call
from tests.factories import team_supervisor
from tests.helpers import acs_socket, audio_data, audio_metadata, page_socket

pytestmark = pytest.mark.django_db(transaction=True)

CALL = "listened-call"
AGENT = "8:acs:agent-listened-to"
FRAME_TICKS = 200_000


def _frame(index: int) -> bytes:
    """A 20 ms frame that says which it is: every sample is its index."""
    return np.full(320, index, dtype="<i2").tobytes()


@database_sync_to_async
def _supervisor(name: str, *, listens: bool, line: str = AGENT) -> User:
    user = team_supervisor(name, line)
    if listens:
        user.user_permissions.add(Permission.objects.get(codename="listen_call"))
    return User.objects.get(pk=user.pk)  # no cached permissions


def _parse(message: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack("<H", message[:2])
    return json.loads(message[2 : 2 + length]), message[2 + length :]


async def _live_call(ws: Any) -> Call:
    assert (await ws.connect())[0]
    await ws.send_to(text_data=audio_metadata(16000))
    for index in range(5):
        await ws.send_to(text_data=audio_data(_frame(index), index=index, speaker=AGENT))
    return await _until_call()


async def _until_call() -> Call:
    for _ in range(100):
        call = await Call.objects.filter(connection_id=CALL).afirst()
        if call is not None:
            return call
        await asyncio.sleep(0.02)
    raise AssertionError("no call")


async def _audio(listener: Any, within: float = 1.0) -> tuple[dict[str, Any], bytes]:
    while True:
        message = await listener.receive_output(timeout=within)
        if message.get("bytes"):
            return _parse(message["bytes"])


async def test_a_supervisor_who_may_listen_hears_the_audio_as_sent() -> None:
    ws = acs_socket(CALL)
    call = await _live_call(ws)
    user = await _supervisor("lena", listens=True)
    listener = await page_socket(user, f"/ws/dashboard/calls/{call.pk}/listen/")
    assert (await listener.connect())[0]
    started = await listener.receive_json_from()
    assert started == {"type": "listen.started", "call_id": call.pk}
    await asyncio.sleep(0.1)  # the media socket has been asked for its audio

    async def stream() -> None:
        for index in range(5, 55):
            await ws.send_to(text_data=audio_data(_frame(index), index=index, speaker=AGENT))
            await asyncio.sleep(0.02)

    sender = asyncio.create_task(stream())
    header, pcm = await _audio(listener)  # within a second of the audio
    assert header["track"] == AGENT
    assert header["rate"] == 16000
    first = header["at_ticks"] // FRAME_TICKS
    assert first >= 5
    samples = np.frombuffer(pcm, dtype="<i2")
    assert len(samples) == 5 * 320  # a tenth of a second
    assert np.array_equal(samples, np.repeat(np.arange(first, first + 5), 320))
    following, more = await _audio(listener)
    assert following["at_ticks"] == header["at_ticks"] + 5 * FRAME_TICKS
    assert np.frombuffer(more, dtype="<i2")[0] == first + 5
    await sender
    await listener.disconnect()
    await ws.disconnect()


async def test_nobody_else_may_listen() -> None:
    ws = acs_socket(CALL)
    call = await _live_call(ws)
    for user in (
        await _supervisor("nolan", listens=False),  # sees the call, not granted listening
        await _supervisor("otto", listens=True, line="8:acs:another-team"),  # another team's
    ):
        listener = await page_socket(user, f"/ws/dashboard/calls/{call.pk}/listen/")
        connected, _ = await listener.connect()
        assert not connected, user
    await ws.disconnect()


async def test_a_call_paused_for_payment_is_not_heard() -> None:
    from streaming.automation.secure_pause import secure_pause_set

    ws = acs_socket(CALL)
    call = await _live_call(ws)
    user = await _supervisor("paul", listens=True)
    listener = await page_socket(user, f"/ws/dashboard/calls/{call.pk}/listen/")
    assert (await listener.connect())[0]
    await listener.receive_json_from()
    await database_sync_to_async(secure_pause_set)(call_id=call.pk, paused=True, user=user)
    await asyncio.sleep(0.2)  # the media socket has been told
    for index in range(5, 30):
        await ws.send_to(text_data=audio_data(_frame(index), index=index, speaker=AGENT))
    assert await listener.receive_nothing(timeout=0.5)
    await database_sync_to_async(secure_pause_set)(call_id=call.pk, paused=False, user=user)
    await asyncio.sleep(0.2)
    for index in range(30, 40):
        await ws.send_to(text_data=audio_data(_frame(index), index=index, speaker=AGENT))
    header, _ = await _audio(listener)
    assert header["at_ticks"] >= 30 * FRAME_TICKS
    await listener.disconnect()
    await ws.disconnect()
