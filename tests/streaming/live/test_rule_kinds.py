"""The DTMF, phrase-window and talk-ratio rules, through the real ACS and dashboard sockets
(the decisions themselves are tested pure in test_alerts.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User

from simulator import wire
from streaming.models import Alert, AlertRule
from tests.helpers import (
    audio_data,
    audio_metadata,
    page_socket,
    quiet_frame,
    tone_frame,
    transcription_data,
    wait_for_event,
)
from tests.streaming.live.test_registry import AGENT, CUSTOMER, _open_call

pytestmark = pytest.mark.django_db(transaction=True)


def _fired(m: dict[str, Any]) -> bool:
    return m["type"] == "alert.fired"


async def _watch(user: User, call_id: int) -> Any:
    page = await page_socket(user, f"/ws/dashboard/calls/{call_id}/")
    assert (await page.connect())[0]
    return page


async def test_dtmf_tones_fire_once_per_participant(supervisor: User) -> None:
    await AlertRule.objects.acreate(name="Card typed", kind="dtmf", speaker_role="customer")
    acs, call_id = await _open_call("dtmf-call")
    page = await _watch(supervisor, call_id)
    for tone in "4111":
        await acs.send_to(text_data=wire.dtmf_data(tone, participant=CUSTOMER))
    alert = await wait_for_event(page, _fired)
    assert alert["alert"]["kind"] == "dtmf"
    assert alert["alert"]["speaker"] == CUSTOMER
    assert "entered DTMF tones" in alert["alert"]["message"]
    assert "4111" not in alert["alert"]["message"]
    await acs.disconnect()
    await page.disconnect()
    assert await Alert.objects.filter(call_id=call_id).acount() == 1


async def test_a_phrase_said_in_the_first_seconds_fires_and_a_later_one_does_not(
    supervisor: User,
) -> None:
    await AlertRule.objects.acreate(
        name="Greeting",
        kind="phrase_window",
        phrase="thank you for calling",
        window="first",
        expect="said",
        seconds=10,
        speaker_role="agent",
    )
    acs, call_id = await _open_call("greeting-call")
    page = await _watch(supervisor, call_id)
    await acs.send_to(
        text_data=transcription_data("Thank you for calling.", speaker=AGENT, offset=20_000_000)
    )
    alert = await wait_for_event(page, _fired)
    assert "in the first 10 s" in alert["alert"]["message"]
    assert alert["alert"]["at_ms"] == 2000
    await acs.send_to(  # again, after the window: no second alert
        text_data=transcription_data("Thank you for calling.", speaker=AGENT, offset=150_000_000)
    )
    await wait_for_event(
        page, lambda m: m["type"] == "caption.final" and m["caption"]["offset_ticks"] == 150_000_000
    )
    await acs.disconnect()
    await page.disconnect()
    assert await Alert.objects.filter(call_id=call_id).acount() == 1


async def test_a_phrase_not_said_in_the_first_seconds_fires_once_the_window_is_over(
    supervisor: User,
) -> None:
    await AlertRule.objects.acreate(
        name="No name given",
        kind="phrase_window",
        phrase="my name is",
        window="first",
        expect="missing",
        seconds=1,
        speaker_role="agent",
    )
    acs, call_id = await _open_call("nameless-call")
    page = await _watch(supervisor, call_id)
    await acs.send_to(text_data=transcription_data("Hello.", speaker=AGENT, offset=1_000_000))
    alert = await wait_for_event(page, _fired, within=15)
    assert (
        alert["alert"]["message"]
        == "No name given: “my name is” not said by the agent in the first 1 s"
    )
    await acs.disconnect()
    await page.disconnect()
    assert await Alert.objects.filter(call_id=call_id).acount() == 1


async def test_a_phrase_missing_from_the_last_seconds_fires_when_the_call_ends(
    supervisor: User,
) -> None:
    await AlertRule.objects.acreate(
        name="Closing",
        kind="phrase_window",
        phrase="anything else",
        window="last",
        expect="missing",
        seconds=30,
        speaker_role="agent",
    )
    await AlertRule.objects.acreate(
        name="No nice day",
        kind="phrase_window",
        phrase="have a nice day",
        window="last",
        expect="missing",
        seconds=30,
        speaker_role="agent",
    )
    await AlertRule.objects.acreate(
        name="Said goodbye",
        kind="phrase_window",
        phrase="goodbye",
        window="last",
        expect="said",
        seconds=30,
    )
    acs, call_id = await _open_call("closing-call")
    await acs.send_to(
        text_data=transcription_data("Is there anything else?", speaker=AGENT, offset=0)
    )
    await acs.send_to(
        text_data=transcription_data("No, goodbye.", speaker=CUSTOMER, offset=20_000_000)
    )
    page = await _watch(supervisor, call_id)
    await wait_for_event(page, lambda m: m["type"] == "snapshot" and len(m["captions"]) == 2)
    assert not await Alert.objects.filter(call_id=call_id).aexists()  # decided at the end
    await acs.disconnect()

    @database_sync_to_async
    def kinds() -> list[tuple[str, str]]:
        return list(Alert.objects.filter(call_id=call_id).values_list("rule__name", "message"))

    deadline = time.monotonic() + 10
    while len(found := await kinds()) < 2 and time.monotonic() < deadline:
        await page.receive_nothing(0.05)
    await page.disconnect()
    # The call is seconds long: "anything else" was in its last 30 s, so the closing rule
    # is satisfied; "have a nice day" was not, and "goodbye" was: both fire.
    assert sorted(found) == [
        ("No nice day", "No nice day: “have a nice day” not said by the agent in the last 30 s"),
        ("Said goodbye", "Said goodbye: “goodbye” said by +15551230000 in the last 30 s"),
    ]


async def test_a_talk_ratio_above_its_range_fires_once(supervisor: User) -> None:
    await AlertRule.objects.acreate(
        name="Agent talks too much", kind="talk_ratio", seconds=2, percent_max=60
    )
    acs, call_id = await _open_call("ratio-call")
    page = await _watch(supervisor, call_id)
    await acs.send_to(text_data=audio_metadata())
    for i in range(4 * 50):  # the agent talks for 4 s, the customer listens
        for speaker, loud in ((AGENT, True), (CUSTOMER, False)):
            pcm = tone_frame() if loud else quiet_frame()
            await acs.send_to(text_data=audio_data(pcm, index=i, speaker=speaker, silent=not loud))
    alert = await wait_for_event(page, _fired, within=15)
    assert alert["alert"]["kind"] == "talk_ratio"
    assert (
        alert["alert"]["message"]
        == "Agent talks too much: the agents' talk ratio is 100 %, above 60 %"
    )
    await acs.disconnect()
    await page.disconnect()
    assert await Alert.objects.filter(call_id=call_id).acount() == 1
