"""Teams: which supervisors see which calls; the agent directory: who is behind a raw id."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from streaming.acs.identities import address_raw_id


def canonical_address(value: str) -> tuple[str, str]:
    """(raw id, phone number) for an ACS identity or a phone number as people type them.

    ``+1 555 123-0000`` and ``4:+15551230000`` are the same phone line; an ACS user, Teams
    user or bot is matched by its raw id (``8:acs:...``) as is.
    """
    try:
        return address_raw_id(value)
    except ValueError as error:
        raise ValidationError(str(error)) from error


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


class Address(models.Model):
    """An address as typed (a number in any spelling, or a raw id) and its canonical forms,
    kept in step on every save so lookups match what ACS sends."""

    address = models.CharField(
        max_length=300, help_text="A phone number (+15551230000) or an ACS raw id (8:acs:...)"
    )
    raw_id: models.CharField[str, str]
    number = models.CharField(max_length=40, editable=False, blank=True, db_index=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.address

    def save(self, *args: object, **kwargs: object) -> None:
        self.raw_id, self.number = canonical_address(self.address)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        self.raw_id, self.number = canonical_address(self.address)


class TeamAddress(Address):
    """An ACS identity or phone number: calls with it as a participant, caller or callee."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="addresses")
    raw_id = models.CharField(max_length=300, editable=False, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "raw_id"], name="teamaddress_once_per_team")
        ]
        verbose_name_plural = "team addresses"


class SupervisorProfile(models.Model):
    """A supervisor's own phone number and ACS identity, for "join this call"."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="callsite_profile"
    )
    phone_number = models.CharField(
        max_length=40, blank=True, help_text="A phone number Callsite can dial (+15551230000)"
    )
    acs_id = models.CharField(
        "ACS identity",
        max_length=300,
        blank=True,
        help_text="The supervisor's ACS user raw id (8:acs:...), preferred over the number",
    )

    def __str__(self) -> str:
        return f"profile of {self.user}"

    def clean(self) -> None:
        if self.phone_number:
            number = canonical_address(self.phone_number)[1]
            if not number:
                raise ValidationError({"phone_number": "Give a phone number (+E.164)."})
            self.phone_number = number
        if self.acs_id and not canonical_address(self.acs_id)[0].startswith("8:"):
            raise ValidationError({"acs_id": "Give an ACS user raw id (8:acs:...)."})

    @property
    def join_address(self) -> str:
        """The raw id to add for "join this call": the ACS identity, else the number."""
        if self.acs_id:
            return self.acs_id.strip()
        return f"4:{self.phone_number}" if self.phone_number else ""


class Agent(models.Model):
    """Someone who takes calls: their name labels them on every page, export and API
    response (``dashboard.agents``), in place of a label made from their raw id."""

    name = models.CharField(max_length=200, unique=True)
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="agents"
    )
    supervisor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="supervised_agents",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentAddress(Address):
    """One of an agent's ACS identities or phone numbers; each belongs to one agent."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="addresses")
    raw_id = models.CharField(max_length=300, editable=False, unique=True)

    class Meta:
        verbose_name_plural = "agent addresses"

    def clean(self) -> None:
        super().clean()
        taken = AgentAddress.objects.filter(raw_id=self.raw_id).exclude(pk=self.pk)
        if self.agent_id:
            taken = taken.exclude(agent_id=self.agent_id)
        owner = taken.select_related("agent").first()
        if owner is not None:
            raise ValidationError({"address": f"{self.address} belongs to {owner.agent.name}."})
