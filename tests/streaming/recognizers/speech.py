"""Real speech for the embedded recognizers' tests, and feeding it to a session.

The fixture WAVs were made with Debian's flite (``flite -voice slt|rms -t "..."``, resampled
to 16 kHz with sox); both embedded backends recognise these voices well.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np

from streaming.recognizers import Recognition, RecognitionSession, SessionConfig
from streaming.recognizers.pool import WorkerPool

AUDIO = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
SLT_TEXT = "I would like to check the balance on my account please."
RMS_TEXT = "Sure, I can help you with that."
TICKS = 10_000_000


def read_pcm(name: str) -> bytes:
    with wave.open(str(AUDIO / name)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        return wav.readframes(wav.getnframes())


def to_24k(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    points = np.arange(0, samples.size - 1, 16000 / 24000)
    return np.rint(np.interp(points, np.arange(samples.size), samples)).astype("<i2").tobytes()


async def recognize(
    recognizer: WorkerPool, pcm: bytes, rate: int = 16000, *, pace: bool = False
) -> list[Recognition]:
    session = recognizer.open(SessionConfig(sample_rate=rate, label="test"))
    await session.start()
    frame = rate // 50 * 2
    results: list[Recognition] = []

    async def collect() -> None:
        async for result in session.results():
            results.append(result)

    reader = asyncio.create_task(collect())
    for i in range(0, len(pcm), frame):
        await session.feed(pcm[i : i + frame])
        if pace and i % (frame * 10) == 0:
            await asyncio.sleep(0.001)
    await session.close()
    await asyncio.wait_for(reader, 60)
    return results


async def drain(session: RecognitionSession) -> list[Recognition]:
    return [result async for result in session.results()]
