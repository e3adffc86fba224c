"""The whisper backend, with real worker processes, the packaged model and real speech.

The speech is flite's (``speech``); the line noise is made here: mains hum with its
harmonics, hiss and crackle. What the pool does for every backend is in test_pool.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.checks import run_checks

from streaming.recognizers import (
    RecognizerConfigurationError,
    RecognizerError,
    SessionConfig,
    check_recognizer,
    recognizer_from_settings,
)
from streaming.recognizers.evaluation import word_error_rate
from streaming.recognizers.whisper import (
    PACKAGED_SHA256,
    WhisperRecognizer,
    language_of,
    packaged_model_dir,
    resolve_model,
    verify_model,
)
from tests.streaming.recognizers.speech import (
    RMS_TEXT,
    SLT_TEXT,
    TICKS,
    read_pcm,
    recognize,
    to_24k,
)


def line_noise(seconds: float, rate: int = 16000, seed: int = 7) -> bytes:
    """A bad line: 60 Hz hum and harmonics, hiss, and a few crackles a second."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal_ = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((60, 0.05), (120, 0.02), (180, 0.015)))
    signal_ = signal_ + rng.normal(0, 0.03, t.size)
    for start in rng.integers(0, t.size - 400, int(seconds * 3)):
        signal_[start : start + int(rng.integers(20, 400))] += rng.normal(0, 0.2)
    return (np.clip(signal_, -1, 1) * 32767).astype("<i2").tobytes()


def pool(**options: Any) -> WhisperRecognizer:
    model_dir, sha256 = resolve_model("", "")
    options.setdefault("backlog_seconds", 120)  # the tests feed faster than real time
    return WhisperRecognizer(model_dir=model_dir, sha256=sha256, workers=1, **options)


@pytest.fixture
async def recognizer() -> AsyncIterator[WhisperRecognizer]:
    recognizer = pool(interim_seconds=1.0)
    yield recognizer
    await recognizer.aclose()


async def test_speech_becomes_a_readable_final_with_word_times_and_confidences(
    recognizer: WhisperRecognizer,
) -> None:
    pcm = read_pcm("speech_slt_16k.wav") + bytes(32000)
    results = await recognize(recognizer, pcm, pace=True)
    finals = [r for r in results if r.final]
    assert len(finals) == 1
    (final,) = finals
    assert word_error_rate(SLT_TEXT, final.text) <= 0.1, final.text
    assert final.text[0].isupper(), "Whisper writes sentences: capitals and punctuation"
    assert final.confidence is not None
    assert 0.0 < final.confidence <= 1.0
    audio_ticks = len(read_pcm("speech_slt_16k.wav")) // 2 * TICKS // 16000
    assert 0 <= final.offset < TICKS
    assert final.offset + final.duration <= audio_ticks + TICKS // 2
    assert [w.text for w in final.words] == final.text.split()
    starts = [w.offset for w in final.words]
    assert starts == sorted(starts)
    assert starts[-1] - starts[0] > TICKS, "word times spread over the phrase"
    assert all(final.offset <= w.offset <= final.offset + final.duration for w in final.words)
    assert all(w.confidence is not None and 0 < w.confidence <= 1 for w in final.words)


async def test_interim_captions_show_the_utterance_so_far(recognizer: WhisperRecognizer) -> None:
    pcm = read_pcm("speech_slt_16k.wav") + bytes(32000)
    results = await recognize(recognizer, pcm, pace=True)
    final = next(r for r in results if r.final)
    interims = [r for r in results if not r.final]
    assert interims, "speech in progress is reported before the final"
    assert all(results.index(r) < results.index(final) for r in interims)
    shown = [r.text for r in interims if r.text]
    assert shown, "at least one interim carries text"
    # What an interim shows is the start of what was said.
    first_words = SLT_TEXT.lower().split()[:2]
    assert shown[0].lower().replace(",", "").split()[:2] == first_words, shown
    assert all(r.offset == final.offset for r in interims)


