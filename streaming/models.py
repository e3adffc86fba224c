"""Calls, their participants and what they said."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone


class CallState(models.TextChoices):
    RINGING = "ringing", "Ringing"
    CONNECTED = "connected", "Connected"
    ENDED = "ended", "Ended"


class CallEndReason(models.TextChoices):
    """How a call came to end, as Callsite knows it."""

    NONE = "", "Not ended"
    STREAM_CLOSED = "stream_closed", "Stream closed"
    DISCONNECTED = "disconnected", "Call disconnected"
    STREAM_LOST = "stream_lost", "Stream lost"


class StreamState(models.TextChoices):
    """Media streaming or transcription, as Call Automation reports it."""

    OFF = "", "Not requested"
    STARTED = "started", "Started"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class TranscriptSource(models.TextChoices):
    ACS = "acs", "ACS transcription"
    RECOGNIZER = "recognizer", "Callsite recognizer"
    NONE = "none", "None"


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


class Call(models.Model):
    """One ACS call connection, as Callsite saw it."""

    connection_id = models.CharField(
        "call connection id",
        max_length=200,
        unique=True,
        null=True,
        blank=True,
        help_text="ACS callConnectionId (unknown until a ringing call is answered)",
    )
    correlation_id = models.CharField(max_length=200, blank=True)
    server_call_id = models.CharField(max_length=1000, blank=True)
    managed = models.BooleanField(
        default=False,
        help_text="Answered by Callsite through Call Automation: its callbacks own its state",
    )
    callback_id = models.UUIDField(
        unique=True, null=True, blank=True, editable=False, help_text="Path of its callbacks"
    )
    caller = models.CharField(max_length=300, blank=True)
    caller_display_name = models.CharField(max_length=300, blank=True)
    callee = models.CharField(max_length=300, blank=True)
    media_state = models.CharField(
        max_length=20, choices=StreamState.choices, default=StreamState.OFF, blank=True
    )
    transcription_state = models.CharField(
        max_length=20, choices=StreamState.choices, default=StreamState.OFF, blank=True
    )
    participants_sequence = models.BigIntegerField(
        null=True, blank=True, help_text="Last ParticipantsUpdated sequence number applied"
    )
    state = models.CharField(max_length=20, choices=CallState.choices, default=CallState.RINGING)
    transcript_source = models.CharField(
        max_length=20, choices=TranscriptSource.choices, default=TranscriptSource.NONE
    )
    locale = models.CharField(max_length=35, blank=True)
    audio_origin = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Timestamp of the first audio frame: tick 0 of the call's audio timeline",
    )
    sample_rate = models.PositiveIntegerField(
        null=True, blank=True, help_text="PCM sample rate of the call's audio stream (Hz)"
    )
    last_seq = models.PositiveIntegerField(
        default=0, editable=False, help_text="Sequence number of the call's latest stored event"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(
        max_length=20, choices=CallEndReason.choices, default=CallEndReason.NONE, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "-created_at"], name="call_state_created")]
        permissions = [
            ("control_call", "Can start and stop streaming or transcription, and hang up"),
            ("view_all_calls", "Can see every call, not only those of their teams"),
        ]

    def __str__(self) -> str:
        return self.connection_id or f"ringing call from {self.caller or 'unknown'}"

    @property
    def group_name(self) -> str:
        """The channel-layer group that receives this call's live events."""
        from streaming.events import call_group

        return call_group(self.pk)


