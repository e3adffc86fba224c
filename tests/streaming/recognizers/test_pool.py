"""The worker pool both embedded backends run on, with real decoder processes: sessions share
workers, and a worker that crashes or hangs fails its sessions, not the next ones."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streaming.recognizers import Recognition, RecognitionSession, RecognizerError, SessionConfig
from streaming.recognizers.evaluation import word_error_rate
from streaming.recognizers.pool import WorkerPool
from streaming.recognizers.sphinx import SphinxRecognizer
from streaming.recognizers.whisper import WhisperRecognizer, resolve_model
from tests.streaming.recognizers.speech import RMS_TEXT, SLT_TEXT, read_pcm, recognize

# Each backend, and the word error rate it gets on the fixtures at worst.
TOLERATED = {"sphinx": (0.2, 0.35), "whisper": (0.1, 0.1)}


def make_pool(backend: str, **options: Any) -> WorkerPool:
    if backend == "sphinx":
        return SphinxRecognizer(workers=1, **options)
    model_dir, sha256 = resolve_model("", "")
    return WhisperRecognizer(model_dir=model_dir, sha256=sha256, workers=1, **options)


@pytest.fixture(params=list(TOLERATED))
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, WorkerPool]]:
    pool = make_pool(request.param)
    yield request.param, pool
    await pool.aclose()


async def drain(session: RecognitionSession) -> list[Recognition]:
    return [result async for result in session.results()]


async def test_sessions_share_a_worker_and_keep_their_results_apart(
    backend: tuple[str, WorkerPool],
) -> None:
    name, pool = backend
    one, two = await asyncio.gather(
        recognize(pool, read_pcm("speech_slt_16k.wav") + bytes(16000), pace=True),
        recognize(pool, read_pcm("speech_rms_16k.wav") + bytes(16000), pace=True),
    )
    assert len(pool.worker_pids()) == 1
    slt, rms = TOLERATED[name]
    assert word_error_rate(SLT_TEXT, " ".join(r.text for r in one if r.final)) <= slt
    assert word_error_rate(RMS_TEXT, " ".join(r.text for r in two if r.final)) <= rms


async def test_a_killed_worker_fails_its_sessions_and_the_next_session_gets_a_new_one(
    backend: tuple[str, WorkerPool],
) -> None:
    _, pool = backend
    session = pool.open(SessionConfig(sample_rate=16000))
    await session.start()
    (pid,) = pool.worker_pids()
    await session.feed(read_pcm("speech_slt_16k.wav")[:16000])
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(RecognizerError, match=f"the {pool.engine} worker exited"):
        await asyncio.wait_for(drain(session), 10)
    results = await recognize(pool, read_pcm("speech_rms_16k.wav") + bytes(16000))
    assert pool.worker_pids() != [pid]
    assert any(r.final for r in results)


@pytest.mark.parametrize("name", list(TOLERATED))
async def test_a_hung_worker_is_killed_by_the_watchdog(name: str) -> None:
    pool = make_pool(name, watchdog_seconds=1.0)
    try:
        session = pool.open(SessionConfig(sample_rate=16000))
        await session.start()
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGSTOP)  # alive but answering nothing
        pcm = read_pcm("speech_slt_16k.wav")
        for i in range(0, 32000, 640):
            await session.feed(pcm[i : i + 640])
        with pytest.raises(RecognizerError, match=f"the {pool.engine} worker answered nothing"):
            await asyncio.wait_for(drain(session), 10)
        await asyncio.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        await pool.aclose()


@pytest.mark.parametrize("name", list(TOLERATED))
async def test_a_worker_that_falls_too_far_behind_fails_its_session(name: str) -> None:
    """Audio sent faster than the worker answers, beyond the backlog bound: the session ends
    with the reason (the audio path marks the gap) instead of queueing without bound."""
    pool = make_pool(name, backlog_seconds=1)
    try:
        session = pool.open(SessionConfig(sample_rate=16000))
        await session.start()
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        for _ in range(150):  # 3 s of audio, never answered
            await session.feed(bytes(640))
        with pytest.raises(RecognizerError, match="fell more than 1 s behind"):
            await asyncio.wait_for(drain(session), 10)
    finally:
        await pool.aclose()
