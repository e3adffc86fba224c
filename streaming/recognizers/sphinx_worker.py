"""A pocketsphinx decoder process: many recognition sessions, one stdin, one stdout.

Run as ``python -m streaming.recognizers.sphinx_worker``; ``streaming.recognizers.sphinx``
starts and feeds these workers through the pipe protocol of ``streaming.recognizers.worker``.
The ``OPEN`` options are ``{"sample_rate": 16000 | 24000, "interim_ms": 500}``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, BinaryIO

from streaming.recognizers.worker import MODEL_RATE, Resampler, Stream, Worker, serve, ticks

DECODER_FRAMES_PER_SECOND = 100  # pocketsphinx's frame rate (10 ms frames)
MAX_UTTERANCE_SECONDS = 30.0  # a longer stretch of speech is cut so results keep coming
FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "<unk>"}


@dataclass(kw_only=True)
class Session(Stream):
    """One stream: an endpointer cutting speech out, a decoder turning it into words."""

    interim_ms: int
    decoder: Any
    in_utterance: bool = False
    utterance_start: float = 0.0  # seconds on the 16 kHz timeline
    speech_seconds: float = 0.0
    last_interim_at: float = 0.0
    last_interim: str = ""


class SphinxWorker(Worker[Session]):
    def __init__(self, out: BinaryIO, options: dict[str, Any]) -> None:
        super().__init__(out)
        import pocketsphinx  # type: ignore[import-untyped]  # the parent never loads it

        self.ps = pocketsphinx
        pocketsphinx.set_loglevel("FATAL")

    def open(self, ident: int, options: dict[str, Any]) -> None:
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

    def frame(self, session: Session, frame: bytes) -> None:
        self.step(session, session.endpointer.process(frame))

    def step(self, session: Session, speech: bytes | None) -> None:
        endpointer, decoder = session.endpointer, session.decoder
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
                    "offset": ticks(session.utterance_start),
                    "duration": ticks(session.speech_seconds),
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
                    "offset": ticks(start + segment.start_frame / DECODER_FRAMES_PER_SECOND),
                    "duration": ticks(
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
                "offset": ticks(start),
                "duration": ticks(max(0.0, end - start)),
                "confidence": round(confidence, 4),
                "words": words,
            }
        )

    def end(self, session: Session, tail: bytes, speech: bytes | None) -> None:
        if speech is not None:
            self.step(session, speech)
        if session.in_utterance:
            self.finish(session, session.utterance_start + session.speech_seconds)


if __name__ == "__main__":
    sys.exit(serve(SphinxWorker, "sphinx"))
