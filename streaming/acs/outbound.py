"""What Callsite sends to ACS on a bidirectional media socket: audio into the call, or a stop.

The documented form, PascalCase keys (ACS-PROTOCOL.md §4): ``{"Kind": "AudioData",
"AudioData": {"Data": "<base64 PCM>"}, "StopAudio": null}`` for each 20 ms frame, in the
stream's negotiated format (16-bit mono PCM at its sample rate), and ``{"Kind": "StopAudio",
"AudioData": null, "StopAudio": {}}`` to drop what ACS has queued.
"""

from __future__ import annotations

import base64
import json

FRAME_SECONDS = 0.02


def frame_bytes(sample_rate: int) -> int:
    """Bytes of one 20 ms frame of 16-bit mono PCM (640 at 16 kHz, 960 at 24 kHz)."""
    return sample_rate * 2 // 50


def audio_data(pcm: bytes) -> str:
    return json.dumps(
        {
            "Kind": "AudioData",
            "AudioData": {"Data": base64.b64encode(pcm).decode()},
            "StopAudio": None,
        }
    )


def stop_audio() -> str:
    return json.dumps({"Kind": "StopAudio", "AudioData": None, "StopAudio": {}})


def frames(pcm: bytes, sample_rate: int) -> list[bytes]:
    """``pcm`` cut into 20 ms frames, the last padded with silence."""
    size = frame_bytes(sample_rate)
    return [pcm[i : i + size].ljust(size, b"\0") for i in range(0, len(pcm), size)]
