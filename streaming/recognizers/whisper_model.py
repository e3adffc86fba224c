"""Whisper through CTranslate2: log-mel features, decoding with fallbacks, word alignment.

Loaded only by ``whisper_worker`` processes (and the benchmark). ``faster-whisper`` is not
used: it pads every utterance to Whisper's 30-second window, which costs five to six times
the CPU of a window fitted to the utterance and adds latency to every final
(docs/audio.md, "whisper"). Here an utterance is decoded in a window of
``max(MIN_WINDOW_SECONDS, utterance + 1 s)`` of audio.

What keeps captions readable on short, endpointer-cut utterances:

* a token cap per second of audio, and a retry (first forbidding repeated 3-grams, then
  sampling at a higher temperature) when the output loops: hits the cap, compresses too well
  or repeats a phrase;
* results dropped when the model itself says they are unlikely (mean log-probability very
  low, or low with a high no-speech probability): what Whisper "hears" in noise;
* non-speech annotations (``[Music]``, ``(static)``) removed.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
HOP = 160  # samples per feature frame (10 ms)
N_FFT = 400
FRAMES_PER_SECOND = SAMPLE_RATE // HOP
ALIGNMENT_STEPS_PER_SECOND = 50  # the encoder halves the frame rate: 20 ms per step
MIN_WINDOW_SECONDS = 10.0  # shorter windows made the model start utterances over
MAX_WINDOW_SECONDS = 30.0  # the encoder's positions end there
MAX_TOKENS_PER_SECOND = 8  # fast speech is 4-5 tokens a second; beyond 8 it is looping
COMPRESSION_LIMIT = 2.4  # text that zlib shrinks more than this is a loop
# A result is dropped when its mean token log-probability is below LOGPROB_FLOOR, or below
# LOGPROB_DOUBT with the no-speech probability above NO_SPEECH_LIMIT (Whisper's own rule).
LOGPROB_FLOOR = -1.5
LOGPROB_DOUBT = -1.0
NO_SPEECH_LIMIT = 0.6
ANNOTATION = re.compile(r"\s*[\[(][^\])]*[\])]\s*")


@dataclass(frozen=True, slots=True)
class Word:
    """A word as spoken in the text (punctuation kept), seconds from the audio's start."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    mean_logprob: float
    no_speech: float


