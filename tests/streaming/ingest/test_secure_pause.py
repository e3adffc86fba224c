"""Pause for payment ("secure pause") through the real entry points: a supervisor pauses a
call from its page (or its API, with a JSON answer), and from the next frame on the call's
audio is neither recorded nor recognized, ACS's own transcription is not kept, and the page
says so; resuming takes the call up again, and the pause is on the call's timeline."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from streaming.models import Call, CallEvent, CallState, ControlAction, Recording, Utterance
from streaming.recording import codec, store
from streaming.units import TICKS_PER_SECOND
from tests.factories import team_supervisor, user_in
from tests.helpers import (
    acs_socket,
    audio_data,
    audio_metadata,
    page_socket,
    tone_frame,
    transcription_data,
    transcription_metadata,
    wait_for_event,
)

pytestmark = pytest.mark.django_db(transaction=True)

CALL = "paid-call"
AGENT = "8:acs:agent-taking-payment"
RATE = 16000


@pytest.fixture
def recording_on(settings: Any) -> None:
    settings.CALLSITE_RECORDING = "on"
    settings.CALLSITE_RECORDING_CHUNK_SECONDS = 1


async def _supervisor(name: str = "paula") -> tuple[Any, AsyncClient]:
    user = await database_sync_to_async(team_supervisor)(name, AGENT)
    client = AsyncClient()
    await client.aforce_login(user)
    return user, client


async def _post(client: AsyncClient, call: Call, paused: str, *, json: bool = True) -> Any:
    headers = {"accept": "application/json"} if json else {}
    return await client.post(f"/calls/{call.pk}/secure-pause/", {"paused": paused}, headers=headers)


async def _frames(ws: Any, first: int, count: int) -> None:
    for index in range(first, first + count):
        await ws.send_to(text_data=audio_data(tone_frame(), index=index, speaker=AGENT))


async def _until(check: Any, what: str, within: float = 5) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while not (found := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never {what}")
        await asyncio.sleep(0.02)
    return found


async def _streaming_call() -> tuple[Any, Call]:
    """A call whose audio is streaming (a tenth of a second of it so far)."""
    ws = acs_socket(CALL)
    assert (await ws.connect())[0]
    await ws.send_to(text_data=audio_metadata(RATE))
    await _frames(ws, 0, 5)
    call = await _until(lambda: Call.objects.filter(connection_id=CALL).afirst(), "a call")
    return ws, call


async def _pause_event(kind: str) -> CallEvent | None:
    return await CallEvent.objects.filter(type=kind).order_by("pk").alast()


async def test_a_paused_call_is_neither_recorded_nor_recognized(recording_on: None) -> None:
    ws = acs_socket(CALL)
    assert (await ws.connect())[0]
    await ws.send_to(text_data=audio_metadata(RATE))
    await ws.send_to(text_data=transcription_metadata(CALL))
    await _frames(ws, 0, 50)  # a second of speech
    call = await _until(lambda: Call.objects.filter(connection_id=CALL).afirst(), "a call")
    user, client = await _supervisor()
    page = await page_socket(user, f"/ws/dashboard/calls/{call.pk}/")
    assert (await page.connect())[0]

    paused = await _post(client, call, "on")
    assert paused.status_code == 200, paused.content
    assert paused.json()["secure_pause"] is True
    shown = await wait_for_event(
        page, lambda m: m["type"] == "call.updated" and m["call"]["secure_pause_since"]
    )
    assert shown["call"]["id"] == call.pk
    started = await _until(lambda: _pause_event("secure_pause.started"), "paused in the stream")
    paused_at = started.data["at_ticks"]
    await _frames(ws, 50, 50)  # the card number, read out
    await ws.send_to(
        text_data=transcription_data("my card is 4111 1111 1111 1111", offset=15_000_000)
    )
    resumed = await _post(client, call, "off")
    assert resumed.json()["secure_pause"] is False
    # The page is told where the pause was, for the call's timeline.
    closed = await wait_for_event(
        page,
        lambda m: (
            m["type"] == "call.updated"
            and m["call"]["secure_pause_periods"]
            and m["call"]["secure_pause_periods"][-1][1] is not None
        ),
    )
    [[pause_start, pause_end]] = closed["call"]["secure_pause_periods"]
    assert pause_start == shown["call"]["secure_pause_since"]
    assert datetime.fromisoformat(pause_start) < datetime.fromisoformat(pause_end)
    ended = await _until(lambda: _pause_event("secure_pause.ended"), "resumed in the stream")
    resumed_at = ended.data["at_ticks"]
    await _frames(ws, 100, 50)
    await ws.disconnect()
    await page.disconnect()

    # It took effect at a frame boundary, between the frames sent before and after.
    frame = TICKS_PER_SECOND // 50
    assert paused_at == 50 * frame
    assert resumed_at == 100 * frame
    recording = await Recording.objects.aget(call=call, track=AGENT)
    samples = await database_sync_to_async(
        lambda: codec.decode(store.storage().open(str(recording.file.name), "rb").read())[0]
    )()
    tone = np.frombuffer(tone_frame(), dtype="<i2")
    first, last = codec.to_samples(paused_at, RATE), codec.to_samples(resumed_at, RATE)
    assert np.array_equal(samples[:first], np.tile(tone, 50))
    assert not samples[first:last].any(), "audio recorded while paused"
    assert np.array_equal(samples[last:], np.tile(tone, 50))
    # Nothing said while paused was recognized or kept: no utterance overlaps the pause.
    stored = [u async for u in Utterance.objects.filter(call=call)]
    assert stored, "the speech around the pause was recognized"
    for u in stored:
        assert "4111" not in u.text
        assert u.offset_ticks is not None
        assert u.duration_ticks is not None
        end = u.offset_ticks + u.duration_ticks
        assert end <= paused_at or u.offset_ticks >= resumed_at, (u.text, u.offset_ticks, end)
    # Who paused and resumed, in the call's audit.
    audit = [(a.action, a.username) async for a in ControlAction.objects.order_by("pk")]
    assert audit == [("secure-pause", "paula"), ("secure-resume", "paula")]


async def test_only_those_who_see_the_call_may_pause_it() -> None:
    ws, call = await _streaming_call()
    _, allowed = await _supervisor("oscar")
    other_team = AsyncClient()
    await other_team.aforce_login(
        await database_sync_to_async(team_supervisor)("olga", "8:acs:another-line")
    )
    refused = await _post(other_team, call, "on")
    assert refused.status_code == 404
    clerk = AsyncClient()
    await clerk.aforce_login(await database_sync_to_async(user_in)("clerk"))
    assert (await _post(clerk, call, "on", json=False)).status_code == 403
    bad = await _post(allowed, call, "maybe")
    assert bad.status_code == 400
    assert "on or off" in bad.json()["error"]
    assert not await ControlAction.objects.aexists()
    await ws.disconnect()
    await _until(lambda: Call.objects.filter(pk=call.pk, state=CallState.ENDED).aexists(), "ended")
    late = await _post(allowed, call, "on")
    assert late.status_code == 409
    assert late.json()["error"] == "this call has ended"


async def test_every_pause_is_kept_for_the_timeline() -> None:
    ws, call = await _streaming_call()
    _, client = await _supervisor()
    for paused in ("on", "on", "off", "off", "on"):  # asking twice changes nothing
        assert (await _post(client, call, paused)).status_code == 200
    stored = await Call.objects.aget(pk=call.pk)
    first, second = stored.secure_pause_periods
    assert first[1] is not None, stored.secure_pause_periods
    assert second[1] is None, stored.secure_pause_periods
    starts = [datetime.fromisoformat(p[0]) for p in (first, second)]
    assert starts[0] < datetime.fromisoformat(first[1]) <= starts[1]
    assert stored.secure_pause_since == starts[1]
    assert [a.action async for a in ControlAction.objects.order_by("pk")] == [
        "secure-pause",
        "secure-resume",
        "secure-pause",
    ]
    await ws.disconnect()
