"""What supervisors asked Call Automation to do, and what came of it: the audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from streaming.models.calls import Call


class ActionStatus(models.TextChoices):
    """An action's outcome. Only forward: ``pending`` → ``accepted`` → a final one."""

    PENDING = "pending", "Sent"
    ACCEPTED = "accepted", "Accepted, outcome awaited"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused by ACS"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = frozenset(
    {ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.REFUSED, ActionStatus.CANCELLED}
)


class ControlAction(models.Model):
    """One supervisor action on a call: who asked, when, the request, and its outcome.

    ``operation_context`` is handed to ACS with the request and comes back on the outcome
    callbacks (``AddParticipantSucceeded``, ``PlayCompleted`` ...), which is how they find it.
    Rows are never deleted with their user: ``username`` keeps who it was.
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="actions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=40)
    label = models.CharField(max_length=120)
    target = models.CharField(
        max_length=300, blank=True, help_text="Raw id of the participant acted on, if any"
    )
    request = models.JSONField(default=dict, blank=True, help_text="What was asked of ACS")
    status = models.CharField(
        max_length=20, choices=ActionStatus.choices, default=ActionStatus.PENDING
    )
    outcome = models.TextField(blank=True, help_text="ACS's answer or the callback that settled it")
    result_code = models.IntegerField(null=True, blank=True)
    operation_context = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["call", "created_at", "pk"]
        indexes = [models.Index(fields=["call", "status"], name="controlaction_call_status")]

    def __str__(self) -> str:
        return f"{self.label} by {self.username or 'someone'} ({self.get_status_display()})"

    @property
    def settled(self) -> bool:
        return self.status in FINAL_STATUSES