async def test_with_interims_off_only_finals_carry_text() -> None:
    recognizer = pool(interim_seconds=0)
    try:
        results = await recognize(recognizer, read_pcm("speech_rms_16k.wav") + bytes(32000))
    finally:
        await recognizer.aclose()
    assert [r.text for r in results if not r.final and r.text] == []
    assert any(not r.final for r in results), "speech in progress is still reported"
    finals = [r for r in results if r.final]
    assert len(finals) == 1
    assert word_error_rate(RMS_TEXT, finals[0].text) <= 0.1, finals[0].text


async def test_24khz_audio_is_resampled(recognizer: WhisperRecognizer) -> None:
    pcm = to_24k(read_pcm("speech_rms_16k.wav") + bytes(32000))
    finals = [r for r in await recognize(recognizer, pcm, 24000) if r.final]
    assert len(finals) == 1
    assert word_error_rate(RMS_TEXT, finals[0].text) <= 0.1, finals[0].text
    assert finals[0].offset + finals[0].duration <= int(2.9 * TICKS)


async def test_close_flushes_speech_that_never_ended(recognizer: WhisperRecognizer) -> None:
    pcm = read_pcm("speech_rms_16k.wav")
    finals = [r for r in await recognize(recognizer, pcm[: 40 * 960]) if r.final]
    assert len(finals) == 1
    assert finals[0].text.lower().startswith("sure"), finals[0].text


@pytest.mark.parametrize(
    "audio",
    [pytest.param(bytes(16000 * 2 * 60), id="silence"), pytest.param(line_noise(60), id="noise")],
)
async def test_a_minute_of_silence_or_line_noise_gives_no_captions(
    recognizer: WhisperRecognizer, audio: bytes
) -> None:
    results = await recognize(recognizer, audio, pace=True)
    assert [r.text for r in results if r.text] == []


def test_a_doctored_model_is_refused_naming_the_file_and_the_expected_hash(
    doctored_model: Path,
) -> None:
    verify_model(packaged_model_dir() or Path(), PACKAGED_SHA256)  # the real one passes
    with pytest.raises(RecognizerConfigurationError) as refused:
        verify_model(doctored_model, PACKAGED_SHA256)
    assert str(doctored_model / "model.bin") in refused.value.reason
    assert f"expected {PACKAGED_SHA256}" in refused.value.reason


async def test_a_worker_will_not_load_a_doctored_model(doctored_model: Path) -> None:
    recognizer = WhisperRecognizer(model_dir=doctored_model, sha256=PACKAGED_SHA256, workers=1)
    try:
        session = recognizer.open(SessionConfig(sample_rate=16000))
        with pytest.raises(RecognizerError, match=f"expected {PACKAGED_SHA256}"):
            await session.start()
        assert recognizer.worker_pids() == []
    finally:
        await recognizer.aclose()


def test_settings_choose_the_model_and_its_hash(settings: Any, doctored_model: Path) -> None:
    settings.CALLSITE_RECOGNIZER = "whisper"
    settings.CALLSITE_WHISPER_MODEL, settings.CALLSITE_WHISPER_SHA256 = "", ""
    recognizer = recognizer_from_settings()
    assert isinstance(recognizer, WhisperRecognizer)
    assert (recognizer.model_dir, recognizer.sha256) == (packaged_model_dir(), PACKAGED_SHA256)
    check_recognizer()
    assert not {"callsite.E013", "callsite.E014"} & {m.id for m in run_checks()}
    # An operator's own model needs its hash.
    settings.CALLSITE_WHISPER_MODEL = str(doctored_model)
    with pytest.raises(RecognizerConfigurationError, match="needs CALLSITE_WHISPER_SHA256"):
        recognizer_from_settings()
    settings.CALLSITE_WHISPER_SHA256 = PACKAGED_SHA256
    with pytest.raises(RecognizerConfigurationError, match=f"expected {PACKAGED_SHA256}"):
        check_recognizer()
    assert "callsite.E014" in {m.id for m in run_checks()}


def test_locales_become_whisper_languages(settings: Any) -> None:
    assert language_of("en-US") == "en"
    assert language_of("de_DE") == "de"
    assert language_of("pt-BR") == "pt"
    settings.CALLSITE_RECOGNIZER = "whisper"
    settings.CALLSITE_WHISPER_MODEL = ""
    settings.CALLSITE_RECOGNIZER_LOCALE = "de-DE"
    assert "callsite.W012" in {m.id for m in run_checks()}
