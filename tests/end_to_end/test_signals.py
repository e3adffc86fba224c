"""The simulator plays every signal to a real Daphne process: holds and mutes as Call
Automation callbacks, DTMF tones and ACS sentiment on the socket."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.conf import settings

from simulator import Script, Speaker, Turn, stream_call
from simulator.scripts import Signal
from streaming.models import Alert, AlertRule, Call, CallAnalytics, CallEvent, Participant
from tests.conftest import DaphneServer

pytestmark = pytest.mark.live_server

AGENT = "8:acs:resource_agent-9"
CUSTOMER = "4:+15555550177"

HELD = Script(
    title="A 20 s hold",
    locale="en-US",
    speakers=(Speaker("agent", AGENT), Speaker("customer", CUSTOMER)),
    turns=(
        Turn(
            "customer",
            "My card was charged twice and I am really annoyed.",
            0.3,
            0.9,
            190,
            "negative",
            "en-US",
        ),
        Turn("agent", "Let me look into it, one moment please.", 0.4, 0.9, 190),
        Turn("agent", "Thanks for holding, the refund is on its way.", 0.5, 0.9, 190),
        Turn("customer", "Wonderful, thank you so much!", 0.4, 0.9, 190, "positive"),
    ),
    signals=(
        Signal("dtmf", CUSTOMER, before=2, tones="4242"),
        Signal("hold", CUSTOMER, before=3, seconds=20.0),
    ),
)


def test_a_scripted_20_s_hold_is_a_hold_not_dead_air(daphne_server: DaphneServer) -> None:
    """Played in real time: the hold raises the hold alert and no dead-air alert, its time is
    exact to the millisecond, the tones are stored masked and the sentiment is ACS's."""
    AlertRule.objects.create(name="Dead air over 5 s", kind="dead_air", seconds=5)
    AlertRule.objects.create(name="On hold over 15 s", kind="hold", seconds=15)
    asyncio.run(
        stream_call(
            f"{daphne_server.ws_url}/ws/acs/",
            call_connection_id="sim-hold",
            script=HELD,
            token=settings.CALLSITE_ACS_SHARED_SECRET,
            speed=1,
        )
    )
    call = Call.objects.get(connection_id="sim-hold")
    deadline = time.monotonic() + 10
    while not CallAnalytics.objects.filter(call=call, final=True).exists():
        assert time.monotonic() < deadline, "the final figures were never stored"
        time.sleep(0.1)
    customer = Participant.objects.get(call=call, raw_id=CUSTOMER)
    assert customer.hold_ms == 20_000
    assert customer.longest_hold_ms == 20_000
    assert customer.held_since is None
    kinds = sorted(Alert.objects.filter(call=call).values_list("kind", flat=True))
    assert kinds == ["hold"], (
        list(Alert.objects.filter(call=call).values_list("message", "at_ms", "episode")),
        customer.hold_periods,
        call.audio_origin,
        call.started_at,
        list(call.utterances.values_list("offset_ticks", "duration_ticks")),
    )
    figures = CallAnalytics.objects.get(call=call)
    assert figures.hold_ms == pytest.approx(20_000, abs=1_000)
    assert figures.longest_silence_ms < 5_000
    tones = CallEvent.objects.filter(call=call, type="DtmfData")
    assert [t.data["tone"] for t in tones] == ["•"] * 4
    felt = list(
        call.utterances.order_by("offset_ticks").values_list("sentiment", "sentiment_source")
    )
    assert felt[0] == ("negative", "acs")
    assert felt[-1] == ("positive", "acs")
    assert felt[1][1] == "lexicon"  # no ACS sentiment on that turn: the offline scorer's
