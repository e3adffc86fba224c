"""Audio calls: WAV files as one stream per participant (unmixed) or one for the call (mixed).

An *audio script* (``[call] kind = "audio"``) names WAV files, one per participant (unmixed)
or one for the whole call (mixed); :func:`load_audio_script` reads it and
:func:`audio_script_from_wavs` builds the same thing from WAV paths. Frames are encoded once
per script (``simulator.wire``) and shared by every call that plays it.
"""

from __future__ import annotations

import dataclasses
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from simulator.scripts import (
    DEMO_DIR,
    Script,
    ScriptError,
    Signal,
    _check_keys,
    _fail,
    _parse_script,
    _read_toml,
    _tables,
    _text,
    parse_signals,
)
from simulator.wire import audio_frame_tails
from streaming.units import FRAMES_PER_SECOND

MIXED = "mixed"
UNMIXED = "unmixed"
AUDIO_MODES = (UNMIXED, MIXED)
SAMPLE_RATES = (16000, 24000)  # the two rates ACS streams (pcm16KMono, pcm24KMono)
DEFAULT_SAMPLE_RATE = 16000
DEMO_AUDIO_DIR = DEMO_DIR / "audio"
DEMO_AUDIO_SCRIPT = DEMO_AUDIO_DIR / "two_speaker_call.toml"
DEMO_AUDIO_MIXED_SCRIPT = DEMO_AUDIO_DIR / "two_speaker_call_mixed.toml"
# Raw ids given to WAVs passed without one: the first is an agent, the others customers.
DEFAULT_AGENT_RAW_ID = (
    "8:acs:5f0c2a91-3d4e-4b6a-9c1f-7e2d8b3a6c40_0000002a-7d1e-4c2b-a0f3-9b8e6d5c4a31"
)


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
    signals: tuple[Signal, ...] = ()  # holds, mutes and DTMF tones, at their times

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
        return tuple(
            audio_frame_tails(t.pcm, t.raw_id, self.frame_bytes, self.frame_count)
            for t in self.tracks
        )


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
    _check_keys(data, {"call", "participants", "signals"}, source, "top level")
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
    speakers = {raw_id: raw_id for raw_id, _ in wavs if raw_id}
    signals = parse_signals(data, source, speakers, timed=True)
    try:
        built = _build_audio(title, mode, sample_rate, wavs, resample)
    except ScriptError as exc:
        raise ScriptError(f"{source}: {exc}") from exc
    return dataclasses.replace(built, signals=signals) if signals else built


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
