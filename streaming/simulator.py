"""Simulate ACS calls against Callsite's ingest WebSocket: transcription or audio.

A *transcription script* is a TOML file (read with :mod:`tomllib`) describing a conversation::

    title = "Billing question"          # required
    locale = "en-US"                    # optional, default "en-US"

    [[speakers]]                        # one or more
    key = "agent"                       # name used by the turns below
    raw_id = "8:acs:..."                # participantRawID sent for this speaker

    [[turns]]                           # one or more, spoken in order, never overlapping
    speaker = "agent"                   # a speakers.key
    text = "Thank you for calling..."   # display text of the final result
    pause = 0.8                         # optional, seconds of silence before the turn (0.4)
    confidence = 0.93                   # optional, 0..1 (0.9)
    wpm = 160                           # optional, speaking rate in words per minute (150)

:func:`plan_packets` turns a script into timed JSON packets shaped like ACS's
(``TranscriptionMetadata`` first, then ``Intermediate`` and ``Final``
``TranscriptionData``); :func:`send_packets` replays any such plan over a WebSocket
in real time (or faster), and :func:`stream_call` / :func:`simulate_calls` combine the
two for one or many concurrent calls.

An *audio script* (``[call] kind = "audio"``) names WAV files instead, one per participant
(unmixed) or one for the whole call (mixed); :func:`load_audio_script` reads it and
:func:`audio_script_from_wavs` builds the same thing from WAV paths. :func:`plan_audio_packets`
lays it out as ``AudioMetadata`` then one 20 ms ``AudioData`` frame per participant per tick,
which the same sender plays. Frames are encoded once per script and shared by every call
that plays it; only the timestamp is formatted per call. See ``docs/simulator.md``.
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import json
import math
import tomllib
import uuid
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn, overload
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

TICKS_PER_SECOND = 10_000_000  # ACS offsets and durations are 100-ns ticks
DEFAULT_LOCALE = "en-US"
DEFAULT_PAUSE = 0.4
DEFAULT_CONFIDENCE = 0.9
DEFAULT_WPM = 150.0
MAX_WPM = 1000.0
FINAL_DELAY = 0.3  # seconds between the end of speech and the Final result
INTERMEDIATE_WORDS = 2
INTERMEDIATE_SECONDS = 0.5
DEMO_DIR = Path(__file__).with_name("demo")
DEFAULT_SCRIPT = DEMO_DIR / "billing_call.toml"
METADATA_KIND = "TranscriptionMetadata"
DATA_KIND = "TranscriptionData"
AUDIO_METADATA_KIND = "AudioMetadata"
AUDIO_DATA_KIND = "AudioData"
MIXED = "mixed"
UNMIXED = "unmixed"
AUDIO_MODES = (UNMIXED, MIXED)
SAMPLE_RATES = (16000, 24000)  # the two rates ACS streams (pcm16KMono, pcm24KMono)
DEFAULT_SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 50  # ACS sends one 20 ms frame per stream every 20 ms
SILENCE_DBFS = -50.0  # frames quieter than this (RMS, dB full scale) are sent as silent
DEMO_AUDIO_DIR = DEMO_DIR / "audio"
DEMO_AUDIO_SCRIPT = DEMO_AUDIO_DIR / "two_speaker_call.toml"
DEMO_AUDIO_MIXED_SCRIPT = DEMO_AUDIO_DIR / "two_speaker_call_mixed.toml"
# Raw ids given to WAVs passed without one: the first is an agent, the others customers.
DEFAULT_AGENT_RAW_ID = (
    "8:acs:5f0c2a91-3d4e-4b6a-9c1f-7e2d8b3a6c40_0000002a-7d1e-4c2b-a0f3-9b8e6d5c4a31"
)
AUDIO_PROGRESS_SECONDS = 10.0  # call time between simulate_calls' audio progress lines
_YIELD_EVERY = 50  # packets sent back to back before the sender lets other tasks run


class ScriptError(ValueError):
    """A script file is missing, not valid TOML, or breaks the script format."""


class SimulatorError(RuntimeError):
    """A simulated call could not connect, was rejected, or was cut off."""


class CallsFailedError(SimulatorError):
    """Raised by :func:`simulate_calls` when at least one call failed; keeps the rest."""

    def __init__(
        self, message: str, results: list[CallResult], failures: list[tuple[str, SimulatorError]]
    ) -> None:
        super().__init__(message)
        self.results = results
        self.failures = failures


@dataclass(frozen=True)
class Speaker:
    """A participant of a script: the key turns refer to and the ACS raw id to send."""

    key: str
    raw_id: str


@dataclass(frozen=True)
class Turn:
    """One utterance: who speaks, what, after how much silence, and how fast."""

    speaker: str
    text: str
    pause: float = DEFAULT_PAUSE
    confidence: float = DEFAULT_CONFIDENCE
    wpm: float = DEFAULT_WPM


@dataclass(frozen=True)
class Script:
    """A whole scripted call."""

    title: str
    locale: str
    speakers: tuple[Speaker, ...]
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class ScheduledPacket:
    """A wire packet and when to send it, in seconds from the start of the stream."""

    at: float
    payload: str
    final: bool
    # Lets senders count packet types without re-parsing JSON.
    kind: str = DATA_KIND


@dataclass(frozen=True)
class CallResult:
    """What one simulated call sent; ``elapsed`` is seconds from handshake to close."""

    call_connection_id: str
    packets_sent: int
    finals_sent: int
    intermediates_sent: int
    elapsed: float
    frames_sent: int = 0  # AudioData packets


# --- Loading scripts ------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read script: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{path}: not valid TOML: {exc}") from exc


def load_script(path: str | Path) -> Script:
    """Read and validate a transcription script; raise :class:`ScriptError` naming the field."""
    path = Path(path)
    data = _read_toml(path)
    if "call" in data:
        _fail(str(path), "call", "this is an audio script: use load_audio_script()")
    return _parse_script(data, str(path))


def script_kind(path: str | Path) -> str:
    """``"audio"`` for an audio script (one with a ``[call]`` table), else ``"transcription"``.

    Reads only the TOML, not the WAVs it names.
    """
    return "audio" if "call" in _read_toml(Path(path)) else "transcription"


def load_call_script(path: str | Path) -> Script | AudioScript:
    """Read a transcription script, or an audio script (one with a ``[call]`` table)."""
    path = Path(path)
    data = _read_toml(path)
    if "call" in data:
        return _parse_audio_script(data, path)
    return _parse_script(data, str(path))


def _fail(source: str, where: str, message: str) -> NoReturn:
    raise ScriptError(f"{source}: {where}: {message}")


def _check_keys(table: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    # Unknown keys are almost always typos ("paus"), which would otherwise silently default.
    unknown = sorted(set(table) - allowed)
    if unknown:
        _fail(source, where, f"unknown key(s) {', '.join(unknown)}")


def _text(table: Mapping[str, Any], key: str, source: str, where: str, default: str = "") -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        _fail(source, f"{where}{key}", f"must be a non-empty string, got {value!r}")
    return value.strip()


def _number(table: Mapping[str, Any], key: str, default: float, source: str, where: str) -> float:
    value = table.get(key, default)
    # TOML booleans are Python bools, which are ints: reject them explicitly.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(source, f"{where}{key}", f"must be a number, got {value!r}")
    return float(value)


def _tables(data: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        _fail(source, key, f"needs at least one [[{key}]] table")
    return value


def _turn_problem(turn: Turn) -> tuple[str, str] | None:
    """The first field of ``turn`` that breaks the script format and why, or None."""
    if not _words(turn.text):
        return "text", f"has no words: {turn.text!r}"
    if not (turn.pause >= 0 and math.isfinite(turn.pause)):
        return "pause", f"must be >= 0 seconds, got {turn.pause}"
    if not 0 <= turn.confidence <= 1:
        return "confidence", f"must be between 0 and 1, got {turn.confidence}"
    if not 0 < turn.wpm <= MAX_WPM:
        return "wpm", f"must be > 0 and <= {MAX_WPM:g}, got {turn.wpm}"
    return None


def _parse_script(data: Mapping[str, Any], source: str) -> Script:
    _check_keys(data, {"title", "locale", "speakers", "turns"}, source, "top level")
    title = _text(data, "title", source, "")
    locale = _text(data, "locale", source, "", DEFAULT_LOCALE)
    speakers: list[Speaker] = []
    for i, table in enumerate(_tables(data, "speakers", source)):
        where = f"speakers[{i}]."
        _check_keys(table, {"key", "raw_id"}, source, where.rstrip("."))
        speaker = Speaker(_text(table, "key", source, where), _text(table, "raw_id", source, where))
        if any(s.key == speaker.key for s in speakers):
            _fail(source, f"{where}key", f"duplicate speaker key {speaker.key!r}")
        speakers.append(speaker)
    keys = [s.key for s in speakers]
    turns: list[Turn] = []
    for i, table in enumerate(_tables(data, "turns", source)):
        where = f"turns[{i}]."
        _check_keys(table, {"speaker", "text", "pause", "confidence", "wpm"}, source, where[:-1])
        speaker_key = _text(table, "speaker", source, where)
        if speaker_key not in keys:
            _fail(source, f"{where}speaker", f"unknown speaker {speaker_key!r} (known: {keys})")
        turn = Turn(
            speaker_key,
            " ".join(_text(table, "text", source, where).split()),
            _number(table, "pause", DEFAULT_PAUSE, source, where),
            _number(table, "confidence", DEFAULT_CONFIDENCE, source, where),
            _number(table, "wpm", DEFAULT_WPM, source, where),
        )
        if problem := _turn_problem(turn):
            _fail(source, f"{where}{problem[0]}", problem[1])
        turns.append(turn)
    return Script(title, locale, tuple(speakers), tuple(turns))


# --- Planning packets -----------------------------------------------------------------------


def _lexical(token: str) -> str:
    """ACS's per-word form: lower case, leading/trailing punctuation removed."""
    start, end = 0, len(token)
    while start < end and not token[start].isalnum():
        start += 1
    while end > start and not token[end - 1].isalnum():
        end -= 1
    return token[start:end].lower()


