"""Alert destinations are edited on their rule in the admin, the secret write-only; the
deliveries and each try are listed, and failed ones can be queued again."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from streaming import services
from streaming.models import AlertDelivery, AlertDestination, AlertRule, DeliveryAttempt

SECRET = "whsec-admin-0123456789abcdef"


def _admin(db: Any) -> Client:
    User.objects.create_superuser("root", password="root-password-123")
    client = Client()
    client.login(username="root", password="root-password-123")
    return client


def _form(rule: AlertRule, **destination: str) -> dict[str, str]:
    data = {
        "name": rule.name,
        "kind": rule.kind,
        "enabled": "on",
        "phrase": rule.phrase,
        "expect": rule.expect,
        "speaker_role": "",
        "destinations-TOTAL_FORMS": "1",
        "destinations-INITIAL_FORMS": "0",
        "destinations-MIN_NUM_FORMS": "0",
        "destinations-MAX_NUM_FORMS": "1000",
    }
    data.update({f"destinations-0-{k}": v for k, v in destination.items()})
    return data


def test_a_webhook_is_added_to_a_rule_and_its_secret_never_shown(db: Any) -> None:
    client = _admin(db)
    rule = AlertRule.objects.create(name="Escalation", kind="keyword", phrase="supervisor")
    url = f"/admin/streaming/alertrule/{rule.pk}/change/"
    data = _form(
        rule, kind="webhook", enabled="on", url="https://hooks.example.com/a", secret=SECRET
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    destination = AlertDestination.objects.get(rule=rule)
    assert (destination.kind, destination.secret) == ("webhook", SECRET)

    page = client.get(url).content.decode()
    assert "hooks.example.com" in page
    assert SECRET not in page

    # Saving again with the secret left empty keeps it.
    data = _form(rule, kind="webhook", enabled="on", url="https://hooks.example.com/b", secret="")
    data.update(
        {
            "destinations-INITIAL_FORMS": "1",
            "destinations-0-id": str(destination.pk),
            "destinations-0-rule": str(rule.pk),
        }
    )
    assert client.post(url, data).status_code == 302
    destination.refresh_from_db()
    assert (destination.url, destination.secret) == ("https://hooks.example.com/b", SECRET)


def test_a_webhook_without_a_secret_is_refused(db: Any) -> None:
    client = _admin(db)
    rule = AlertRule.objects.create(name="Escalation", kind="keyword", phrase="supervisor")
    data = _form(rule, kind="webhook", enabled="on", url="https://hooks.example.com/a")
    response = client.post(f"/admin/streaming/alertrule/{rule.pk}/change/", data)
    assert response.status_code == 200
    assert "A webhook needs a secret to sign with." in response.content.decode()
    assert not AlertDestination.objects.exists()


def test_deliveries_show_their_tries_and_failed_ones_are_queued_again(db: Any) -> None:
    client = _admin(db)
    rule = AlertRule.objects.create(name="Escalation", kind="keyword", phrase="supervisor")
    AlertDestination.objects.create(
        rule=rule, kind="webhook", url="https://hooks.example.com/a", secret=SECRET
    )
    call_id = services.call_stream_opened(connection_id="admin-call")["id"]
    services.alert_record(
        call_id=call_id, rule_id=rule.pk, kind="keyword", message="m", at_ms=0, episode="e"
    )
    delivery = AlertDelivery.objects.get()
    DeliveryAttempt.objects.create(delivery=delivery, number=1, status_code=500, error="HTTP 500")
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        state="failed", attempts=1, last_error="HTTP 500"
    )

    listing = client.get("/admin/streaming/alertdelivery/?state=failed").content.decode()
    assert "HTTP 500" in listing
    assert SECRET not in listing
    detail = client.get(f"/admin/streaming/alertdelivery/{delivery.pk}/change/").content.decode()
    assert "HTTP 500" in detail
    assert SECRET not in detail

    response = client.post(
        "/admin/streaming/alertdelivery/",
        {"action": "queue_again", "_selected_action": [str(delivery.pk)]},
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)
