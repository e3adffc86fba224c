"""A pool of recognizer worker processes: the machinery both embedded backends share.

``sphinx`` and ``whisper`` each decode in worker processes (``WorkerPool.worker_module``, one
per core unless configured); each worker holds many sessions, and the server talks to it
through pipes with asyncio (the protocol of ``streaming.recognizers.worker``), never blocking
the event loop. A backend is a ``WorkerPool`` subclass naming its worker module, its engine
(for log lines and error reasons), the options its workers start with and the options of a
session.

Failure handling: a worker that exits (crash, OOM kill) ends every session it held with
``RecognizerError``; a worker that stops answering while audio waits for it (hung decoder) is
killed by a watchdog, with the same effect; a worker that cannot load its model says why and
exits, and the session that wanted it fails with that reason. The audio path then opens new
sessions, which start a fresh worker. Audio a session could not take because its worker fell
more than ``backlog_seconds`` behind is dropped and reported as an error too, so the gap is
marked instead of memory growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from typing import Any

from streaming.recognizers.base import (
    END_OF_RESULTS,
    QueuedSession,
    Recognition,
    RecognizedWord,
    Recognizer,
    RecognizerError,
    SessionConfig,
)
from streaming.recognizers.worker import ABORT, AUDIO, CLOSE, HEADER, OPEN

logger = logging.getLogger(__name__)

WATCHDOG_SECONDS = 10.0  # a worker silent this long while it owes output is hung
READY_TIMEOUT = 30.0
CLOSE_TIMEOUT = 30.0


def _recognition(message: dict[str, Any], final: bool) -> Recognition:
    words = tuple(
        RecognizedWord(
            text=str(w["text"]),
            offset=int(w["offset"]),
            duration=int(w["duration"]),
            confidence=w.get("confidence"),
        )
        for w in message.get("words", ())
    )
    return Recognition(
        text=str(message["text"]),
        final=final,
        offset=int(message["offset"]),
        duration=int(message["duration"]),
        confidence=message.get("confidence"),
        words=words,
    )


class PoolWorker:
    """One decoder process and the sessions it holds."""

    def __init__(self, pool: WorkerPool, number: int) -> None:
        self.pool = pool
        self.number = number
        self.process: asyncio.subprocess.Process | None = None
        self.sessions: dict[int, PooledSession] = {}
        self.reader: asyncio.Task[None] | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.last_output = time.monotonic()
        self.failed: str | None = None
        self.ready = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.pool.worker_module,
            json.dumps(self.pool.worker_options()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=4 * 1024 * 1024,
        )
        name = f"{self.pool.name}-worker-{self.number}"
        self.reader = asyncio.create_task(self.read(), name=f"{name}-reader")
        self.watchdog = asyncio.create_task(self.watch(), name=f"{name}-watchdog")
        try:
            await asyncio.wait_for(self.ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            await self.fail(f"the {self.pool.engine} worker did not start in time")
        if self.failed:
            raise RecognizerError(self.failed)
        logger.info("%s worker %d started (pid %s)", self.pool.engine, self.number, self.pid)

    def send(self, ident: int, op: int, payload: bytes = b"") -> None:
        if self.failed or self.process is None or self.process.stdin is None:
            raise RecognizerError(self.failed or f"the {self.pool.engine} worker is not running")
        self.process.stdin.write(HEADER.pack(ident, op, len(payload)) + payload)

    async def read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        stdout = self.process.stdout
        reason = f"the {self.pool.engine} worker exited"
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                self.last_output = time.monotonic()
                message = json.loads(line)
                if message.get("t") == "ready":
                    self.ready.set()
                    continue
                if message.get("t") == "fatal":  # it cannot load its model, and exits
                    reason = str(message.get("reason") or reason)
                    continue
                session = self.sessions.get(message.get("s", -1))
                if session is not None:
                    session.deliver(message)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            reason = f"the {self.pool.engine} worker sent an unreadable line: {exc}"
        finally:
            code = None
            if self.process.returncode is None:
                with contextlib.suppress(TimeoutError):
                    code = await asyncio.wait_for(self.process.wait(), 2)
            else:
                code = self.process.returncode
            await self.fail(f"{reason} (exit code {code})")

    async def watch(self) -> None:
        limit = self.pool.watchdog_seconds
        while not self.failed:
            await asyncio.sleep(min(1.0, limit / 4))
            owed = any(s.unanswered_samples() > 0 for s in self.sessions.values())
            if owed and time.monotonic() - self.last_output > limit:
                await self.fail(
                    f"the {self.pool.engine} worker answered nothing for {limit:g} s and was killed"
                )

    async def fail(self, reason: str) -> None:
        if self.failed:
            return
        self.failed = reason
        self.ready.set()
        self.pool.forget(self)
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        sessions = list(self.sessions.values())
        self.sessions.clear()
        if sessions:
            logger.error("%s worker %d failed: %s", self.pool.engine, self.number, reason)
        for session in sessions:
            session.crash(reason)
        current = asyncio.current_task()
        for task in (self.reader, self.watchdog):
            if task is not None and task is not current:
                task.cancel()
        await self.reap()

    async def reap(self) -> None:
        """Close the pipes and wait for the process to go, so no transport outlives it."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 2)

    async def stop(self) -> None:
        """Stop a worker with no sessions left: end of input, then wait for it to exit."""
        if self.process is None or self.process.returncode is not None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
        await self.fail("stopped")


