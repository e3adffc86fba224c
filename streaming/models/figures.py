"""Talk time per second, a call's figures, and the alerts that fired on it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from streaming.models.calls import Call
from streaming.models.participants import Participant, ParticipantRole


class TalkSecond(models.Model):
    """One participant's audio in one second of the call, for talk-time analytics.

    ``stream`` is the participant's raw id, or empty for mixed audio. Bit *i* of
    ``voiced_mask`` is set when the 20 ms frame at ``i * 20`` ms into the second was speech
    (not marked silent by ACS and louder than ``CALLSITE_VOICE_THRESHOLD_DBFS``).
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="talk_seconds")
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, null=True, blank=True, related_name="talk_seconds"
    )
    stream = models.CharField(max_length=300, blank=True)  # as long as Participant.raw_id
    second = models.PositiveIntegerField(help_text="Seconds from the call's first audio frame")
    frames = models.PositiveSmallIntegerField(default=0)
    voiced_frames = models.PositiveSmallIntegerField(default=0)
    voiced_mask = models.BigIntegerField(default=0)
    mean_db = models.FloatField(help_text="Mean frame level, dBFS")
    peak_db = models.FloatField(help_text="Loudest frame, dBFS")

    class Meta:
        ordering = ["call", "second", "stream"]
        constraints = [
            models.UniqueConstraint(
                fields=["call", "stream", "second"], name="talksecond_once_per_stream"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stream or 'mixed'} @ {self.second}s: {self.voiced_frames}/{self.frames}"


class CallAnalytics(models.Model):
    """A call's talk-time figures: refreshed every few seconds while it runs, final after.

    ``speakers`` holds each speaker's figures (``SpeakerStatsPayload``) and ``timeline`` who
    spoke when (``{speaker key or "overlap": [[start_ms, end_ms], ...]}``).
    """

    class Source(models.TextChoices):
        AUDIO = "audio", "Unmixed audio frames"
        UTTERANCES = "utterances", "Result timings"
        NONE = "none", "Nothing yet"

    call = models.OneToOneField(
        Call, on_delete=models.CASCADE, primary_key=True, related_name="analytics"
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.NONE)
    final = models.BooleanField(default=False, help_text="The call has ended")
    duration_ms = models.PositiveIntegerField(default=0)
    talk_ms = models.PositiveIntegerField(default=0, help_text="Someone talking")
    overlap_ms = models.PositiveIntegerField(default=0, help_text="Two or more talking")
    silence_ms = models.PositiveIntegerField(
        default=0, help_text="Nobody talking, and nobody on hold"
    )
    hold_ms = models.PositiveIntegerField(default=0, help_text="Someone on hold")
    longest_silence_ms = models.PositiveIntegerField(default=0)
    longest_monologue_ms = models.PositiveIntegerField(default=0)
    interruptions = models.PositiveIntegerField(default=0)
    agent_talk_ratio = models.FloatField(
        null=True, blank=True, help_text="Agents' share of all talk (0-1)"
    )
    speakers = models.JSONField(default=list, blank=True)
    timeline = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "call analytics"

    def __str__(self) -> str:
        return f"analytics of call {self.call_id}"


class AlertKind(models.TextChoices):
    KEYWORD = "keyword", "Keyword or phrase in a final utterance"
    DEAD_AIR = "dead_air", "Dead air longer than N seconds"
    MONOLOGUE = "monologue", "Monologue longer than N seconds"
    OVERTALK = "overtalk", "Overtalk above N % over a window"
    SENTIMENT = "sentiment", "Negative sentiment for N finals in a row (or N seconds)"
    HOLD = "hold", "On hold longer than N seconds"
    DTMF = "dtmf", "DTMF tones entered"
    PHRASE_WINDOW = "phrase_window", "A phrase said (or not said) in the first or last N seconds"
    TALK_RATIO = "talk_ratio", "Talk ratio outside a range (after N seconds)"


class PhraseWindow(models.TextChoices):
    FIRST = "first", "In the first N seconds"
    LAST = "last", "In the last N seconds"


class PhraseExpectation(models.TextChoices):
    SAID = "said", "Fire when it is said"
    MISSING = "missing", "Fire when it is not said"


class AlertRule(models.Model):
    """What a supervisor wants to hear about, checked live on every call."""

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    enabled = models.BooleanField(default=True)
    phrase = models.CharField(
        max_length=200,
        blank=True,
        help_text="Keyword rules: the word or phrase, matched whole-word and case-insensitively",
    )
    seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Dead air, monologue and hold: longer than this; overtalk: the window; "
        "sentiment: negative for this long; phrase: the window's length; talk ratio: judged "
        "once the call is this long",
    )
    finals = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Sentiment: this many negative finals in a row"
    )
    percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Overtalk: the share of the window with two talking"
    )
    percent_max = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Talk ratio: fire above this share (percent); the lower bound is `percent`",
    )
    window = models.CharField(
        max_length=10,
        choices=PhraseWindow.choices,
        blank=True,
        help_text="Phrase in a window: the first or the last N seconds of the call",
    )
    expect = models.CharField(
        max_length=10,
        choices=PhraseExpectation.choices,
        default=PhraseExpectation.SAID,
        help_text="Phrase in a window: fire when the phrase is said, or when it is not",
    )
    speaker_role = models.CharField(
        max_length=20,
        choices=ParticipantRole.choices,
        blank=True,
        help_text="Keyword, phrase, monologue, sentiment, hold and DTMF rules: only this role "
        "(blank: anyone); talk ratio: whose share (blank: agents')",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.kind in (AlertKind.KEYWORD, AlertKind.PHRASE_WINDOW) and not self.phrase.strip():
            raise ValidationError({"phrase": "This rule needs a word or phrase."})
        if self.kind == AlertKind.PHRASE_WINDOW and not self.window:
            raise ValidationError({"window": "Choose the first or the last N seconds."})
        if self.kind == AlertKind.TALK_RATIO:
            low, high = self.percent, self.percent_max
            if low is None and high is None:
                raise ValidationError({"percent": "Give a lowest share, a highest, or both."})
            if any(v is not None and not 0 <= v <= 100 for v in (low, high)):
                raise ValidationError({"percent": "Shares are percentages from 0 to 100."})
            if low is not None and high is not None and low >= high:
                raise ValidationError(
                    {"percent_max": "The highest share must be above the lowest."}
                )
        if self.kind == AlertKind.SENTIMENT:
            if not (self.finals or self.seconds):
                raise ValidationError(
                    {"finals": "A sentiment rule needs a number of finals or of seconds."}
                )
        elif self.kind not in (AlertKind.KEYWORD, AlertKind.DTMF) and not self.seconds:
            raise ValidationError({"seconds": "This rule needs a number of seconds."})
        if self.kind == AlertKind.OVERTALK and not (self.percent and 0 < self.percent <= 100):
            raise ValidationError({"percent": "Overtalk needs a percentage from 1 to 100."})


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """An alert rule that fired on a call: stored once per episode.

    Supervisors triage it: *open* when it fires, then *acknowledged* (by whom, when, with an
    optional note) and *resolved*; a resolved or acknowledged alert can be opened again.
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(
        AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    message = models.CharField(max_length=500)
    participant = models.ForeignKey(
        Participant, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    at_ms = models.PositiveIntegerField(help_text="Where in the call it fired, ms")
    episode = models.CharField(
        max_length=400, editable=False, help_text="What makes a repeat of this alert the same one"
    )
    seq = models.PositiveIntegerField(null=True, blank=True, editable=False)
    fired_at = models.DateTimeField(default=timezone.now, editable=False)
    state = models.CharField(
        max_length=20, choices=AlertState.choices, default=AlertState.OPEN, db_index=True
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="The supervisor's note")

    class Meta:
        ordering = ["call", "at_ms", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["call", "episode"], name="alert_once_per_episode")
        ]

    def __str__(self) -> str:
        return self.message
