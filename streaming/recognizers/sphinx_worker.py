"""A pocketsphinx decoder process: many recognition sessions, one stdin, one stdout.

Run as ``python -m streaming.recognizers.sphinx_worker``; ``streaming.recognizers.sphinx``
starts and feeds these workers. Pocketsphinx holds the GIL while it decodes, so decoding in a
thread of the server would stall the event loop; a process keeps ingest responsive, uses
another core, and if it crashes it takes only its own sessions with it.

Input (binary, from the server): repeated ``header + payload`` where the header is
``struct "<IBI"``: session id, operation, payload length.

* ``OPEN``: payload is JSON ``{"sample_rate": 16000 | 24000, "interim_ms": 500}``
* ``AUDIO``: payload is 16-bit little-endian mono PCM at the session's rate
* ``CLOSE``: end of audio; the session flushes its last utterance, answers ``closed``, is freed
* ``ABORT``: the session is freed without flushing

Output (to the server): one JSON object per line, ``{"s": session id, "t": type, ...}``:
``interim`` and ``final`` results (text, offset and duration in ticks from the session's first
sample, words, confidence), ``progress`` (samples decoded so far, at least once a second of
audio), ``closed`` and ``error``. Nothing else is written to stdout; logs go to stderr.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from streaming.units import TICKS_PER_SECOND

HEADER = struct.Struct("<IBI")
OPEN, AUDIO, CLOSE, ABORT = 1, 2, 3, 4
MAX_PAYLOAD = 16 * 1024 * 1024
MODEL_RATE = 16000  # the bundled en-US acoustic model is 16 kHz
DECODER_FRAMES_PER_SECOND = 100  # pocketsphinx's frame rate (10 ms frames)
MAX_UTTERANCE_SECONDS = 30.0  # a longer stretch of speech is cut so results keep coming
FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "<unk>"}


class Resampler:
    """Streaming linear-interpolation resampler to 16 kHz, continuous across chunks.

    Linear interpolation is enough for a recognizer whose features stop at 8 kHz; the
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


@dataclass
class Session:
    """One stream: an endpointer cutting speech out, a decoder turning it into words."""

    ident: int
    sample_rate: int
    interim_ms: int
    decoder: Any
    endpointer: Any
    resample: Resampler
    pending: bytearray = field(default_factory=bytearray)
    samples_in: int = 0  # input samples received (at the session's own rate)
    frames_done: int = 0  # endpointer frames processed
    in_utterance: bool = False
    utterance_start: float = 0.0  # seconds on the 16 kHz timeline
    speech_seconds: float = 0.0
    last_interim_at: float = 0.0
    last_interim: str = ""
    reported_samples: int = 0


