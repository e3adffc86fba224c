"""Where an alert rule's alerts go beyond the browser, and the outbox that takes them there.

An ``AlertDestination`` belongs to a rule: a signed HTTP webhook, a chat webhook (Slack or
Teams), or e-mail. When an alert of the rule is stored, one ``AlertDelivery`` per enabled
destination is stored in the same transaction: the outbox. A delivery is unique per alert
and destination, and an alert is unique per episode, so each episode is delivered once to
each destination, however often its stream reconnects; a worker that restarts finds the
deliveries still pending in the database. Each try is an ``DeliveryAttempt``.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

from streaming.models.figures import Alert, AlertRule


class DestinationKind(models.TextChoices):
    WEBHOOK = "webhook", "HTTP webhook (JSON, signed with HMAC-SHA256)"
    CHAT = "chat", "Chat webhook (Slack or Teams incoming webhook)"
    EMAIL = "email", "E-mail"


class AlertDestination(models.Model):
    """One place a rule's alerts are sent to."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="destinations")
    kind = models.CharField(max_length=20, choices=DestinationKind.choices)
    enabled = models.BooleanField(default=True)
    url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Webhook and chat: where to POST (https://…). Chat webhook URLs are secrets.",
    )
    secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="Webhook (and optionally chat): the key of the X-Callsite-Signature HMAC",
    )
    recipients = models.CharField(
        max_length=1000, blank=True, help_text="E-mail: addresses, separated by commas"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["rule", "kind", "pk"]

    def __str__(self) -> str:
        # Never the URL's path or query, nor the secret: chat webhook URLs carry a token.
        if self.kind == DestinationKind.EMAIL:
            return f"{self.get_kind_display()} to {self.recipients}"
        return f"{self.get_kind_display()} to {self.host}"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def recipient_list(self) -> list[str]:
        return [a.strip() for a in self.recipients.split(",") if a.strip()]

    def clean(self) -> None:
        if self.kind in (DestinationKind.WEBHOOK, DestinationKind.CHAT):
            if urlsplit(self.url).scheme not in ("http", "https") or not self.host:
                raise ValidationError({"url": "A webhook needs an http:// or https:// URL."})
            if self.kind == DestinationKind.WEBHOOK and not self.secret:
                raise ValidationError({"secret": "A webhook needs a secret to sign with."})
        if self.kind == DestinationKind.EMAIL:
            addresses = self.recipient_list()
            if not addresses:
                raise ValidationError({"recipients": "E-mail needs at least one address."})
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError(
                        {"recipients": f"{address!r} is not an e-mail address."}
                    ) from None


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


def idempotency_key(call_id: int, episode: str) -> str:
    """The key a receiver can drop repeats by: the alert's call and episode, hashed (an
    episode may hold raw ids and other characters a header should not carry)."""
    digest = hashlib.sha256(f"{call_id}|{episode}".encode()).hexdigest()[:40]
    return f"callsite-alert-{call_id}-{digest}"


class AlertDelivery(models.Model):
    """One alert on its way to one destination: the outbox row."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(
        AlertDestination, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(
        max_length=20, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "destination"], name="delivery_once_per_destination"
            )
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"alert {self.alert_id} to destination {self.destination_id}: {self.state}"


class DeliveryAttempt(models.Model):
    """One try at a delivery: the answer's status, or the error."""

    delivery = models.ForeignKey(AlertDelivery, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number", "pk"]

    def __str__(self) -> str:
        return f"try {self.number}: {'ok' if self.ok else self.error or self.status_code}"
