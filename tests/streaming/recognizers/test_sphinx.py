"""The pocketsphinx backend, with real decoder processes and real speech (``speech``).

What the pool does for every backend (shared workers, crashes, the watchdog) is in
test_pool.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streaming.recognizers.evaluation import word_error_rate
from streaming.recognizers.sphinx import SphinxRecognizer
from tests.streaming.recognizers.speech import (
    RMS_TEXT,
    SLT_TEXT,
    TICKS,
    read_pcm,
    recognize,
    to_24k,
)


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
