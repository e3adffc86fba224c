"""A scripted recognizer for tests: deterministic results from the audio's loudness.

It runs no model. Each stretch of loud audio (frames above ``threshold_db``) is one
utterance; while it lasts, an interim result is emitted every ``interim_every`` frames, and
when it ends (``silence_frames`` quiet frames) a final result follows. The text of the n-th
utterance of a session is ``script[n]`` when a script is given (``SessionConfig.options``
``"script"``: phrases separated by ``|``), else ``"utterance n"``. With the option
``"fail_after"`` set to N, the session fails after its N-th final, as a crashed backend would.

Because results depend only on the audio, tests can assert exactly what is stored.
"""

from __future__ import annotations

from streaming.levels import frame_level_dbfs
from streaming.recognizers.base import (
    END_OF_RESULTS,
    QueuedSession,
    Recognition,
    RecognizedWord,
    Recognizer,
    RecognizerError,
    SessionConfig,
)
from streaming.units import TICKS_PER_SECOND


class FakeSession(QueuedSession):
    def __init__(self, recognizer: FakeRecognizer, config: SessionConfig) -> None:
        super().__init__(config)
        self.recognizer = recognizer
        self.samples = 0
        self.start_sample: int | None = None
        self.end_sample = 0
        self.quiet = 0
        self.loud = 0
        self.count = 0
        self.closed = False
        options = config.options
        self.script = [p.strip() for p in options.get("script", "").split("|") if p.strip()]
        self.fail_after = int(options.get("fail_after", "0") or 0)

    async def start(self) -> None:
        self.recognizer.opened.append(self)

    def ticks(self, samples: int) -> int:
        return samples * TICKS_PER_SECOND // self.config.sample_rate

    async def feed(self, pcm: bytes) -> None:
        if self.closed:
            return
        level = frame_level_dbfs(pcm)
        begin = self.samples
        self.samples += len(pcm) // 2
        if level > self.recognizer.threshold_db:
            if self.start_sample is None:
                self.start_sample = begin
                self.loud = 0
            self.loud += 1
            self.quiet = 0
            self.end_sample = self.samples
            if self.loud % self.recognizer.interim_every == 0:
                self.queue.put_nowait(self.result(final=False))
        elif self.start_sample is not None:
            self.quiet += 1
            if self.quiet >= self.recognizer.silence_frames:
                self.finish()

    def text(self) -> str:
        if self.count < len(self.script):
            return self.script[self.count]
        return f"utterance {self.count + 1}"

    def result(self, *, final: bool) -> Recognition:
        assert self.start_sample is not None
        offset = self.ticks(self.start_sample)
        duration = self.ticks(self.end_sample - self.start_sample)
        words = self.text().split()
        step = duration // max(len(words), 1)
        return Recognition(
            text=" ".join(words) if final else " ".join(words[: max(1, len(words) // 2)]),
            final=final,
            offset=offset,
            duration=duration,
            confidence=0.9 if final else None,
            words=tuple(
                RecognizedWord(w, offset + i * step, step, 0.9) for i, w in enumerate(words)
            )
            if final
            else (),
            speaker="Guest-1" if self.config.diarize else None,
        )

    def finish(self) -> None:
        self.queue.put_nowait(self.result(final=True))
        self.count += 1
        self.start_sample = None
        self.quiet = 0
        if self.fail_after and self.count >= self.fail_after:
            self.closed = True
            self.queue.put_nowait(RecognizerError(f"scripted failure after {self.count} finals"))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.start_sample is not None:
            self.finish()
        self.queue.put_nowait(END_OF_RESULTS)

    async def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(END_OF_RESULTS)


class FakeRecognizer(Recognizer):
    name = "fake"

    def __init__(
        self,
        *,
        threshold_db: float = -40.0,
        interim_every: int = 10,
        silence_frames: int = 10,
        options: dict[str, str] | None = None,
    ) -> None:
        self.threshold_db = threshold_db
        self.interim_every = interim_every
        self.silence_frames = silence_frames
        self.options = options or {}
        self.opened: list[FakeSession] = []

    def open(self, config: SessionConfig) -> FakeSession:
        if self.options:
            config = SessionConfig(
                sample_rate=config.sample_rate,
                locale=config.locale,
                diarize=config.diarize,
                label=config.label,
                options={**self.options, **config.options},
            )
        return FakeSession(self, config)