class Worker:
    def __init__(self, out: BinaryIO) -> None:
        import pocketsphinx  # type: ignore[import-untyped]  # the parent never loads it

        self.ps = pocketsphinx
        pocketsphinx.set_loglevel("FATAL")
        self.out = out
        self.sessions: dict[int, Session] = {}

    def emit(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def open(self, ident: int, payload: bytes) -> None:
        options = json.loads(payload) if payload else {}
        rate = int(options.get("sample_rate", MODEL_RATE))
        decoder = self.ps.Decoder(samprate=MODEL_RATE, loglevel="FATAL")
        endpointer = self.ps.Endpointer(
            window=float(options.get("window", 0.3)),
            ratio=float(options.get("ratio", 0.9)),
            sample_rate=MODEL_RATE,
        )
        self.sessions[ident] = Session(
            ident=ident,
            sample_rate=rate,
            interim_ms=int(options.get("interim_ms", 500)),
            decoder=decoder,
            endpointer=endpointer,
            resample=Resampler(rate),
        )

    def audio(self, session: Session, pcm: bytes) -> None:
        session.samples_in += len(pcm) // 2
        session.pending += session.resample(pcm)
        size = session.endpointer.frame_bytes
        while len(session.pending) >= size:
            frame = bytes(session.pending[:size])
            del session.pending[:size]
            self.step(session, session.endpointer.process(frame))
        if session.samples_in - session.reported_samples >= session.sample_rate:
            session.reported_samples = session.samples_in
            self.emit({"s": session.ident, "t": "progress", "samples": session.samples_in})

    def step(self, session: Session, speech: bytes | None) -> None:
        endpointer, decoder = session.endpointer, session.decoder
        session.frames_done += 1
        if speech is None:
            return
        if not session.in_utterance:
            session.in_utterance = True
            session.utterance_start = endpointer.speech_start
            session.speech_seconds = 0.0
            session.last_interim_at = 0.0
            session.last_interim = ""
            decoder.start_utt()
        decoder.process_raw(speech, False, False)
        session.speech_seconds += len(speech) / 2 / MODEL_RATE
        if not endpointer.in_speech:
            self.finish(session, endpointer.speech_end)
        elif session.speech_seconds >= MAX_UTTERANCE_SECONDS:
            self.finish(session, session.utterance_start + session.speech_seconds)
        elif session.speech_seconds - session.last_interim_at >= session.interim_ms / 1000:
            session.last_interim_at = session.speech_seconds
            hyp = decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            # Sent even with nothing new to show (empty text): speech in progress is talk.
            shown = text if text != session.last_interim else ""
            session.last_interim = text or session.last_interim
            self.emit(
                {
                    "s": session.ident,
                    "t": "interim",
                    "text": shown,
                    "offset": _ticks(session.utterance_start),
                    "duration": _ticks(session.speech_seconds),
                }
            )

    def finish(self, session: Session, end: float) -> None:
        decoder = session.decoder
        decoder.end_utt()
        session.in_utterance = False
        hyp = decoder.hyp()
        start = session.utterance_start
        words = []
        for segment in decoder.seg():
            word = segment.word
            if word in FILLERS or word.startswith("++"):
                continue
            if word.endswith(")") and "(" in word:
                word = word[: word.index("(")]  # alternative pronunciations: "good(2)"
            words.append(
                {
                    "text": word,
                    "offset": _ticks(start + segment.start_frame / DECODER_FRAMES_PER_SECOND),
                    "duration": _ticks(
                        (segment.end_frame - segment.start_frame + 1) / DECODER_FRAMES_PER_SECOND
                    ),
                    "confidence": round(min(1.0, max(0.0, float(segment.prob))), 4),
                }
            )
        text = " ".join(w["text"] for w in words)
        if not text or hyp is None:
            return
        confidence = sum(w["confidence"] for w in words) / len(words)
        self.emit(
            {
                "s": session.ident,
                "t": "final",
                "text": text,
                "offset": _ticks(start),
                "duration": _ticks(max(0.0, end - start)),
                "confidence": round(confidence, 4),
                "words": words,
            }
        )

    def close(self, ident: int) -> None:
        session = self.sessions.pop(ident, None)
        if session is None:
            self.emit({"s": ident, "t": "closed"})
            return
        endpointer = session.endpointer
        if session.pending or session.in_utterance:
            tail = bytes(session.pending[: endpointer.frame_bytes])
            speech = endpointer.end_stream(tail) if (tail or endpointer.in_speech) else None
            if speech is not None:
                self.step(session, speech)
            if session.in_utterance:
                self.finish(session, session.utterance_start + session.speech_seconds)
        self.emit({"s": ident, "t": "progress", "samples": session.samples_in})
        self.emit({"s": ident, "t": "closed"})

    def handle(self, ident: int, op: int, payload: bytes) -> None:
        if op == OPEN:
            self.open(ident, payload)
        elif op == AUDIO:
            session = self.sessions.get(ident)
            if session is not None:
                self.audio(session, payload)
        elif op == CLOSE:
            self.close(ident)
        elif op == ABORT:
            self.sessions.pop(ident, None)
        else:
            raise ValueError(f"unknown operation {op}")


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def main() -> int:
    # The server decides when a worker stops (it closes stdin); Ctrl-C in a terminal reaches
    # the whole process group and must not cut a decode short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    # Anything a library prints must not corrupt the result stream.
    sys.stdout = sys.stderr
    worker = Worker(stdout)
    stdout.write(b'{"t":"ready","pid":%d}\n' % os.getpid())
    stdout.flush()
    while True:
        header = _read_exactly(stdin, HEADER.size)
        if header is None:
            return 0
        ident, op, length = HEADER.unpack(header)
        if length > MAX_PAYLOAD:
            print(f"sphinx worker: payload of {length} bytes refused", file=sys.stderr)
            return 2
        payload = _read_exactly(stdin, length) if length else b""
        if payload is None:
            return 0
        try:
            worker.handle(ident, op, payload)
        except Exception as exc:  # one bad session must not take the others down
            worker.sessions.pop(ident, None)
            worker.emit({"s": ident, "t": "error", "reason": f"{type(exc).__name__}: {exc}"})
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