class PooledSession(QueuedSession):
    """A stream's sessions in one worker; results come back through the worker's reader."""

    def __init__(self, pool: WorkerPool, config: SessionConfig) -> None:
        super().__init__(config)
        self.pool = pool
        self.ident = next(pool.idents)
        self.worker: PoolWorker | None = None
        self.samples_sent = 0
        self.samples_done = 0
        self.closing = False
        self.finished = False
        self.max_backlog = pool.backlog_seconds * config.sample_rate

    async def start(self) -> None:
        self.worker = await self.pool.assign(self)
        options = {"sample_rate": self.config.sample_rate, **self.pool.session_options(self.config)}
        self.worker.send(self.ident, OPEN, json.dumps(options).encode())

    def unanswered_samples(self) -> int:
        return self.samples_sent - self.samples_done

    async def feed(self, pcm: bytes) -> None:
        if self.worker is None or self.closing:
            return
        if self.unanswered_samples() > self.max_backlog:
            # The worker cannot keep up: end this session so the gap is marked and a new
            # session starts on current audio rather than queueing without bound.
            await self.worker.fail(
                f"the {self.pool.engine} worker fell more than {self.pool.backlog_seconds} s behind"
            )
            return
        self.samples_sent += len(pcm) // 2
        self.worker.send(self.ident, AUDIO, pcm)

    def deliver(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "progress":
            self.samples_done = int(message.get("samples", 0))
        elif kind == "interim":
            self.queue.put_nowait(_recognition(message, final=False))
        elif kind == "final":
            self.queue.put_nowait(_recognition(message, final=True))
        elif kind == "closed":
            self.finish()
            self.queue.put_nowait(END_OF_RESULTS)
        elif kind == "error":
            self.crash(str(message.get("reason", "the decoder failed")))

    def finish(self) -> None:
        self.finished = True
        if self.worker is not None:
            self.worker.sessions.pop(self.ident, None)
            self.pool.release(self.worker)

    def crash(self, reason: str) -> None:
        if self.finished:
            return
        self.finished = True
        if self.worker is not None:
            self.worker.sessions.pop(self.ident, None)
        self.queue.put_nowait(RecognizerError(reason))

    async def close(self) -> None:
        if self.closing or self.worker is None:
            return
        self.closing = True
        if self.finished:
            return
        try:
            self.worker.send(self.ident, CLOSE)
        except RecognizerError as error:
            self.crash(error.reason)

    async def abort(self) -> None:
        if self.worker is None or self.finished:
            return
        self.closing = True
        with contextlib.suppress(RecognizerError):
            self.worker.send(self.ident, ABORT)
        self.finish()
        self.queue.put_nowait(END_OF_RESULTS)


class WorkerPool(Recognizer):
    """A pool of decoder processes running ``worker_module``, bound to the running event loop.

    Subclasses set ``name`` (the backend), ``engine`` (what log lines and error reasons call
    the decoder) and ``worker_module``, and may override ``worker_options`` (JSON given to
    every worker on its command line) and ``session_options`` (sent with each ``OPEN``).
    """

    engine = ""
    worker_module = ""

    def __init__(
        self,
        *,
        workers: int = 0,
        backlog_seconds: int = 20,
        watchdog_seconds: float = WATCHDOG_SECONDS,
    ) -> None:
        self.size = workers or os.cpu_count() or 1
        self.watchdog_seconds = watchdog_seconds
        self.backlog_seconds = backlog_seconds
        self.workers: list[PoolWorker] = []
        self.starting: dict[int, asyncio.Task[PoolWorker]] = {}
        self.numbers = itertools.count(1)
        self.idents = itertools.count(1)
        self.loop: asyncio.AbstractEventLoop | None = None

    def worker_options(self) -> dict[str, Any]:
        """What every worker process starts with (its model, its threads)."""
        return {}

    def session_options(self, config: SessionConfig) -> dict[str, Any]:
        """What a session's worker is told when it opens, besides the sample rate."""
        return {}

    def open(self, config: SessionConfig) -> PooledSession:
        return PooledSession(self, config)

    async def assign(self, session: PooledSession) -> PoolWorker:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            # Pipes belong to the loop that made them (a test run starts many loops).
            self.workers = []
            self.loop = loop
        live = [w for w in self.workers if not w.failed]
        if len(live) < self.size:
            worker = PoolWorker(self, next(self.numbers))
            self.workers.append(worker)
            await worker.start()
        else:
            worker = min(live, key=lambda w: len(w.sessions))
            await worker.ready.wait()
            if worker.failed:
                raise RecognizerError(worker.failed)
        worker.sessions[session.ident] = session
        return worker

    def forget(self, worker: PoolWorker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)

    def release(self, worker: PoolWorker) -> None:
        """A session ended normally; idle workers stay up for the next call."""

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None and not w.failed]

    async def aclose(self) -> None:
        workers, self.workers = self.workers, []
        for worker in workers:
            await worker.stop()
