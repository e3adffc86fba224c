"""The embedded pocketsphinx backend, with real decoder processes and real speech.

The fixture WAVs were made with Debian's flite (``flite -voice slt|rms -t "..."``, resampled
to 16 kHz with sox); pocketsphinx's bundled US English model recognises these voices well.
"""

from __future__ import annotations

import asyncio
import os
import signal
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from streaming.recognizers import (
    Recognition,
    RecognitionSession,
    RecognizerError,
    SessionConfig,
)
from streaming.recognizers.evaluation import word_error_rate
from streaming.recognizers.sphinx import SphinxRecognizer

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
    recognizer: SphinxRecognizer, pcm: bytes, rate: int = 16000, *, pace: bool = False
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


@pytest.fixture
async def recognizer() -> AsyncIterator[SphinxRecognizer]:
    pool = SphinxRecognizer(workers=1)
    yield pool
    await pool.aclose()


async def test_speech_becomes_a_final_with_words_timing_and_confidence(
    recognizer: SphinxRecognizer,
) -> None:
    pcm = read_pcm("speech_slt_16k.wav") + bytes(32000)  # and a second of silence
    results = await recognize(recognizer, pcm, pace=True)
    finals = [r for r in results if r.final]
    assert len(finals) == 1
    (final,) = finals
    assert word_error_rate(SLT_TEXT, final.text) <= 0.2, final.text
    assert final.confidence is not None
    assert 0.0 < final.confidence <= 1.0
    assert final.speaker is None
    audio_ticks = len(read_pcm("speech_slt_16k.wav")) // 2 * TICKS // 16000
    assert 0 <= final.offset < TICKS
    assert final.offset + final.duration <= audio_ticks + TICKS // 2
    assert [w.text for w in final.words] == final.text.split()
    starts = [w.offset for w in final.words]
    assert starts == sorted(starts)
    assert all(final.offset <= w.offset < final.offset + final.duration for w in final.words)
    assert all(w.confidence is not None and 0 <= w.confidence <= 1 for w in final.words)
    interims = [r for r in results if not r.final]
    assert interims, "interim results come while the phrase is spoken"
    assert results.index(interims[0]) < results.index(final)


async def test_24khz_audio_is_resampled(recognizer: SphinxRecognizer) -> None:
    pcm = to_24k(read_pcm("speech_rms_16k.wav") + bytes(32000))
    finals = [r for r in await recognize(recognizer, pcm, 24000) if r.final]
    assert len(finals) == 1
    assert word_error_rate(RMS_TEXT, finals[0].text) <= 0.35, finals[0].text
    assert finals[0].offset + finals[0].duration <= int(2.9 * TICKS)


async def test_close_flushes_speech_that_never_ended(recognizer: SphinxRecognizer) -> None:
    finals = [r for r in await recognize(recognizer, read_pcm("speech_rms_16k.wav")) if r.final]
    assert len(finals) == 1
    assert word_error_rate(RMS_TEXT, finals[0].text) <= 0.35


async def test_close_mid_word_on_a_frame_boundary_still_flushes(
    recognizer: SphinxRecognizer,
) -> None:
    """A stream that ends mid-speech exactly on an endpointer frame (30 ms, 960 bytes) leaves
    nothing pending: pocketsphinx 5.1.1's end_stream(b"") raised IndexError there."""
    pcm = read_pcm("speech_slt_16k.wav")
    cut = 40 * 960  # 1.2 s: inside the phrase
    results = await recognize(recognizer, pcm[:cut])
    finals = [r for r in results if r.final]
    assert len(finals) == 1
    assert finals[0].text
    assert finals[0].offset + finals[0].duration <= int(1.3 * TICKS)


async def test_sessions_share_a_worker_and_keep_their_results_apart(
    recognizer: SphinxRecognizer,
) -> None:
    one, two = await asyncio.gather(
        recognize(recognizer, read_pcm("speech_slt_16k.wav") + bytes(16000), pace=True),
        recognize(recognizer, read_pcm("speech_rms_16k.wav") + bytes(16000), pace=True),
    )
    assert len(recognizer.worker_pids()) == 1
    assert word_error_rate(SLT_TEXT, " ".join(r.text for r in one if r.final)) <= 0.2
    assert word_error_rate(RMS_TEXT, " ".join(r.text for r in two if r.final)) <= 0.35


async def test_a_killed_worker_fails_its_sessions_and_the_next_session_gets_a_new_one(
    recognizer: SphinxRecognizer,
) -> None:
    session = recognizer.open(SessionConfig(sample_rate=16000))
    await session.start()
    (pid,) = recognizer.worker_pids()
    await session.feed(read_pcm("speech_slt_16k.wav")[:16000])
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(RecognizerError, match="exited"):
        await asyncio.wait_for(drain(session), 10)
    results = await recognize(recognizer, read_pcm("speech_rms_16k.wav") + bytes(16000))
    assert recognizer.worker_pids() != [pid]
    assert any(r.final for r in results)


async def test_a_hung_worker_is_killed_by_the_watchdog() -> None:
    recognizer = SphinxRecognizer(workers=1, watchdog_seconds=1.0)
    try:
        session = recognizer.open(SessionConfig(sample_rate=16000))
        await session.start()
        (pid,) = recognizer.worker_pids()
        os.kill(pid, signal.SIGSTOP)  # alive but answering nothing
        pcm = read_pcm("speech_slt_16k.wav")
        for i in range(0, 32000, 640):
            await session.feed(pcm[i : i + 640])
        with pytest.raises(RecognizerError, match="answered nothing"):
            await asyncio.wait_for(drain(session), 10)
        await asyncio.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        await recognizer.aclose()
