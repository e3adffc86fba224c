"""A call's recordings: one per participant (or per mixed stream), and who listened.

The audio path writes a recording as chunks of a few seconds each (``RecordingChunk``), as
it arrives, so a worker restart mid-call keeps what was received; when a stream closes the
chunks are assembled into one file per track and a mixed one (``Recording.file``), each
starting at the call's first audio so its times are the transcript's. ``streaming.recording``
has the rest.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models

from streaming.models.calls import Call
from streaming.models.participants import Participant


def recordings_storage() -> Storage:
    """The storage recordings are written through (``STORAGES["recordings"]``)."""
    return storages["recordings"]


class RecordingKind(models.TextChoices):
    PARTICIPANT = "participant", "One participant"
    MIXED = "mixed", "Everyone, mixed"


class Recording(models.Model):
    """One track of a call's audio on the call's timeline."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="recordings")
    kind = models.CharField(max_length=20, choices=RecordingKind.choices)
    # The participant's raw id; "" for the mixed track (ACS's mixed audio, or Callsite's mix).
    track = models.CharField(max_length=200, blank=True, default="")
    participant = models.ForeignKey(
        Participant, on_delete=models.SET_NULL, null=True, blank=True, related_name="recordings"
    )
    sample_rate = models.PositiveIntegerField(default=16000)
    file = models.FileField(
        storage=recordings_storage,
        max_length=300,
        blank=True,
        help_text="The whole track as FLAC, from the call's first audio (empty until assembled)",
    )
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes of the assembled file")
    duration_ticks = models.PositiveBigIntegerField(
        default=0, help_text="Length of the assembled file, in 100-ns ticks"
    )
    assembled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["call", "track"], name="one_recording_per_track"),
        ]
        ordering = ["call", "kind", "track"]

    def __str__(self) -> str:
        who = "mixed" if self.kind == RecordingKind.MIXED else self.track
        return f"call {self.call_id} recording ({who})"


class RecordingChunk(models.Model):
    """A few seconds of one track as received, at its place on the call's timeline."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="chunks")
    start_ticks = models.PositiveBigIntegerField(help_text="Where it starts on the call's timeline")
    samples = models.PositiveIntegerField()
    sample_rate = models.PositiveIntegerField()
    file = models.FileField(storage=recordings_storage, max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "start_ticks"], name="one_chunk_per_start"
            ),
        ]
        ordering = ["recording", "start_ticks"]

    def __str__(self) -> str:
        return f"{self.recording} at {self.start_ticks / 10_000_000:.2f} s"


class RecordingAccess(models.Model):
    """An audit record: who listened to or downloaded which recording, and which bytes."""

    class How(models.TextChoices):
        LISTEN = "listen", "Listened"
        DOWNLOAD = "download", "Downloaded"

    recording = models.ForeignKey(
        Recording, on_delete=models.SET_NULL, null=True, related_name="accesses"
    )
    call = models.ForeignKey(Call, on_delete=models.SET_NULL, null=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    username = models.CharField(max_length=150, help_text="Kept when the user is deleted")
    how = models.CharField(max_length=10, choices=How.choices)
    byte_range = models.CharField(max_length=100, blank=True, help_text="The Range asked for")
    status = models.PositiveSmallIntegerField()
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "recording accesses"

    def __str__(self) -> str:
        return f"{self.username} {self.get_how_display().lower()} {self.recording or 'a recording'}"
