"""FLAC in and out, in memory, through libsndfile (the ``soundfile`` wheel bundles it)."""

from __future__ import annotations

import io

import numpy as np
import soundfile

from streaming.units import TICKS_PER_SECOND


def encode(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit mono samples as a FLAC file."""
    out = io.BytesIO()
    soundfile.write(out, samples.astype(np.int16, copy=False), sample_rate, format="FLAC",
                    subtype="PCM_16")  # fmt: skip
    return out.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """A FLAC (or WAV) file's samples as 16-bit mono, and its sample rate."""
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return np.ascontiguousarray(samples[:, 0]), int(rate)


def resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Linear resampling: enough for the rare call whose audio format changed mid-call."""
    if rate == to or not len(samples):
        return samples
    count = round(len(samples) * to / rate)
    positions = np.arange(count) * (rate / to)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.int16)


def to_samples(ticks: int, sample_rate: int) -> int:
    """A place on the call's timeline as a sample index."""
    return ticks * sample_rate // TICKS_PER_SECOND


def to_ticks(samples: int, sample_rate: int) -> int:
    return samples * TICKS_PER_SECOND // sample_rate
