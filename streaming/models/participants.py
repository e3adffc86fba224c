"""Who was heard on a call, and what they said."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from streaming.models.calls import Call, TranscriptSource


class ParticipantKind(models.TextChoices):
    PHONE = "phone", "Phone number"
    ACS_USER = "acs_user", "ACS user"
    TEAMS_USER = "teams_user", "Teams user"
    BOT = "bot", "Bot or Teams app"
    UNKNOWN = "unknown", "Unknown"


class ParticipantRole(models.TextChoices):
    AGENT = "agent", "Agent"
    CUSTOMER = "customer", "Customer"
    BOT = "bot", "Bot"
    UNKNOWN = "unknown", "Unknown"


class Invitation(models.TextChoices):
    """Where a participant Callsite added stands; "" for everyone else.

    Only forward: ``invited`` becomes one of the others, which are final.
    """

    NONE = "", "Not invited by Callsite"
    INVITED = "invited", "Invited"
    JOINED = "joined", "Joined"
    FAILED = "failed", "Did not join"
    CANCELLED = "cancelled", "Invitation cancelled"
class Sentiment(models.TextChoices):
    """The sentiment of an utterance: ACS's four values (the lexicon scorer gives three)."""

    POSITIVE = "positive", "Positive"
    NEUTRAL = "neutral", "Neutral"
    NEGATIVE = "negative", "Negative"
    MIXED = "mixed", "Mixed"


class SentimentSource(models.TextChoices):
    """Who judged an utterance's sentiment."""

    ACS = "acs", "ACS transcription"
    LEXICON = "lexicon", "Callsite's offline lexicon scorer"


class Participant(models.Model):
    """Someone (or something) heard on a call, keyed by its ACS raw id.

    ``display_label`` is what pages show: the display name ACS gave (``display_name``, from
    ``IncomingCall`` or Call Automation) when there is one, else a label made from the raw id.
    Holds come from ``ParticipantsUpdated``: ``hold_periods`` are ``[start, end]`` ISO
    times (``end`` null while the hold goes on); ``hold_ms`` and ``longest_hold_ms`` sum and
    measure the finished ones, ``held_since`` is the start of the current one. Mutes are
    kept the same way in ``mute_periods``, ``mute_ms``, ``longest_mute_ms`` and ``muted_since``.
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="participants")
    raw_id = models.CharField(max_length=300, help_text="ACS participantRawID")
    kind = models.CharField(
        max_length=20, choices=ParticipantKind.choices, default=ParticipantKind.UNKNOWN
    )
    display_label = models.CharField(max_length=200)
    display_name = models.CharField(
        max_length=200, blank=True, help_text="The display name ACS gave, if any"
    )
    role = models.CharField(
        max_length=20, choices=ParticipantRole.choices, default=ParticipantRole.UNKNOWN
    )
    is_muted = models.BooleanField(default=False)
    is_on_hold = models.BooleanField(default=False)
    in_call = models.BooleanField(default=True)
    invitation = models.CharField(
        max_length=20, choices=Invitation.choices, default=Invitation.NONE, blank=True
    )
    invitation_id = models.CharField(max_length=200, blank=True)
    held_since = models.DateTimeField(null=True, blank=True, help_text="On hold since")
    hold_ms = models.PositiveBigIntegerField(default=0, help_text="Finished holds, in all (ms)")
    longest_hold_ms = models.PositiveBigIntegerField(default=0)
    hold_periods = models.JSONField(default=list, blank=True, editable=False)
    muted_since = models.DateTimeField(null=True, blank=True, help_text="Muted since")
    mute_ms = models.PositiveBigIntegerField(default=0, help_text="Finished mutes, in all (ms)")
    longest_mute_ms = models.PositiveBigIntegerField(default=0)
    mute_periods = models.JSONField(default=list, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["call", "created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["call", "raw_id"], name="participant_unique_per_call")
        ]

    def __str__(self) -> str:
        return self.display_label


class Utterance(models.Model):
    """A final recognition result: one phrase by one speaker, stored exactly once.

    ``dedupe_key`` identifies the phrase independently of when it arrived (source, speaker and
    offset, or a digest of the text when a packet carries no offset), so a replayed packet or a
    reconnecting stream cannot store it twice.
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="utterances")
    participant = models.ForeignKey(
        Participant,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="utterances",
    )
    text = models.TextField()
    confidence = models.FloatField(null=True, blank=True)
    offset_ticks = models.BigIntegerField(
        null=True, blank=True, help_text="Start, in 100-ns ticks from the stream start"
    )
    duration_ticks = models.BigIntegerField(null=True, blank=True, help_text="100-ns ticks")
    words = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=20, choices=TranscriptSource.choices)
    # Empty when not known (no sentiment, or no language identified), as Django keeps text.
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices, blank=True)
    sentiment_score = models.FloatField(
        null=True, blank=True, help_text="Lexicon scorer: compound score, -1 (negative) to 1"
    )
    sentiment_source = models.CharField(
        max_length=10, choices=SentimentSource.choices, blank=True
    )
    language = models.CharField(
        max_length=35, blank=True, help_text="Language ACS identified (en-US)"
    )
    seq = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="Order among the call's stored events"
    )
    # None: stored with redaction off; False: checked, nothing found; True: something masked.
    redacted = models.BooleanField(
        null=True,
        blank=True,
        editable=False,
        help_text="PII/PCI masked before storage (None: redaction was off)",
    )
    redaction = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="Who redacted (callsite or acs), the kinds masked and their time spans",
    )
    dedupe_key = models.CharField(max_length=400, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["call", "offset_ticks", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["call", "dedupe_key"], name="utterance_once_per_call")
        ]
        indexes = [models.Index(fields=["call", "offset_ticks"], name="utterance_call_offset")]

    def __str__(self) -> str:
        return self.text[:60]
