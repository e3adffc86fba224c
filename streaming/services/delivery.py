"""The alert outbox: deliveries stored with their alert, taken by workers, each try recorded.

* :func:`deliveries_enqueue` runs inside the transaction that stores an alert: one pending
  delivery per enabled destination of its rule. The alert is stored once per episode, so
  its deliveries are too.
* :func:`deliveries_claim` takes the due ones (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
  several workers never take the same) and leases them: each is due again only after
  ``CALLSITE_ALERT_DELIVERY_LEASE_SECONDS``, so one whose worker died is tried again.
* :func:`delivery_record` stores a try: delivered, failed for good, or due again after a
  backoff that doubles from ``CALLSITE_ALERT_RETRY_SECONDS``.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from streaming.delivery.formats import AlertNotice
from streaming.delivery.sending import DeliveryJob, Outcome
from streaming.models import (
    Alert,
    AlertDelivery,
    AlertDestination,
    DeliveryAttempt,
    DeliveryState,
    idempotency_key,
)


def deliveries_enqueue(alert: Alert) -> int:
    """Store a pending delivery of ``alert`` to each enabled destination of its rule."""
    if alert.rule_id is None:
        return 0
    destinations = AlertDestination.objects.filter(rule_id=alert.rule_id, enabled=True)
    rows = [AlertDelivery(alert=alert, destination=d) for d in destinations]
    AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, capped."""
    first = settings.CALLSITE_ALERT_RETRY_SECONDS
    return float(min(first * 2 ** max(0, attempts - 1), settings.CALLSITE_ALERT_RETRY_MAX_SECONDS))


def _notice(alert: Alert) -> AlertNotice:
    base = settings.CALLSITE_PUBLIC_URL
    participant = alert.participant
    return AlertNotice(
        id=alert.pk,
        call_id=alert.call_id,
        connection_id=alert.call.connection_id or "",
        kind=alert.kind,
        rule=alert.rule.name if alert.rule is not None else "",
        message=alert.message,
        at_ms=alert.at_ms,
        episode=alert.episode,
        speaker=participant.raw_id if participant is not None else None,
        speaker_label=participant.display_label if participant is not None else None,
        fired_at=alert.fired_at.isoformat(),
        call_url=f"{base}/calls/{alert.call_id}/" if base else "",
    )


def deliveries_claim(*, limit: int = 20) -> list[DeliveryJob]:
    """Take up to ``limit`` due deliveries, oldest due first, and lease them to this worker."""
    now = timezone.now()
    lease = timedelta(seconds=settings.CALLSITE_ALERT_DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        due = list(
            AlertDelivery.objects.select_for_update(skip_locked=True)
            .filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return []
        AlertDelivery.objects.filter(pk__in=due).update(
            next_attempt_at=now + lease, attempts=F("attempts") + 1
        )
        rows = AlertDelivery.objects.filter(pk__in=due).select_related(
            "destination", "alert__call", "alert__rule", "alert__participant"
        )
        return [
            DeliveryJob(
                delivery_id=d.pk,
                attempt=d.attempts,
                kind=d.destination.kind,
                url=d.destination.url,
                secret=d.destination.secret,
                recipients=tuple(d.destination.recipient_list()),
                key=idempotency_key(d.alert.call_id, d.alert.episode),
                notice=_notice(d.alert),
            )
            for d in sorted(rows, key=lambda d: due.index(d.pk))
        ]


def delivery_record(*, job: DeliveryJob, outcome: Outcome) -> str:
    """Store one try's outcome; returns the delivery's state after it."""
    now = timezone.now()
    with transaction.atomic():
        delivery = AlertDelivery.objects.select_for_update().filter(pk=job.delivery_id).first()
        if delivery is None:  # its alert or destination was deleted meanwhile
            return DeliveryState.FAILED
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=job.attempt,
            at=now,
            ok=outcome.ok,
            status_code=outcome.status_code,
            error=outcome.error[:500],
            duration_ms=outcome.duration_ms,
        )
        if delivery.state != DeliveryState.PENDING:
            return str(delivery.state)  # another worker finished it after our lease ran out
        if outcome.ok:
            delivery.state = DeliveryState.DELIVERED
            delivery.delivered_at = now
            delivery.last_error = ""
        elif not outcome.retry or delivery.attempts >= settings.CALLSITE_ALERT_DELIVERY_ATTEMPTS:
            delivery.state = DeliveryState.FAILED
            delivery.last_error = outcome.error[:500]
        else:
            delivery.next_attempt_at = now + timedelta(seconds=retry_delay(delivery.attempts))
            delivery.last_error = outcome.error[:500]
        delivery.save(update_fields=["state", "delivered_at", "last_error", "next_attempt_at"])
        return str(delivery.state)
