"""An alert reaches a webhook exactly once per episode, over real sockets and processes.

A call says a rule's phrase to a real server process; the rule's webhook (a real HTTP server
in the test) answers 500 while that server runs, so it is retried; ACS reconnects and
replays the stream; the server is killed (SIGKILL) and another one takes over, to which ACS
reconnects. The receiver then accepts one delivery, signed, with the episode's key, and the
outbox records it delivered: nothing is left to send again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings

from simulator import Script, Speaker, Turn, stream_call
from streaming.delivery.formats import signature_valid
from streaming.models import Alert, AlertDelivery, AlertDestination, AlertRule, idempotency_key
from tests.conftest import DaphneServer
from tests.standins.webhooks import WebhookReceiver

pytestmark = pytest.mark.live_server

SECRET = "whsec-end-to-end-0123456789"
AGENT = "8:acs:5f0c2a91-3d4e-4b6a-9c1f-7e2d8b3a6c40_0000002a-7d1e-4c2b-a0f3-9b8e6d5c4a31"
CUSTOMER = "4:+15555550123"
SCRIPT = Script(
    title="Escalation",
    locale="en-US",
    speakers=(Speaker("agent", AGENT), Speaker("customer", CUSTOMER)),
    turns=(
        Turn("agent", "Contoso, Dana speaking.", pause=0.2, wpm=200),
        Turn("customer", "I want to speak to a supervisor now.", pause=0.2, wpm=200),
        Turn("agent", "Of course, one moment.", pause=0.2, wpm=200),
    ),
)
SERVER_ENV = {
    "CALLSITE_ALERT_RETRY_SECONDS": "0.2",
    "CALLSITE_ALERT_RETRY_MAX_SECONDS": "0.4",
    "CALLSITE_ALERT_DELIVERY_TIMEOUT_SECONDS": "1",
    "CALLSITE_ALERT_DELIVERY_LEASE_SECONDS": "2",
    "CALLSITE_ALERT_DELIVERY_POLL_SECONDS": "0.1",
    "CALLSITE_ALERT_DELIVERY_ATTEMPTS": "1000",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def _stream(server: DaphneServer) -> None:
    asyncio.run(
        stream_call(
            f"{server.ws_url}/ws/acs/",
            call_connection_id="escalated-call",
            script=SCRIPT,
            token=settings.CALLSITE_ACS_SHARED_SECRET,
            speed=0,
            correlation_id="corr-escalated",
        )
    )


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_one_signed_delivery_per_episode_across_a_reconnect_and_a_worker_restart(
    daphne_factory: Callable[..., DaphneServer], receiver: WebhookReceiver
) -> None:
    rule = AlertRule.objects.create(
        name="Wants a supervisor", kind="keyword", phrase="speak to a supervisor"
    )
    AlertDestination.objects.create(rule=rule, kind="webhook", url=receiver.url, secret=SECRET)
    receiver.answers = [500] * 10_000  # down while the first server runs

    first = daphne_factory(**SERVER_ENV)
    _stream(first)
    _wait(lambda: len(receiver.all()) >= 2, "the first server to try and retry")
    _stream(first)  # ACS reconnects and replays the call
    assert Alert.objects.filter(rule=rule).count() == 1
    first.stop(kill=True)

    tried_by_first = len(receiver.all())
    receiver.answers = []  # the receiver is back
    second = daphne_factory(**SERVER_ENV)
    _stream(second)  # ACS reconnects to the other worker
    _wait(lambda: AlertDelivery.objects.filter(state="delivered").exists(), "the delivery")

    alert = Alert.objects.get(rule=rule)
    assert alert.call.connection_id == "escalated-call"
    key = idempotency_key(alert.call_id, alert.episode)
    every = receiver.all()
    assert len(every) > tried_by_first  # the second server delivered it
    assert [r.status for r in every[:tried_by_first]] == [500] * tried_by_first
    assert len(receiver.accepted()) == 1
    for request in every:
        assert request.headers["idempotency-key"] == key
        assert signature_valid(SECRET, request.body, request.headers["x-callsite-signature"])
        assert json.loads(request.body)["alert"]["id"] == alert.pk
    delivery = AlertDelivery.objects.get()
    assert delivery.state == "delivered"
    assert delivery.attempts >= len(every)  # a try the killed server had taken counts too
    assert delivery.tries.filter(ok=True).count() == 1
    assert SECRET not in first.output() + second.output()
    assert "/hooks/alerts" not in first.output() + second.output()