def _words(text: str) -> list[tuple[str, int]]:
    """Spoken words of ``text`` as (lexical form, display tokens up to and including it)."""
    # Tokens such as "-" or "…" stay in the display text but are not spoken words.
    return [(w, i + 1) for i, t in enumerate(text.split()) if (w := _lexical(t))]


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


def _split_ticks(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` by ``weights``; rounding the cumulative sums keeps the total exact."""
    whole = sum(weights)
    bounds = [0]
    running = 0
    for weight in weights:
        running += weight
        bounds.append(round(total * running / whole))
    return [b - a for a, b in itertools.pairwise(bounds)]


def _dump(kind: str, body: Mapping[str, Any]) -> str:
    key = kind[0].lower() + kind[1:]
    # ensure_ascii=False: ACS sends UTF-8 text, and receivers must cope with it.
    return json.dumps({"kind": kind, key: body}, ensure_ascii=False, separators=(",", ":"))


def plan_packets(
    script: Script,
    *,
    call_connection_id: str,
    correlation_id: str,
    subscription_id: str | None = None,
) -> list[ScheduledPacket]:
    """Lay a script out as ACS transcription packets, sorted by send time.

    Pure and deterministic. Each turn starts ``pause`` seconds after the previous turn's
    speech ends; its words last ``60 / wpm`` seconds on average, split by word length.
    Intermediates (growing word prefixes) are sent as their last word ends, roughly every
    two words or half second; the Final follows the end of speech by ``FINAL_DELAY``.
    """
    raw_ids = {s.key: s.raw_id for s in script.speakers}
    if subscription_id is None:
        subscription_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"callsite-sim:{call_connection_id}"))
    metadata = {
        "subscriptionId": subscription_id,
        "locale": script.locale,
        "callConnectionId": call_connection_id,
        "correlationId": correlation_id,
    }
    packets = [ScheduledPacket(0.0, _dump(METADATA_KIND, metadata), False, METADATA_KIND)]
    cursor = 0  # ticks: end of the previous turn's speech
    for index, turn in enumerate(script.turns):
        # Scripts built in code skip load_script, so check them here too.
        if turn.speaker not in raw_ids:
            raise ScriptError(f"turns[{index}].speaker: unknown speaker {turn.speaker!r}")
        if problem := _turn_problem(turn):
            raise ScriptError(f"turns[{index}].{problem[0]}: {problem[1]}")
        tokens = turn.text.split()
        words = _words(turn.text)
        start = cursor + _ticks(turn.pause)
        total = _ticks(len(words) * 60.0 / turn.wpm)
        durations = _split_ticks(total, [len(w) for w, _ in words])
        raw_id = raw_ids[turn.speaker]
        spoken = emitted_words = emitted_ticks = 0
        for n, duration in enumerate(durations, start=1):
            spoken += duration
            due = n - emitted_words >= INTERMEDIATE_WORDS
            slow = spoken - emitted_ticks >= _ticks(INTERMEDIATE_SECONDS)
            if not (due or slow or n == len(words)):
                continue
            emitted_words, emitted_ticks = n, spoken
            # The last intermediate carries the whole display text, trailing "—" included.
            shown = len(tokens) if n == len(words) else words[n - 1][1]
            body = {
                "text": " ".join(tokens[:shown]),
                "format": "display",
                "offset": start,
                "duration": spoken,
                "participantRawID": raw_id,
                "resultStatus": "Intermediate",
            }
            packets.append(
                ScheduledPacket((start + spoken) / TICKS_PER_SECOND, _dump(DATA_KIND, body), False)
            )
        word_offsets = itertools.accumulate(durations[:-1], initial=start)
        body = {
            "text": " ".join(tokens),
            "format": "display",
            "confidence": turn.confidence,
            "offset": start,
            "duration": total,
            "words": [
                {"text": w, "offset": o, "duration": d}
                for (w, _), o, d in zip(words, word_offsets, durations, strict=True)
            ],
            "participantRawID": raw_id,
            "resultStatus": "Final",
        }
        at = (start + total) / TICKS_PER_SECOND + FINAL_DELAY
        packets.append(ScheduledPacket(at, _dump(DATA_KIND, body), True))
        cursor = start + total
    # Stable: a Final that lands after the next turn's first intermediate keeps plan order.
    packets.sort(key=lambda p: p.at)
    return packets


# --- Audio calls ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AudioTrack:
    """One audio stream of a call: 16-bit little-endian mono PCM at the call's sample rate.

    ``raw_id`` is the ``participantRawID`` its frames carry; None for the one mixed stream.
    ``source`` names the WAV file(s) it came from, for messages.
    """

    raw_id: str | None
    pcm: bytes
    source: str = ""


@dataclass(frozen=True, eq=False)
class AudioScript:
    """A whole audio call: one track per participant (unmixed) or one mixed track.

    Tracks may differ in length: shorter ones are padded with silent frames to the longest.
    The 20 ms frames are encoded once, on first use, and shared by every call that plays it.
    """

    title: str
    mode: str
    sample_rate: int
    tracks: tuple[AudioTrack, ...]

    def __post_init__(self) -> None:
        if self.mode not in AUDIO_MODES:
            raise ScriptError(f"mode must be one of {', '.join(AUDIO_MODES)}, got {self.mode!r}")
        if type(self.sample_rate) is not int or self.sample_rate not in SAMPLE_RATES:
            raise ScriptError(f"sample_rate must be 16000 or 24000, got {self.sample_rate!r}")
        if not self.tracks:
            raise ScriptError("an audio call needs at least one track")
        if self.mode == MIXED and (len(self.tracks) != 1 or self.tracks[0].raw_id is not None):
            raise ScriptError("mixed audio is one track without a raw id (mix_pcm() sums tracks)")
        raw_ids = [t.raw_id for t in self.tracks]
        if self.mode == UNMIXED and (not all(raw_ids) or len(set(raw_ids)) != len(raw_ids)):
            raise ScriptError(f"unmixed tracks need distinct, non-empty raw ids, got {raw_ids}")
        for track in self.tracks:
            if len(track.pcm) % 2:
                raise ScriptError(f"{track.source or track.raw_id}: PCM has an odd byte count")
        if not any(t.pcm for t in self.tracks):
            raise ScriptError("an audio call needs some audio: every track is empty")

    @property
    def frame_bytes(self) -> int:
        """Bytes of PCM per 20 ms frame: 640 at 16 kHz, 960 at 24 kHz."""
        return self.sample_rate * 2 // FRAMES_PER_SECOND

    @property
    def frame_count(self) -> int:
        """20 ms ticks in the call: the longest track, rounded up to whole frames."""
        return max(-(-len(t.pcm) // self.frame_bytes) for t in self.tracks)

    @property
    def duration(self) -> float:
        """Seconds of call time, a whole number of frames."""
        return self.frame_count / FRAMES_PER_SECOND

    @cached_property
    def _encoded(self) -> tuple[tuple[str, ...], ...]:
        return tuple(_encode_track(t, self.frame_bytes, self.frame_count) for t in self.tracks)


def read_wav(path: str | Path, sample_rate: int, *, resample: bool = True) -> bytes:
    """Return a WAV file's samples as 16-bit little-endian mono PCM at ``sample_rate``.

    Only 16-bit PCM mono WAVs are accepted. One at another rate is resampled (FFT resampling
    with numpy) unless ``resample`` is false. Every problem is a :class:`ScriptError`.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read WAV: {exc.strerror or exc}") from exc
    except (wave.Error, EOFError) as exc:
        why = str(exc) or "file is truncated"
        raise ScriptError(
            f"{path}: not a 16-bit PCM WAV file: {why} (sox in.wav -c 1 -b 16 out.wav converts it)"
        ) from exc
    if channels != 1:
        raise ScriptError(
            f"{path}: WAV has {channels} channels; only mono is supported "
            f"(e.g. sox in.wav -c 1 out.wav)"
        )
    if width != 2:
        raise ScriptError(f"{path}: WAV has {8 * width}-bit samples; only 16-bit PCM is supported")
    if not pcm:
        raise ScriptError(f"{path}: WAV holds no audio")
    pcm = pcm[: len(pcm) // 2 * 2]  # a truncated file can end mid-sample
    if rate != sample_rate:
        if not resample:
            raise ScriptError(
                f"{path}: WAV is {rate} Hz but the call is {sample_rate} Hz (resampling is off)"
            )
        pcm = resample_pcm(pcm, rate, sample_rate)
    return pcm


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample 16-bit little-endian mono PCM by truncating or zero-padding its spectrum.

    Band-limited (no aliasing when going down, no images when going up), exact in length
    (``round(samples * to_rate / from_rate)``) and fast enough for files of a few minutes.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    samples = np.frombuffer(pcm, dtype="<i2")
    if from_rate == to_rate or not len(samples):
        return bytes(pcm)
    count = max(1, round(len(samples) * to_rate / from_rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    bins = count // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), spectrum.dtype)])
    out = np.fft.irfft(spectrum, count) * (count / len(samples))
    return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


def mix_pcm(tracks: Sequence[bytes]) -> bytes:
    """Sum 16-bit little-endian PCM tracks into one, padding short ones and clipping peaks."""
    if not tracks:
        raise ValueError("nothing to mix")
    length = max(len(t) for t in tracks) // 2
    total = np.zeros(length, dtype=np.int32)
    for pcm in tracks:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        total[: len(samples)] += samples
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


def default_raw_ids(count: int) -> list[str]:
    """Raw ids for WAVs given without any: an ACS user (agent), then +1 555 555 0123 and up."""
    customers = [f"4:+1555555{123 + i:04d}" for i in range(count - 1)]
    return [DEFAULT_AGENT_RAW_ID, *customers][:count]


def _build_audio(
    title: str,
    mode: str,
    sample_rate: int,
    wavs: Sequence[tuple[str | None, Path]],
    resample: bool,
) -> AudioScript:
    tracks = [
        AudioTrack(raw_id, read_wav(p, sample_rate, resample=resample), str(p))
        for raw_id, p in wavs
    ]
    if mode == MIXED:
        sources = " + ".join(t.source for t in tracks)
        tracks = [AudioTrack(None, mix_pcm([t.pcm for t in tracks]), sources)]
    return AudioScript(title, mode, sample_rate, tuple(tracks))


def audio_script_from_wavs(
    wavs: Sequence[str | Path],
    *,
    mixed: bool = False,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    resample: bool = True,
    raw_ids: Sequence[str] | None = None,
    title: str | None = None,
) -> AudioScript:
    """An audio call from WAV files: one participant each, or (``mixed``) summed into one.

    Without ``raw_ids`` the first WAV is an agent and the others customers
    (:func:`default_raw_ids`). The title defaults to the file names.
    """
    if not wavs:
        raise ScriptError("no WAV files given")
    if sample_rate not in SAMPLE_RATES:
        raise ScriptError(f"sample rate must be 16000 or 24000, got {sample_rate}")
    ids = list(raw_ids) if raw_ids else default_raw_ids(len(wavs))
    if len(ids) != len(wavs):
        raise ScriptError(f"{len(wavs)} WAV file(s) but {len(ids)} raw id(s)")
    paths = [Path(w) for w in wavs]
    title = title or " + ".join(p.name for p in paths)
    mode = MIXED if mixed else UNMIXED
    return _build_audio(title, mode, sample_rate, list(zip(ids, paths, strict=True)), resample)


def load_audio_script(
    path: str | Path,
    *,
    mode: str | None = None,
    sample_rate: int | None = None,
    resample: bool | None = None,
) -> AudioScript:
    """Read an audio script and its WAVs; keyword arguments override the script's ``[call]``.

    WAV paths are relative to the script's folder. Raise :class:`ScriptError` naming the file
    and field (or WAV) at fault.
    """
    path = Path(path)
    data = _read_toml(path)
    if "call" not in data:
        _fail(str(path), "call", "missing: this is not an audio script (no [call] table)")
    return _parse_audio_script(data, path, mode=mode, sample_rate=sample_rate, resample=resample)


def _parse_audio_script(
    data: Mapping[str, Any],
    path: Path,
    *,
    mode: str | None = None,
    sample_rate: int | None = None,
    resample: bool | None = None,
) -> AudioScript:
    source = str(path)
    _check_keys(data, {"call", "participants"}, source, "top level")
    call = data["call"]
    if not isinstance(call, dict):
        _fail(source, "call", "must be a [call] table")
    _check_keys(call, {"kind", "title", "mode", "sample_rate", "resample", "wav"}, source, "call")
    if call.get("kind") != "audio":
        _fail(source, "call.kind", f'must be "audio", got {call.get("kind")!r}')
    title = _text(call, "title", source, "call.", path.stem)
    mode = mode or _text(call, "mode", source, "call.", UNMIXED)
    if mode not in AUDIO_MODES:
        _fail(source, "call.mode", f'must be "unmixed" or "mixed", got {mode!r}')
    if sample_rate is None:
        sample_rate = call.get("sample_rate", DEFAULT_SAMPLE_RATE)
    if type(sample_rate) is not int or sample_rate not in SAMPLE_RATES:
        _fail(source, "call.sample_rate", f"must be 16000 or 24000, got {sample_rate!r}")
    if resample is None:
        resample = call.get("resample", True)
        if not isinstance(resample, bool):
            _fail(source, "call.resample", f"must be true or false, got {resample!r}")
    folder = path.parent
    wavs: list[tuple[str | None, Path]] = []
    if "wav" in call:
        if mode != MIXED:
            _fail(source, "call.wav", "only for mixed audio (unmixed takes participants' WAVs)")
        if "participants" in data:
            _fail(source, "participants", "not allowed with [call] wav (the call is one stream)")
        wavs.append((None, folder / _text(call, "wav", source, "call.")))
    else:
        for i, table in enumerate(_tables(data, "participants", source)):
            where = f"participants[{i}]."
            _check_keys(table, {"raw_id", "wav"}, source, where[:-1])
            if mode == UNMIXED or "raw_id" in table:
                raw_id: str | None = _text(table, "raw_id", source, where)
                if any(raw_id == r for r, _ in wavs):
                    _fail(source, f"{where}raw_id", f"duplicate raw id {raw_id!r}")
            else:
                raw_id = None
            wavs.append((raw_id, folder / _text(table, "wav", source, where)))
    try:
        return _build_audio(title, mode, sample_rate, wavs, resample)
    except ScriptError as exc:
        raise ScriptError(f"{source}: {exc}") from exc


def _encode_track(track: AudioTrack, frame_bytes: int, frames: int) -> tuple[str, ...]:
    """Each frame's AudioData JSON from just after the timestamp's value to the end."""
    pcm = track.pcm.ljust(frames * frame_bytes, b"\0")
    samples = np.frombuffer(pcm, dtype="<i2").reshape(frames, frame_bytes // 2)
    rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64), axis=1))
    silent = rms < 32768 * 10 ** (SILENCE_DBFS / 20)
    peak = np.abs(samples.astype(np.int32)).max(axis=1)
    raw_id = ""
    if track.raw_id is not None:
        raw_id = f',"participantRawID":{json.dumps(track.raw_id, ensure_ascii=False)}'
    tails: list[str] = []
    zero_tail = ""  # padding and digital silence: one shared string per track
    for index in range(frames):
        if peak[index] == 0 and zero_tail:
            tails.append(zero_tail)
            continue
        chunk = pcm[index * frame_bytes : (index + 1) * frame_bytes]
        data = binascii.b2a_base64(chunk, newline=False).decode("ascii")
        flag = "true" if silent[index] else "false"
        tail = f'"{raw_id},"data":"{data}","silent":{flag}}}}}'
        if peak[index] == 0:
            zero_tail = tail
        tails.append(tail)
    return tuple(tails)


_AUDIO_HEAD = '{"kind":"AudioData","audioData":{"timestamp":"'


class AudioPlan(Sequence[ScheduledPacket]):
    """The packets of one audio call, built on demand from the script's shared frames.

    Index 0 is ``AudioMetadata`` (at 0 s); then, for each 20 ms tick, one ``AudioData`` per
    track in track order, sent when the tick's audio is complete (``(tick + 1) / 50`` s).
    Payloads are the shared frame JSON with this call's timestamp put in front, so a plan
    costs almost no memory and planning many concurrent calls encodes nothing twice.
    """

    def __init__(self, script: AudioScript, metadata: str, start: datetime) -> None:
        self.script = script
        self.metadata = metadata
        self.start = start
        self._frames = script._encoded
        self._tracks = len(script.tracks)

    def __len__(self) -> int:
        return 1 + self.script.frame_count * self._tracks

    @overload
    def __getitem__(self, index: int) -> ScheduledPacket: ...

    @overload
    def __getitem__(self, index: slice) -> list[ScheduledPacket]: ...

    def __getitem__(self, index: int | slice) -> ScheduledPacket | list[ScheduledPacket]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("audio plan index out of range")
        if index == 0:
            return ScheduledPacket(0.0, self.metadata, False, AUDIO_METADATA_KIND)
        tick, track = divmod(index - 1, self._tracks)
        payload = _AUDIO_HEAD + self.timestamp(tick) + self._frames[track][tick]
        return ScheduledPacket((tick + 1) / FRAMES_PER_SECOND, payload, False, AUDIO_DATA_KIND)

    def __iter__(self) -> Iterator[ScheduledPacket]:
        yield ScheduledPacket(0.0, self.metadata, False, AUDIO_METADATA_KIND)
        for tick in range(self.script.frame_count):
            head = _AUDIO_HEAD + self.timestamp(tick)
            at = (tick + 1) / FRAMES_PER_SECOND
            for frames in self._frames:
                yield ScheduledPacket(at, head + frames[tick], False, AUDIO_DATA_KIND)

    def timestamp(self, tick: int) -> str:
        """The tick's ACS timestamp: call start + 20 ms per tick, UTC, milliseconds and Z."""
        stamp = self.start + timedelta(milliseconds=tick * 1000 // FRAMES_PER_SECOND)
        return stamp.isoformat(timespec="milliseconds")[:-6] + "Z"


def plan_audio_packets(
    script: AudioScript,
    *,
    call_connection_id: str,
    start: datetime | None = None,
    subscription_id: str | None = None,
) -> AudioPlan:
    """Lay an audio call out as ACS media packets: ``AudioMetadata``, then 20 ms ``AudioData``.

    ``start`` (default: now) is the wall-clock time of the first sample, cut to the
    millisecond (naive means UTC); tick ``n`` is stamped ``start + n * 20 ms``. Unmixed frames
    carry their track's ``participantRawID``; the mixed stream has none. ``silent`` is true
    for frames whose RMS is below ``SILENCE_DBFS`` (padding and digital silence included).
    """
    if subscription_id is None:
        subscription_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"callsite-sim:{call_connection_id}"))
    metadata = {
        "subscriptionId": subscription_id,
        "encoding": "PCM",
        "sampleRate": script.sample_rate,
        "channels": 1,
        "length": script.frame_bytes,
    }
    start = start or datetime.now(UTC)
    # A naive start is taken as UTC; milliseconds are all ACS sends.
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    start = start.replace(microsecond=start.microsecond // 1000 * 1000)
    return AudioPlan(script, _dump(AUDIO_METADATA_KIND, metadata), start)


# --- Sending --------------------------------------------------------------------------------


def _time_scale(speed: float) -> float:
    """Seconds of wall time per second of call time; 0.0 means as fast as possible."""
    if math.isnan(speed):
        raise ValueError("speed must be a number, got NaN")
    return 0.0 if speed <= 0 or math.isinf(speed) else 1.0 / speed


def _with_query(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def send_packets(
    url: str,
    packets: Sequence[ScheduledPacket],
    *,
    call_connection_id: str,
    correlation_id: str,
    token: str | None,
    speed: float = 1.0,
    on_packet: Callable[[ScheduledPacket], None] | None = None,
) -> CallResult:
    """Open a WebSocket the way ACS does and send ``packets`` on schedule, then close (1000).

    Each packet goes out at ``packet.at / speed`` seconds after the socket opened, measured
    from one monotonic start, so a long call never drifts. ``packets`` may be any sequence,
    such as a lazy :class:`AudioPlan`. Error messages name ``url`` as given, never the query
    with the token.
    """
    scale = _time_scale(speed)
    target = _with_query(url, token=token, call=call_connection_id)
    headers = {
        "x-ms-call-connection-id": call_connection_id,
        "x-ms-call-correlation-id": correlation_id,
    }
    try:
        # proxy=None: ACS connects straight to the endpoint; an env proxy would skew timing.
        # compression=None: deflating every 20 ms audio frame costs CPU and gains little.
        ws = await connect(target, additional_headers=headers, proxy=None, compression=None)
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise SimulatorError(f"{url} rejected the WebSocket handshake: HTTP {status}") from exc
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise SimulatorError(f"cannot connect to {url}: {exc}") from exc
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = finals = intermediates = frames = 0
    unbroken = 0  # packets sent since this task last let others run
    try:
        for packet in packets:
            if scale:
                # Absolute deadlines from one monotonic start, so sleep overshoot never adds up.
                delay = started + packet.at * scale - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    unbroken = 0
            if unbroken >= _YIELD_EVERY:
                # send() rarely waits, so a call that is behind (or at speed 0) would otherwise
                # starve the other calls of this event loop.
                await asyncio.sleep(0)
                unbroken = 0
            await ws.send(packet.payload)
            sent += 1
            unbroken += 1
            if packet.kind == AUDIO_DATA_KIND:
                frames += 1
            elif packet.final:
                finals += 1
            elif packet.kind == DATA_KIND:
                intermediates += 1
            if on_packet is not None:
                on_packet(packet)
        await ws.close(code=1000, reason="call ended")
    except ConnectionClosed as exc:
        close = exc.rcvd
        why = f"code {close.code} {close.reason!r}" if close else "no close frame"
        raise SimulatorError(
            f"{url} closed call {call_connection_id} after {sent} of {len(packets)} packets ({why})"
        ) from exc
    finally:
        await ws.close()
    elapsed = loop.time() - started
    return CallResult(call_connection_id, sent, finals, intermediates, elapsed, frames)


async def stream_call(
    url: str,
    *,
    call_connection_id: str,
    script: Script | AudioScript,
    token: str | None,
    speed: float = 1.0,
    correlation_id: str | None = None,
    on_packet: Callable[[ScheduledPacket], None] | None = None,
) -> CallResult:
    """Play one scripted or audio call to ``url`` (query gets ``token`` and ``call`` added).

    Audio timestamps start at the moment of the call.
    """
    correlation_id = correlation_id or str(uuid.uuid4())
    packets: Sequence[ScheduledPacket]
    if isinstance(script, AudioScript):
        packets = plan_audio_packets(script, call_connection_id=call_connection_id)
    else:
        packets = plan_packets(
            script, call_connection_id=call_connection_id, correlation_id=correlation_id
        )
    return await send_packets(
        url,
        packets,
        call_connection_id=call_connection_id,
        correlation_id=correlation_id,
        token=token,
        speed=speed,
        on_packet=on_packet,
    )


async def simulate_calls(
    url: str,
    *,
    script: Script | AudioScript,
    calls: int = 1,
    token: str | None,
    speed: float = 1.0,
    stagger: float = 0.5,
    call_prefix: str = "sim",
    progress: Callable[[str], None] | None = None,
) -> list[CallResult]:
    """Run ``calls`` concurrent calls, started ``stagger / speed`` seconds apart.

    Calls get fresh ids (``<call_prefix>-<12 hex>``) so reruns never collide. A failed call
    does not stop the others; at the end :class:`CallsFailedError` reports every failure.
    ``progress`` gets a line per connect, Final (transcription) or 10 s of audio, and end.
    """
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    scale = _time_scale(speed)
    report = progress or (lambda line: None)
    if isinstance(script, AudioScript):
        total_finals, total = 0, f"{script.duration:.1f} s"
        script._encoded  # noqa: B018 -- encode before any call starts its clock
    else:
        total_finals, total = len(script.turns), ""
    call_ids = [f"{call_prefix}-{uuid.uuid4().hex[:12]}" for _ in range(calls)]
    results: dict[str, CallResult] = {}
    failures: list[tuple[str, SimulatorError]] = []

    async def run(index: int, call_id: str) -> None:
        await asyncio.sleep(index * stagger * scale)
        finals = 0
        reported = 0.0  # call time of the last audio progress line

        def on_packet(packet: ScheduledPacket) -> None:
            nonlocal finals, reported
            if packet.kind in (METADATA_KIND, AUDIO_METADATA_KIND):
                report(f"call {call_id} connected")
            elif packet.final:
                finals += 1
                report(f"call {call_id}: {finals}/{total_finals} finals")
            elif packet.kind == AUDIO_DATA_KIND and packet.at - reported >= AUDIO_PROGRESS_SECONDS:
                reported = packet.at
                report(f"call {call_id}: {packet.at:.0f}/{total} of audio")

        try:
            result = await stream_call(
                url,
                call_connection_id=call_id,
                script=script,
                token=token,
                speed=speed,
                on_packet=on_packet,
            )
        except SimulatorError as exc:
            failures.append((call_id, exc))
            report(f"call {call_id} failed: {exc}")
            return
        results[call_id] = result
        sent = (
            f"{result.frames_sent} frames" if result.frames_sent else f"{result.finals_sent} finals"
        )
        report(f"call {call_id} done: {sent} in {result.elapsed:.1f} s")

    async with asyncio.TaskGroup() as group:
        for index, call_id in enumerate(call_ids):
            group.create_task(run(index, call_id))
    ordered = [results[c] for c in call_ids if c in results]
    if failures:
        first = failures[0][1]
        raise CallsFailedError(
            f"{len(failures)} of {calls} calls failed (first: {first})", ordered, failures
        )
    return ordered
