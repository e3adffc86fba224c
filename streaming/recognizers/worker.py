"""What every recognizer worker process shares: the pipe protocol and the read loop.

A worker (``sphinx_worker``, ``whisper_worker``) is started by ``streaming.recognizers.pool``
as ``python -m <module> [options JSON]``, holds many recognition sessions, and speaks this
protocol on its stdin and stdout:

Input (binary, from the server): repeated ``header + payload`` where the header is
``struct "<IBI"``: session id, operation, payload length.

* ``OPEN``: payload is JSON ``{"sample_rate": 16000 | 24000, ...backend options}``
* ``AUDIO``: payload is 16-bit little-endian mono PCM at the session's rate
* ``CLOSE``: end of audio; the session flushes its last utterance, answers ``closed``, is freed
* ``ABORT``: the session is freed without flushing

Output (to the server): one JSON object per line. First ``{"t": "ready"}`` once the decoder is
loaded, or ``{"t": "fatal", "reason": ...}`` if it cannot be (the worker then exits). Then
``{"s": session id, "t": type, ...}``: ``interim`` and ``final`` results (text, offset and
duration in ticks from the session's first sample, words, confidence), ``progress`` (samples
decoded so far, at least once a second of audio), ``closed`` and ``error``. Nothing else is
written to stdout; logs go to stderr.

Decoders hold the GIL while they decode, so decoding in a thread of the server would stall
its event loop; a process keeps ingest responsive, uses another core, and if it crashes it
takes only its own sessions with it.
"""

from __future__ import annotations

import abc
import json
import os
import select
import signal
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Generic, TypeVar

import numpy as np

from streaming.units import TICKS_PER_SECOND

HEADER = struct.Struct("<IBI")
OPEN, AUDIO, CLOSE, ABORT = 1, 2, 3, 4
MAX_PAYLOAD = 16 * 1024 * 1024
MODEL_RATE = 16000  # both backends' models take 16 kHz audio


class Resampler:
    """Streaming linear-interpolation resampler to 16 kHz, continuous across chunks.

    Linear interpolation is enough for recognizers whose features stop at 8 kHz; the
    fractional read position and the last input sample carry over between chunks, so chunk
    boundaries leave no seams.
    """

    def __init__(self, source_rate: int) -> None:
        self.step = source_rate / MODEL_RATE
        self.position = 0.0  # next output sample, in input samples relative to ``previous``
        self.previous: np.ndarray = np.zeros(0, dtype=np.float32)

    def __call__(self, pcm: bytes) -> bytes:
        if self.step == 1.0:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        data = np.concatenate((self.previous, samples))
        if data.size < 2:
            self.previous = data
            return b""
        last = data.size - 1
        count = int(np.floor((last - self.position) / self.step)) + 1
        if count <= 0:
            self.previous = data[-1:]
            self.position -= data.size - 1
            return b""
        points = self.position + self.step * np.arange(count)
        out = np.interp(points, np.arange(data.size), data)
        self.position = points[-1] + self.step - (data.size - 1)
        self.previous = data[-1:]
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


def end_of_stream(endpointer: Any, tail: bytes) -> bytes | None:
    """Flush pocketsphinx's endpointer with the last partial frame.

    Its ``end_stream`` fails with IndexError on an empty buffer while speech is in progress
    (pocketsphinx 5.1.1), as it is when a stream ends mid-word on a frame boundary: one
    silent sample stands in for the missing tail.
    """
    if not tail and not endpointer.in_speech:
        return None
    return endpointer.end_stream(tail or bytes(2))


def ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


@dataclass(kw_only=True)
class Stream:
    """What every session of a worker has: its audio cut into 16 kHz endpointer frames."""

    ident: int
    sample_rate: int
    endpointer: Any
    resample: Resampler
    pending: bytearray = field(default_factory=bytearray)  # 16 kHz, not a full frame yet
    samples_in: int = 0  # input samples received (at the session's own rate)
    reported_samples: int = 0


S = TypeVar("S", bound=Stream)


