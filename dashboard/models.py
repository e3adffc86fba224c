"""Teams: which supervisors see which calls."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def canonical_address(value: str) -> tuple[str, str]:
    """(raw id, phone number) for an ACS identity or a phone number as people type them.

    ``+1 555 123-0000`` and ``4:+15551230000`` are the same phone line; an ACS user, Teams
    user or bot is matched by its raw id (``8:acs:...``) as is.
    """
    text = value.strip()
    if text.startswith("4:"):
        text = text[2:]
    if text.startswith("+"):
        digits = "".join(ch for ch in text[1:] if ch.isdigit())
        if not digits:
            raise ValidationError(f"{value!r} is not a phone number")
        number = f"+{digits}"
        return f"4:{number}", number
    if ":" not in text or " " in text:
        raise ValidationError(
            f"{value!r} is neither a phone number (+E.164) nor an ACS raw id (8:acs:...)"
        )
    return text, ""


class Team(models.Model):
    """Supervisors and the ACS identities or phone numbers whose calls they look after."""

    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="callsite_teams", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamAddress(models.Model):
    """An ACS identity or phone number: calls with it as a participant, caller or callee."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="addresses")
    address = models.CharField(
        max_length=300, help_text="A phone number (+15551230000) or an ACS raw id (8:acs:...)"
    )
    raw_id = models.CharField(max_length=300, editable=False, db_index=True)
    number = models.CharField(max_length=40, editable=False, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "raw_id"], name="teamaddress_once_per_team")
        ]
        verbose_name_plural = "team addresses"

    def __str__(self) -> str:
        return self.address

    def save(self, *args: object, **kwargs: object) -> None:
        self.raw_id, self.number = canonical_address(self.address)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        self.raw_id, self.number = canonical_address(self.address)
