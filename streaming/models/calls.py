"""Calls as Callsite saw them, their streams and what Call Automation reported."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
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
    NOT_CONNECTED = "not_connected", "Could not connect"


class StreamState(models.TextChoices):
    """Media streaming or transcription, as Call Automation reports it."""

    OFF = "", "Not requested"
    STARTED = "started", "Started"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class CallOrigin(models.TextChoices):
    """How Callsite came to be on the call."""

    STREAMED = "", "Streamed to Callsite"
    ANSWERED = "answered", "Answered"
    ROOM = "room", "Connected to a room"
    PLACED = "placed", "Placed by a supervisor"


class RecordingState(models.TextChoices):
    """The call's ACS recording, as Call Automation reports it (``RecordingStateChanged``)."""

    OFF = "", "Not recording"
    STARTING = "starting", "Starting"
    ACTIVE = "active", "Recording"
    PAUSED = "paused", "Paused"
    STOPPED = "stopped", "Stopped"


class TranscriptSource(models.TextChoices):
    ACS = "acs", "ACS transcription"
    RECOGNIZER = "recognizer", "Callsite recognizer"
    NONE = "none", "None"


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
    origin = models.CharField(
        max_length=20, choices=CallOrigin.choices, default=CallOrigin.STREAMED, blank=True
    )
    room_id = models.CharField(max_length=200, blank=True, help_text="ACS room of a room call")
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The supervisor who placed the call or connected Callsite to its room",
    )
    bidirectional = models.BooleanField(
        default=False, help_text="Media streaming can carry audio into the call"
    )
    recording_id = models.CharField(max_length=300, blank=True)
    recording_state = models.CharField(
        max_length=20, choices=RecordingState.choices, default=RecordingState.OFF, blank=True
    )
    participants_sequence = models.BigIntegerField(
        null=True, blank=True, help_text="Last ParticipantsUpdated sequence number applied"
    )
    state = models.CharField(max_length=20, choices=CallState.choices, default=CallState.RINGING)
    transcript_source = models.CharField(
        max_length=20, choices=TranscriptSource.choices, default=TranscriptSource.NONE
    )
    locale = models.CharField(max_length=35, blank=True)
    transcription_options = models.JSONField(
        default=dict,
        blank=True,
        help_text="What ACS transcription was asked for (its TranscriptionMetadata): "
        "sentiment, PII redaction, summaries, locales, custom speech model",
    )
    secure_pause_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Paused for payment since then: its audio is neither recorded nor recognized",
    )
    secure_pause_periods = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="Each pause for payment as [start, end] ISO times (end null while it goes on)",
    )
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
            (
                "control_call",
                "Can start and stop streaming or transcription, play prompts, send DTMF, hang up",
            ),
            ("manage_participants", "Can add, remove, mute, hold and transfer participants"),
            ("control_recording", "Can start, pause, resume and stop a call's recording"),
            ("place_calls", "Can place calls and connect Callsite to room calls"),
            ("view_all_calls", "Can see every call, not only those of their teams"),
            ("listen_call", "Can listen to a live call's audio"),
        ]

    def __str__(self) -> str:
        return self.connection_id or f"ringing call from {self.caller or 'unknown'}"

    @property
    def group_name(self) -> str:
        """The channel-layer group that receives this call's live events."""
        from streaming.events import call_group

        return call_group(self.pk)


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
    stream of the call comes back (``streaming.live.heartbeat``).
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