class Worker(abc.ABC, Generic[S]):
    """A decoder process's sessions; ``serve`` calls ``handle`` for each message."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sessions: dict[int, S] = {}

    def emit(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    @abc.abstractmethod
    def open(self, ident: int, options: dict[str, Any]) -> None:
        """Add a session (``self.sessions[ident]``) for the ``OPEN`` options."""

    @abc.abstractmethod
    def frame(self, session: S, frame: bytes) -> None:
        """Take one endpointer frame of 16 kHz audio."""

    @abc.abstractmethod
    def end(self, session: S, tail: bytes, speech: bytes | None) -> None:
        """The stream ended: ``tail`` is its last partial frame, ``speech`` what the
        endpointer still held (None: nothing); flush the utterance under way."""

    def audio(self, ident: int, pcm: bytes) -> None:
        session = self.sessions.get(ident)
        if session is None:
            return
        session.samples_in += len(pcm) // 2
        session.pending += session.resample(pcm)
        size = session.endpointer.frame_bytes
        while len(session.pending) >= size:
            frame = bytes(session.pending[:size])
            del session.pending[:size]
            self.frame(session, frame)
        if session.samples_in - session.reported_samples >= session.sample_rate:
            session.reported_samples = session.samples_in
            self.emit({"s": ident, "t": "progress", "samples": session.samples_in})

    def close(self, ident: int) -> None:
        session = self.sessions.pop(ident, None)
        if session is not None:
            tail = bytes(session.pending[: session.endpointer.frame_bytes])
            self.end(session, tail, end_of_stream(session.endpointer, tail))
            self.emit({"s": ident, "t": "progress", "samples": session.samples_in})
        self.emit({"s": ident, "t": "closed"})

    def drop(self, ident: int) -> None:
        self.sessions.pop(ident, None)

    def idle(self) -> bool:
        """Do one piece of deferred work while no message waits; False when there is none."""
        return False

    def handle(self, ident: int, op: int, payload: bytes) -> None:
        if op == OPEN:
            self.open(ident, json.loads(payload) if payload else {})
        elif op == AUDIO:
            self.audio(ident, payload)
        elif op == CLOSE:
            self.close(ident)
        elif op == ABORT:
            self.drop(ident)
        else:
            raise ValueError(f"unknown operation {op}")


class Input:
    """The server's messages on a file descriptor, read in large chunks; it can tell without
    blocking whether another message is already waiting."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def waiting(self) -> bool:
        if len(self.buffer) >= HEADER.size:
            return True
        readable, _, _ = select.select([self.fd], [], [], 0)
        return bool(readable)

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            chunk = os.read(self.fd, max(1 << 16, size - len(self.buffer)))
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def next(self) -> tuple[int, int, bytes] | None:
        """The next message (blocking), or None at end of input; ValueError if oversized."""
        if not self._fill(HEADER.size):
            return None
        ident, op, length = HEADER.unpack_from(self.buffer)
        if length > MAX_PAYLOAD:
            raise ValueError(f"payload of {length} bytes refused")
        if not self._fill(HEADER.size + length):
            return None
        payload = bytes(self.buffer[HEADER.size : HEADER.size + length])
        del self.buffer[: HEADER.size + length]
        return ident, op, payload


def serve(make_worker: Callable[[BinaryIO, dict[str, Any]], Worker[Any]], name: str) -> int:
    """Run a worker process: load the decoder, then answer messages until stdin closes.

    Between messages, when none is waiting, the worker does deferred work (``idle``): what
    can wait, such as interim results, never delays audio that is already queued.
    """
    # The server decides when a worker stops (it closes stdin); Ctrl-C in a terminal reaches
    # the whole process group and must not cut a decode short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = Input(sys.stdin.fileno())
    stdout = sys.stdout.buffer
    # Anything a library prints must not corrupt the result stream.
    sys.stdout = sys.stderr
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    try:
        worker = make_worker(stdout, options)
    except Exception as exc:  # a model that cannot load: say why, for the server's log
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        stdout.write(json.dumps({"t": "fatal", "reason": reason}).encode() + b"\n")
        stdout.flush()
        return 3
    stdout.write(b'{"t":"ready","pid":%d}\n' % os.getpid())
    stdout.flush()
    while True:
        if not stdin.waiting() and worker.idle():
            stdout.flush()
            continue
        try:
            message = stdin.next()
        except ValueError as error:
            print(f"{name} worker: {error}", file=sys.stderr)
            return 2
        if message is None:
            return 0
        ident, op, payload = message
        try:
            worker.handle(ident, op, payload)
        except Exception as exc:  # one bad session must not take the others down
            worker.drop(ident)
            worker.emit({"s": ident, "t": "error", "reason": f"{type(exc).__name__}: {exc}"})
        stdout.flush()