class Participant(models.Model):
    """Someone (or something) heard on a call, keyed by its ACS raw id."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="participants")
    raw_id = models.CharField(max_length=300, help_text="ACS participantRawID")
    kind = models.CharField(
        max_length=20, choices=ParticipantKind.choices, default=ParticipantKind.UNKNOWN
    )
    display_label = models.CharField(max_length=200)
    role = models.CharField(
        max_length=20, choices=ParticipantRole.choices, default=ParticipantRole.UNKNOWN
    )
    is_muted = models.BooleanField(default=False)
    is_on_hold = models.BooleanField(default=False)
    in_call = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["call", "created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["call", "raw_id"], name="participant_unique_per_call")
        ]

    def __str__(self) -> str:
        return self.display_label


class StreamQuerySet(models.QuerySet["Stream"]):
    def open(self) -> StreamQuerySet:
        return self.filter(closed_at__isnull=True)

    def heard_since(self, moment: datetime) -> StreamQuerySet:
        """Open streams whose worker refreshed their heartbeat at or after ``moment``."""
        return self.open().filter(seen_at__gte=moment)

    def silent_since(self, moment: datetime) -> StreamQuerySet:
        """Open streams whose worker has not refreshed their heartbeat since ``moment``."""
        return self.open().filter(seen_at__lt=moment)

    def whose_call_is_heard_since(self, moment: datetime) -> StreamQuerySet:
        """Those whose call has another open stream heard since ``moment``."""
        heard = Stream.objects.heard_since(moment).filter(call=models.OuterRef("call"))
        return self.filter(models.Exists(heard))


class Stream(models.Model):
    """One ACS WebSocket stream of a call, and the heartbeat of the worker that holds it.

    The worker refreshes ``seen_at`` every few seconds while the socket is open. A worker that
    dies (kill -9, out of memory, power loss) never closes its streams: any other worker finds
    them by their stopped heartbeat, flags their calls stuck, and ends them as lost if no
    stream of the call comes back (``streaming.heartbeat``).
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="streams")
    worker = models.CharField(max_length=100, help_text="host:pid of the worker holding it")
    opened_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, help_text="The worker's last heartbeat")
    last_packet_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    lost = models.BooleanField(default=False, help_text="Its worker stopped answering")

    objects = StreamQuerySet.as_manager()

    class Meta:
        ordering = ["call", "opened_at", "pk"]
        indexes = [models.Index(fields=["closed_at", "seen_at"], name="stream_open_seen")]

    def __str__(self) -> str:
        return f"stream {self.pk} of call {self.call_id} on {self.worker}"


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
    seq = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="Order among the call's stored events"
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


class CallEvent(models.Model):
    """A Call Automation event or action outcome, kept as it arrived.

    ``event_id`` makes delivery idempotent: Event Grid and Call Automation deliver at least
    once and retry, so a redelivered event is recognised and not applied twice.
    """

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=200, unique=True)
    type = models.CharField(max_length=120)
    time = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    result_code = models.IntegerField(null=True, blank=True)
    result_subcode = models.IntegerField(null=True, blank=True)
    result_message = models.TextField(blank=True)
    is_failure = models.BooleanField(default=False)
    received_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["call", "received_at", "pk"]
        indexes = [models.Index(fields=["call", "is_failure"], name="callevent_call_failure")]

    def __str__(self) -> str:
        return f"{self.type} ({self.event_id})"


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
    stream = models.CharField(max_length=200, blank=True)
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
    silence_ms = models.PositiveIntegerField(default=0, help_text="Nobody talking")
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
        help_text="Dead air and monologue: longer than this; overtalk: the window",
    )
    percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Overtalk: the share of the window with two talking"
    )
    speaker_role = models.CharField(
        max_length=20,
        choices=ParticipantRole.choices,
        blank=True,
        help_text="Keyword and monologue rules: only this role (blank: anyone)",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.kind == AlertKind.KEYWORD and not self.phrase.strip():
            raise ValidationError({"phrase": "A keyword rule needs a word or phrase."})
        if self.kind != AlertKind.KEYWORD and not self.seconds:
            raise ValidationError({"seconds": "This rule needs a number of seconds."})
        if self.kind == AlertKind.OVERTALK and not (self.percent and 0 < self.percent <= 100):
            raise ValidationError({"percent": "Overtalk needs a percentage from 1 to 100."})


class Alert(models.Model):
    """An alert rule that fired on a call: stored once per episode."""

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

    class Meta:
        ordering = ["call", "at_ms", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["call", "episode"], name="alert_once_per_episode")
        ]

    def __str__(self) -> str:
        return self.message
