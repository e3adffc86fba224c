"""Alert delivery in one process: the outbox, signed webhooks against a real HTTP receiver,
retries with backoff, chat and e-mail, failures, and no secret in logs or records."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import override_settings

from streaming import services
from streaming.delivery.formats import signature_valid
from streaming.delivery.worker import deliver_due
from streaming.models import (
    AlertDelivery,
    AlertDestination,
    AlertRule,
    DeliveryAttempt,
    DeliveryState,
    idempotency_key,
)
from tests.factories import AGENT
from tests.standins.webhooks import WebhookReceiver

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-0123456789abcdef"
FAST = override_settings(CALLSITE_ALERT_RETRY_SECONDS=0.05, CALLSITE_ALERT_RETRY_MAX_SECONDS=0.2)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def _rule(**destination: Any) -> AlertRule:
    rule = AlertRule.objects.create(name="Escalation", kind="keyword", phrase="supervisor")
    AlertDestination.objects.create(rule=rule, **destination)
    return rule


def _fire(rule: AlertRule, call_id: int, episode: str = "r1|said|u1") -> Any:
    return services.alert_record(
        call_id=call_id,
        rule_id=rule.pk,
        kind="keyword",
        message="Escalation: “supervisor” said by Agent nt-1",
        at_ms=61_000,
        episode=episode,
        participant_raw_id=AGENT,
    )


def _call() -> int:
    call_id = services.call_stream_opened(connection_id="delivered-call")["id"]
    services.participant_ensure(call_id=call_id, raw_id=AGENT)
    return call_id


def _until_settled(timeout: float = 10) -> None:
    """Run delivery rounds until nothing is pending (retries wait for their backoff)."""
    deadline = time.monotonic() + timeout
    while AlertDelivery.objects.filter(state=DeliveryState.PENDING).exists():
        assert time.monotonic() < deadline, "deliveries still pending"
        if not deliver_due():
            time.sleep(0.02)


@FAST
def test_a_webhook_is_signed_retried_after_500s_and_accepted_once(
    receiver: WebhookReceiver, caplog: Any
) -> None:
    receiver.answers = [500, 503]
    rule = _rule(kind="webhook", url=receiver.url, secret=SECRET)
    call_id = _call()
    assert _fire(rule, call_id) is not None
    assert _fire(rule, call_id) is None  # the same episode again: a reconnect's replay
    assert AlertDelivery.objects.count() == 1

    with caplog.at_level(logging.DEBUG):
        _until_settled()

    got = receiver.all()
    assert [r.status for r in got] == [500, 503, 200]
    assert len(receiver.accepted()) == 1
    key = idempotency_key(call_id, "r1|said|u1")
    for n, request in enumerate(got, start=1):
        assert signature_valid(SECRET, request.body, request.headers["x-callsite-signature"])
        assert request.headers["x-callsite-signature"].startswith("sha256=")
        assert request.headers["idempotency-key"] == key
        assert request.headers["x-callsite-attempt"] == str(n)
        assert request.headers["content-type"].startswith("application/json")
    body = json.loads(got[-1].body)
    assert body["idempotency_key"] == key
    assert body["alert"]["call_id"] == call_id
    assert body["alert"]["rule"] == "Escalation"
    assert body["alert"]["speaker"] == AGENT
    assert body["alert"]["connection_id"] == "delivered-call"

    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("delivered", 3, "")
    tries = list(DeliveryAttempt.objects.values_list("number", "ok", "status_code", "error"))
    assert tries == [(1, False, 500, "HTTP 500"), (2, False, 503, "HTTP 503"), (3, True, 200, "")]
    assert SECRET not in caplog.text
    assert "/hooks/alerts" not in caplog.text  # a webhook URL can be a credential


@FAST
def test_a_tampered_body_fails_the_signature(receiver: WebhookReceiver) -> None:
    _fire(_rule(kind="webhook", url=receiver.url, secret=SECRET), _call())
    _until_settled()
    (request,) = receiver.all()
    assert not signature_valid(SECRET, request.body + b" ", request.headers["x-callsite-signature"])
    assert not signature_valid(
        "another-secret", request.body, request.headers["x-callsite-signature"]
    )


def test_backoff_doubles_up_to_the_cap() -> None:
    with override_settings(CALLSITE_ALERT_RETRY_SECONDS=5, CALLSITE_ALERT_RETRY_MAX_SECONDS=60):
        from streaming.services.delivery import retry_delay

        assert [retry_delay(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


@FAST
def test_a_delivery_is_given_up_after_the_last_attempt(receiver: WebhookReceiver) -> None:
    receiver.answers = [500] * 10
    with override_settings(CALLSITE_ALERT_DELIVERY_ATTEMPTS=3):
        _fire(_rule(kind="webhook", url=receiver.url, secret=SECRET), _call())
        _until_settled()
    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 500")
    assert len(receiver.all()) == 3


def test_a_refusal_is_not_retried(receiver: WebhookReceiver) -> None:
    receiver.answers = [401]
    _fire(_rule(kind="webhook", url=receiver.url, secret=SECRET), _call())
    _until_settled()
    assert AlertDelivery.objects.get().state == "failed"
    assert len(receiver.all()) == 1


@FAST
def test_an_unreachable_receiver_is_retried_and_the_error_names_no_url() -> None:
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/secret-path?token=abc"
    with override_settings(CALLSITE_ALERT_DELIVERY_ATTEMPTS=2):
        _fire(_rule(kind="webhook", url=url, secret=SECRET), _call())
        _until_settled()
    errors = list(DeliveryAttempt.objects.values_list("error", flat=True))
    assert len(errors) == 2
    for error in errors:
        assert "refused" in error.lower()
        assert "secret-path" not in error
        assert "token" not in error


def test_a_chat_webhook_gets_a_slack_and_teams_message(receiver: WebhookReceiver) -> None:
    with override_settings(CALLSITE_PUBLIC_URL="https://callsite.example.com"):
        call_id = _call()
        _fire(_rule(kind="chat", url=receiver.url), call_id)
        _until_settled()
    (request,) = receiver.all()
    body = json.loads(request.body)
    assert "Escalation" in body["text"]
    assert "supervisor" in body["text"]
    assert f"https://callsite.example.com/calls/{call_id}/" in body["text"]
    assert body["blocks"][0]["type"] == "header"
    assert body["@type"] == "MessageCard"
    assert body["title"] == "Callsite alert: Escalation"
    assert "x-callsite-signature" not in request.headers  # no secret, no signature


def test_an_email_arrives_through_the_mail_backend() -> None:
    rule = _rule(kind="email", recipients="oncall@example.com, lead@example.com")
    call_id = _call()
    _fire(rule, call_id)
    out = io_text()
    call_command("deliver_alerts", "--once", stdout=out)
    assert "1 deliveries tried" in out.getvalue()
    (message,) = mail.outbox
    assert message.to == ["oncall@example.com", "lead@example.com"]
    assert message.subject == "[Callsite] Escalation: call delivered-call"
    assert "Escalation: “supervisor” said by Agent nt-1" in message.body
    assert "At: 1:01 into the call" in message.body
    assert message.extra_headers["X-Callsite-Idempotency-Key"] == idempotency_key(
        call_id, "r1|said|u1"
    )
    assert AlertDelivery.objects.get().state == "delivered"
    call_command("deliver_alerts", "--once", stdout=io_text())
    assert len(mail.outbox) == 1  # delivered once


def test_disabled_destinations_and_rule_less_alerts_are_not_queued(
    receiver: WebhookReceiver,
) -> None:
    rule = _rule(kind="webhook", url=receiver.url, secret=SECRET, enabled=False)
    call_id = _call()
    _fire(rule, call_id)
    services.alert_record(
        call_id=call_id, rule_id=None, kind="dead_air", message="x", at_ms=0, episode="e"
    )
    assert not AlertDelivery.objects.exists()


def test_destinations_are_validated() -> None:
    from django.core.exceptions import ValidationError

    rule = AlertRule.objects.create(name="r", kind="keyword", phrase="x")
    bad = [
        AlertDestination(rule=rule, kind="webhook", url="ftp://example.com/", secret=SECRET),
        AlertDestination(rule=rule, kind="webhook", url="https://example.com/hook"),
        AlertDestination(rule=rule, kind="chat", url="not a url"),
        AlertDestination(rule=rule, kind="email", recipients=""),
        AlertDestination(rule=rule, kind="email", recipients="ok@example.com, nope"),
    ]
    for destination in bad:
        with pytest.raises(ValidationError):
            destination.full_clean()
    chat = AlertDestination(rule=rule, kind="chat", url="https://hooks.slack.com/services/T/B/X")
    chat.full_clean()
    assert str(chat) == "Chat webhook (Slack or Teams incoming webhook) to hooks.slack.com"


def io_text() -> Any:
    import io

    return io.StringIO()
