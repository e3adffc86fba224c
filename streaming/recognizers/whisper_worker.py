"""A Whisper decoder process: many recognition sessions, one model, one stdin, one stdout.

Run as ``python -m streaming.recognizers.whisper_worker '{"model": dir, "sha256": hex,
"language": "en"}'``; ``streaming.recognizers.whisper`` starts and feeds these workers through
the pipe protocol of ``streaming.recognizers.worker``. The worker verifies the model's hash,
loads it once, and decodes on one thread. The ``OPEN`` options are
``{"sample_rate": 16000 | 24000, "interim_seconds": 2.0}``.

Each session cuts its audio into utterances with pocketsphinx's voice-activity endpointer
(the sphinx worker's), keeping the audio itself: an utterance is decoded from
``PRE_ROLL_SECONDS`` before the detected start (the endpointer starts late on phone audio
and would clip first words) to just after its end, cut at ``MAX_UTTERANCE_SECONDS``. While
an utterance lasts, an interim goes out every ``MARKER_SECONDS`` of speech (speech in
progress is talk); once ``interim_seconds`` of new speech have arrived since the last decode,
the utterance so far is re-decoded greedily and sent as an interim with text. Those decodes
wait until no audio is queued for the worker, so they never delay a final, and a worker that
falls behind sheds them; the interval doubles after each decode that heard nothing (noise).
The final is decoded with beam search and aligned for word times and word confidences.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from streaming.recognizers.whisper_model import Transcript
from streaming.recognizers.worker import MODEL_RATE, Resampler, Stream, Worker, serve, ticks

PRE_ROLL_SECONDS = 0.3
POST_ROLL_SECONDS = 0.2  # the endpointer's end comes ~0.3 s after it: that audio is here
MAX_UTTERANCE_SECONDS = 29.0  # Whisper's window is 30 s; longer speech is cut
MARKER_SECONDS = 0.5
FINAL_BEAM = 5
INTERIM_BEAM = 1
IDLE_HISTORY_SECONDS = 1.0  # audio kept while nobody speaks: enough for the pre-roll
# The endpointer decides an utterance has ended about 0.45 s after its last word. When its
# voice-activity detector has heard this many non-speech frames (30 ms each) in a row, the
# final is decoded ahead, and used if the endpointer then ends the utterance with no speech
# in between: the decode overlaps the endpointer's wait instead of following it.
SPECULATE_FRAMES = 5


@dataclass(kw_only=True)
class Session(Stream):
    """One stream: its endpointer, its resampler and the audio of the utterance under way."""

    interim_seconds: float
    audio: bytearray = field(default_factory=bytearray)  # recent 16 kHz audio
    audio_start: int = 0  # 16 kHz sample index of audio[0]
    in_utterance: bool = False
    start: float = 0.0  # the utterance's start, seconds on the 16 kHz timeline
    speech_until: float = 0.0  # end of the last speech frame the endpointer passed
    marked_at: float = 0.0  # speech_until at the last interim
    decoded_at: float = 0.0  # speech_until at the last interim decode
    interim_gap: float = 0.0  # speech between interim decodes: doubles while they hear nothing
    vad: Any = None  # the endpointer's kind of voice-activity detector, frame by frame
    quiet_frames: int = 0  # non-speech frames in a row, as the audio arrives
    # A final decoded ahead: (audio up to, where that audio starts, what was heard).
    ahead: tuple[float, float, Transcript | None] | None = None
    shown: str = ""  # text of the last interim that carried text

    def clip(self, begin: float, end: float) -> tuple[float, np.ndarray]:
        """The audio between two times (clamped to what is kept), as float32, and where it
        starts."""
        first = max(self.audio_start, round(begin * MODEL_RATE))
        last = min(self.audio_start + len(self.audio) // 2, round(end * MODEL_RATE))
        pcm = bytes(self.audio[(first - self.audio_start) * 2 : (last - self.audio_start) * 2])
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        return first / MODEL_RATE, samples

    def forget_before(self, seconds: float) -> None:
        drop = round(seconds * MODEL_RATE) - self.audio_start
        if drop > 0:
            del self.audio[: drop * 2]
            self.audio_start += drop


class WhisperWorker(Worker[Session]):
    def __init__(self, out: BinaryIO, options: dict[str, Any]) -> None:
        super().__init__(out)
        import pocketsphinx  # type: ignore[import-untyped]  # for its endpointer only

        from streaming.recognizers.whisper import verify_model
        from streaming.recognizers.whisper_model import WhisperModel

        model_dir = Path(options["model"])
        verify_model(model_dir, str(options["sha256"]))
        self.model = WhisperModel(model_dir, language=str(options.get("language", "en")))
        self.ps = pocketsphinx
        # Sessions whose interim decode is due, oldest first: decoded only while no audio
        # waits (``idle``), so interims never hold up a final and a busy worker sheds them.
        self.interims_due: dict[int, None] = {}

    def open(self, ident: int, options: dict[str, Any]) -> None:
        rate = int(options.get("sample_rate", MODEL_RATE))
        endpointer = self.ps.Endpointer(window=0.3, ratio=0.9, sample_rate=MODEL_RATE)
        self.sessions[ident] = Session(
            ident=ident,
            sample_rate=rate,
            interim_seconds=float(options.get("interim_seconds", 2.0)),
            endpointer=endpointer,
            resample=Resampler(rate),
            vad=self.ps.Vad(self.ps.Vad.LOOSE, MODEL_RATE, endpointer.frame_length),
        )

    def frame(self, session: Session, frame: bytes) -> None:
        session.audio += frame
        if session.vad.is_speech(frame):
            session.quiet_frames = 0
            session.ahead = None  # speech again: what was decoded ahead is not the end
        else:
            session.quiet_frames += 1
        self.step(session, session.endpointer.process(frame))
        if (
            session.in_utterance
            and session.quiet_frames == SPECULATE_FRAMES
            and session.ahead is None
        ):
            until = (session.audio_start + len(session.audio) // 2) / MODEL_RATE
            begin, audio = session.clip(session.start - PRE_ROLL_SECONDS, until)
            session.ahead = (until, begin, self.heard(audio))
        if not session.in_utterance:
            now = (session.audio_start + len(session.audio) // 2) / MODEL_RATE
            session.forget_before(now - IDLE_HISTORY_SECONDS)

    def step(self, session: Session, speech: bytes | None) -> None:
        endpointer = session.endpointer
        if speech is None:
            return
        if not session.in_utterance:
            session.in_utterance = True
            # After a cut at MAX_UTTERANCE_SECONDS the endpointer is still in the same speech.
            session.start = max(endpointer.speech_start, session.speech_until)
            session.speech_until = session.start
            session.marked_at = session.decoded_at = session.start
            session.interim_gap = session.interim_seconds
            session.shown = ""
        session.speech_until += len(speech) / 2 / MODEL_RATE
        if not endpointer.in_speech:
            self.finish(session, endpointer.speech_end)
        elif session.speech_until - session.start >= MAX_UTTERANCE_SECONDS:
            self.finish(session, session.speech_until, post_roll=0.0)
        elif session.speech_until - session.marked_at >= MARKER_SECONDS:
            self.interim(session)

    def interim(self, session: Session) -> None:
        session.marked_at = session.speech_until
        due = session.speech_until - session.decoded_at >= session.interim_gap
        if session.interim_seconds > 0 and due:
            self.interims_due[session.ident] = None
        # Sent even with nothing new to show (empty text): speech in progress is talk.
        self.emit_interim(session, "")

    def emit_interim(self, session: Session, text: str) -> None:
        self.emit(
            {
                "s": session.ident,
                "t": "interim",
                "text": text,
                "offset": ticks(session.start),
                "duration": ticks(session.speech_until - session.start),
            }
        )

    def idle(self) -> bool:
        """Decode the oldest due interim: the utterance so far, greedily."""
        while self.interims_due:
            ident = next(iter(self.interims_due))
            del self.interims_due[ident]
            session = self.sessions.get(ident)
            if session is None or not session.in_utterance:
                continue
            session.decoded_at = session.speech_until
            _, audio = session.clip(session.start - PRE_ROLL_SECONDS, session.speech_until)
            heard = self.model.transcribe(audio, beam_size=INTERIM_BEAM, words=False)
            # Noise the endpointer takes for speech decodes to nothing: back off, so a noisy
            # line does not cost a decode of up to 30 s of audio every interim.
            session.interim_gap = session.interim_seconds if heard else session.interim_gap * 2
            if heard is not None and heard.text != session.shown:
                session.shown = heard.text
                self.emit_interim(session, heard.text)
            return True
        return False

    def finish(self, session: Session, end: float, post_roll: float = POST_ROLL_SECONDS) -> None:
        session.in_utterance = False
        self.interims_due.pop(session.ident, None)
        start = session.start
        session.speech_until = end
        ahead, session.ahead = session.ahead, None
        if ahead is not None and ahead[0] >= end:
            _, begin, heard = ahead
        else:
            begin, audio = session.clip(start - PRE_ROLL_SECONDS, end + post_roll)
            heard = self.heard(audio)
        session.forget_before(end)
        if heard is None:
            return
        words: list[dict[str, Any]] = []
        for word in heard.words:
            # Word times come from attention, coarse at the edges: keep them in the utterance.
            word_start = min(max(begin + word.start, start), end)
            word_end = min(max(begin + word.end, word_start), end)
            words.append(
                {
                    "text": word.text,
                    "offset": ticks(word_start),
                    "duration": ticks(word_end - word_start),
                    "confidence": round(min(1.0, max(0.0, word.probability)), 4),
                }
            )
        self.emit(
            {
                "s": session.ident,
                "t": "final",
                "text": heard.text,
                "offset": ticks(start),
                "duration": ticks(max(0.0, end - start)),
                "confidence": round(sum(w["confidence"] for w in words) / len(words), 4),
                "words": words,
            }
        )

    def heard(self, audio: np.ndarray) -> Transcript | None:
        return self.model.transcribe(audio, beam_size=FINAL_BEAM, words=True)

    def end(self, session: Session, tail: bytes, speech: bytes | None) -> None:
        session.audio += tail
        if speech is not None:
            self.step(session, speech)
        if session.in_utterance:
            self.finish(session, session.speech_until, post_roll=0.0)


if __name__ == "__main__":
    sys.exit(serve(WhisperWorker, "whisper"))