def mel_filters(n_mels: int) -> np.ndarray:
    """Slaney-scale triangular filters over the FFT bins, as Whisper was trained with."""
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        linear = hz / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(hz < 1000.0, linear, log)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        linear = mel * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
        return np.where(mel < 15.0, linear, log)

    top = float(hz_to_mel(np.array(SAMPLE_RATE / 2.0)))
    edges = mel_to_hz(np.linspace(0.0, top, n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal energy per filter
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, filters: np.ndarray, frames: int) -> np.ndarray:
    """Whisper's normalised log-mel spectrogram of ``audio``, padded with silence to
    ``frames`` feature frames."""
    samples = np.zeros(frames * HOP, dtype=np.float32)
    samples[: min(audio.size, samples.size)] = audio[: samples.size]
    padded = np.pad(samples, (N_FFT // 2, N_FFT // 2), mode="reflect")
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    count = 1 + (padded.size - N_FFT) // HOP
    strided = np.lib.stride_tricks.as_strided(
        padded, (count, N_FFT), (padded.strides[0] * HOP, padded.strides[0])
    )
    power = np.abs(np.fft.rfft(strided * window, axis=-1)) ** 2
    mel = filters @ power[:frames].T
    spectrum = np.log10(np.maximum(mel, 1e-10))
    spectrum = np.maximum(spectrum, spectrum.max() - 8.0)
    return ((spectrum + 4.0) / 4.0).astype(np.float32)


def compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / max(1, len(zlib.compress(data)))


def repeats_phrase(tokens: list[int], size: int = 3, times: int = 3) -> bool:
    """A ``size``-token phrase that occurs ``times`` or more: the decoder is looping."""
    seen: dict[tuple[int, ...], int] = {}
    for i in range(len(tokens) - size + 1):
        gram = tuple(tokens[i : i + size])
        seen[gram] = seen.get(gram, 0) + 1
        if seen[gram] >= times:
            return True
    return False


class WhisperModel:
    """One CTranslate2 Whisper model, loaded once per process; decodes one utterance at a time."""

    def __init__(
        self, model_dir: Path, *, language: str = "en", threads: int = 1, compute_type: str = "int8"
    ) -> None:
        import ctranslate2  # type: ignore[import-untyped]  # only workers load it
        from tokenizers import Tokenizer

        ctranslate2.set_random_seed(1)  # temperature fallbacks give the same text every run
        self.ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(
            str(model_dir), device="cpu", compute_type=compute_type, intra_threads=threads
        )
        self.filters = mel_filters(self.model.n_mels)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.eot = self.token("<|endoftext|>")
        sot = [self.token("<|startoftranscript|>")]
        if self.model.is_multilingual:
            sot += [self.token(f"<|{language}|>"), self.token("<|transcribe|>")]
        self.sot_sequence = sot
        self.prompt = [*sot, self.token("<|notimestamps|>")]

    def token(self, text: str) -> int:
        ident = self.tokenizer.token_to_id(text)
        if ident is None:
            raise ValueError(f"the model's tokenizer has no {text} token")
        return int(ident)

    def features(self, audio: np.ndarray) -> tuple[Any, int]:
        seconds = audio.size / SAMPLE_RATE
        window = min(MAX_WINDOW_SECONDS, max(MIN_WINDOW_SECONDS, seconds + 1.0))
        frames = math.ceil(window * FRAMES_PER_SECOND / 2) * 2
        mel = log_mel(audio, self.filters, frames)
        content = min(frames, math.ceil(audio.size / HOP))
        return self.ct2.StorageView.from_array(mel[np.newaxis]), content

    def transcribe(self, audio: np.ndarray, *, beam_size: int, words: bool) -> Transcript | None:
        """Text (and, with ``words``, word times and probabilities) of one utterance of
        float32 16 kHz ``audio``; None when nothing believable was said."""
        features, content = self.features(audio)
        encoded = self.model.encode(features)
        seconds = audio.size / SAMPLE_RATE
        cap = max(8, math.ceil(seconds * MAX_TOKENS_PER_SECOND))
        attempts: list[dict[str, Any]] = [
            {"beam_size": beam_size},
            {"beam_size": beam_size, "no_repeat_ngram_size": 3, "repetition_penalty": 1.1},
            {"beam_size": 1, "sampling_topk": 0, "sampling_temperature": 0.6},
        ]
        for options in attempts:
            (result,) = self.model.generate(
                encoded,
                [self.prompt],
                max_length=len(self.prompt) + cap + 1,
                return_scores=True,
                return_no_speech_prob=True,
                **options,
            )
            tokens = [t for t in result.sequences_ids[0] if t < self.eot]
            text = self.tokenizer.decode(tokens).strip()
            looping = (
                len(tokens) >= cap
                or compression_ratio(text) > COMPRESSION_LIMIT
                or repeats_phrase(tokens)
            )
            if not looping:
                break
        else:
            return None
        mean_logprob = float(result.scores[0]) if result.scores else 0.0
        no_speech = float(result.no_speech_prob)
        if mean_logprob < LOGPROB_FLOOR or (
            mean_logprob < LOGPROB_DOUBT and no_speech > NO_SPEECH_LIMIT
        ):
            return None
        text = ANNOTATION.sub(" ", text).strip()
        if not any(c.isalnum() for c in text):
            return None
        found = self.align(encoded, tokens, content) if words else ()
        if words:
            found = tuple(w for w in found if ANNOTATION.fullmatch(w.text) is None)
            text = " ".join(w.text for w in found)
            if not found:
                return None
        return Transcript(text, found, mean_logprob, no_speech)

    def align(self, encoded: Any, tokens: list[int], content: int) -> tuple[Word, ...]:
        """Word times from the model's alignment heads; a word's probability is the mean of
        its tokens'."""
        (alignment,) = self.model.align(encoded, self.sot_sequence, [tokens], content)
        pairs = np.array(alignment.alignments, dtype=np.int64).reshape(-1, 2)
        probabilities = list(alignment.text_token_probs)
        if pairs.size == 0:
            return ()
        # The first time step of each text token, for the tokens and the end of text.
        first_step: dict[int, int] = {}
        for text_index, step in pairs:
            first_step.setdefault(int(text_index), int(step))
        last = int(pairs[-1][1])
        groups = self.word_groups(tokens)
        words = []
        for begin, end in groups:
            text = self.tokenizer.decode(tokens[begin:end]).strip()
            if not text:
                continue
            start = first_step.get(begin, last) / ALIGNMENT_STEPS_PER_SECOND
            stop = first_step.get(end, last) / ALIGNMENT_STEPS_PER_SECOND
            probability = float(np.mean(probabilities[begin:end])) if probabilities else 0.0
            words.append(Word(text, start, max(start, stop), probability))
        return tuple(words)

    def word_groups(self, tokens: list[int]) -> list[tuple[int, int]]:
        """Token ranges of the words: a new word starts at a token that begins with a space;
        punctuation stays with the word before it."""
        groups: list[tuple[int, int]] = []
        start = 0
        for i, token in enumerate(tokens):
            piece = self.tokenizer.decode([token])
            if i > start and piece.startswith(" ") and piece.strip():
                groups.append((start, i))
                start = i
        if start < len(tokens):
            groups.append((start, len(tokens)))
        return groups
