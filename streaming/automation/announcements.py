"""Announcements played into a call through its bidirectional media socket.

A supervisor's "play an announcement" reaches whichever worker holds the call's media
socket through the channel layer: the socket's :class:`~streaming.ingest.playback.Playback`
listens on :func:`media_group` and writes the clip as outbound ``AudioData`` frames, or sends
``StopAudio``. The clips are a built-in chime and the WAV files (16-bit mono) in
``CALLSITE_ANNOUNCEMENTS_DIR``, resampled to the stream's rate.
"""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from streaming.models import ActionStatus, ControlAction

DEFAULT_CLIP = "chime"


def media_group(call_id: int) -> str:
    """The group of a call's bidirectional media sockets."""
    return f"call.{int(call_id)}.media"


def clip_names() -> list[str]:
    """The announcements a supervisor can choose: the chime, then the directory's WAVs."""
    directory = settings.CALLSITE_ANNOUNCEMENTS_DIR
    found = sorted(p.stem for p in Path(directory).glob("*.wav")) if directory else []
    return [DEFAULT_CLIP, *[name for name in found if name != DEFAULT_CLIP]]


def _chime(sample_rate: int) -> bytes:
    """Two soft tones, 0.6 s each, the way a "this call is recorded" notice starts."""
    parts = []
    for frequency in (660.0, 880.0):
        t = np.arange(int(sample_rate * 0.6)) / sample_rate
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) * 20)
        parts.append(0.3 * envelope * np.sin(2 * np.pi * frequency * t))
    return (np.concatenate(parts) * 32767).astype("<i2").tobytes()


@functools.lru_cache(maxsize=32)
def _wav_pcm(path: str, mtime: float, sample_rate: int) -> bytes:
    with wave.open(path, "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{Path(path).name} is not 16-bit mono PCM")
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if rate != sample_rate and len(samples):
        times = np.arange(int(len(samples) * sample_rate / rate)) * rate / sample_rate
        samples = np.interp(times, np.arange(len(samples)), samples).astype("<i2")
    return samples.astype("<i2").tobytes()


def clip_pcm(name: str, sample_rate: int) -> bytes:
    """A clip's audio as 16-bit mono PCM at ``sample_rate``; ``ValueError`` if unknown."""
    if name == DEFAULT_CLIP:
        return _chime(sample_rate)
    if name not in clip_names():
        raise ValueError(f"no announcement named {name!r}")
    path = Path(settings.CALLSITE_ANNOUNCEMENTS_DIR) / f"{name}.wav"
    return _wav_pcm(str(path), path.stat().st_mtime, sample_rate)


def announce(*, call_id: int, clip: str, operation_context: str) -> None:
    """Ask the call's media socket to play ``clip`` (settled by the socket when done)."""
    layer = get_channel_layer()
    assert layer is not None
    message = {"type": "media.announce", "clip": clip, "operation_context": operation_context}
    async_to_sync(layer.group_send)(media_group(call_id), message)


def stop(*, call_id: int) -> None:
    """Ask the call's media socket to stop what it plays and send ``StopAudio``."""
    layer = get_channel_layer()
    assert layer is not None
    async_to_sync(layer.group_send)(media_group(call_id), {"type": "media.stop"})


def announcement_settled(*, operation_context: str, status: str, outcome: str) -> None:
    """Record how an announcement ended (played out, stopped or failed), from the socket."""
    from streaming.automation.outcomes import action_settle

    found = ControlAction.objects.filter(operation_context=operation_context).first()
    if found is not None:
        action_settle(found.pk, ActionStatus(status), outcome)
