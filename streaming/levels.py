"""How loud a frame of audio is: the level the audio path, the fake recognizer and the
benchmarks' bare server all measure, in dB relative to full scale. No Django."""

from __future__ import annotations

import math

import numpy as np

SILENCE_DBFS = -120.0  # the level reported for digital silence


def frame_level_dbfs(pcm: bytes) -> float:
    """RMS level of 16-bit little-endian PCM in dB relative to full scale (-120 for silence)."""
    if len(pcm) < 2:
        return SILENCE_DBFS
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).astype(np.float32)
    mean_square = float(np.dot(samples, samples)) / samples.size
    if mean_square <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(mean_square / (32768.0 * 32768.0)))
