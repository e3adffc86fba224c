"""Tests for the simulator's audio calls: WAVs in, ACS ``AudioMetadata``/``AudioData`` out.

The transcription side of the simulator is tested in ``tests/simulator/test_transcription.py``.
These tests need no database: the wire tests run a small ``websockets`` server on 127.0.0.1
that stands in for Callsite's ingest endpoint and records what arrives.

The fixture WAVs in ``tests/fixtures/audio/`` are pure tones at 16 kHz, made by
:func:`tone_track` (``test_fixture_wavs_are_the_documented_tones`` checks it):

- ``agent_tones.wav``, 3.0 s: silence 0-0.5 s, 440 Hz 0.5-1.5 s, silence 1.5-2.0 s,
  660 Hz 2.0-2.6 s, silence 2.6-3.0 s;
- ``customer_tone.wav``, 2.5 s: silence 0-1.6 s, 300 Hz 1.6-2.3 s, silence 2.3-2.5 s.

Every boundary falls on a 20 ms frame, so each frame's ``silent`` flag is known exactly.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import struct
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

import simulator.audio
from simulator import (
    AUDIO_DATA,
    AUDIO_METADATA,
    DEFAULT_AGENT_RAW_ID,
    DEMO_AUDIO_DIR,
    DEMO_AUDIO_MIXED_SCRIPT,
    DEMO_AUDIO_SCRIPT,
    DEMO_DIR,
    AudioPlan,
    AudioScript,
    AudioTrack,
    Script,
    ScriptError,
    audio_script_from_wavs,
    default_raw_ids,
    load_audio_script,
    load_call_script,
    load_script,
    mix_pcm,
    plan_audio_packets,
    read_wav,
    resample_pcm,
    script_kind,
    simulate_calls,
    stream_call,
)
from streaming.acs.packets import AudioData, AudioMetadata, parse_packet
from tests.servers import CallbackRecorder

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
TONES_CALL = FIXTURES / "tones_call.toml"
AGENT_WAV = FIXTURES / "agent_tones.wav"
CUSTOMER_WAV = FIXTURES / "customer_tone.wav"
AGENT = "8:acs:00000000-0000-4000-8000-000000000001_00000002-0000-4000-8000-000000000003"
CUSTOMER = "4:+15551230000"
START = datetime(2024, 11, 15, 19, 16, 12, 925000, tzinfo=UTC)
ACS_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# (start, end) seconds of sound in the fixture WAVs; the rest is digital silence.
AGENT_SOUND = [(0.5, 1.5), (2.0, 2.6)]
CUSTOMER_SOUND = [(1.6, 2.3)]


def tone_track(parts: Sequence[tuple[float, float]], rate: int = 16000) -> np.ndarray:
    """Concatenated (seconds, hertz) parts at amplitude 6000; 0 Hz is silence."""
    chunks = []
    for seconds, hertz in parts:
        t = np.arange(round(seconds * rate)) / rate
        chunks.append(6000 * np.sin(2 * np.pi * hertz * t) if hertz else np.zeros(len(t)))
    return np.rint(np.concatenate(chunks)).astype("<i2")


def write_wav(
    path: Path, samples: Any, *, rate: int = 16000, channels: int = 1, width: int = 2
) -> Path:
    """Write raw samples (already interleaved for several channels) as a PCM WAV."""
    dtype = {1: "u1", 2: "<i2", 4: "<i4"}[width]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, dtype=dtype).tobytes())
    return path


def pcm_of(samples: Any) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()


def plan(script: AudioScript, call_id: str = "call-1") -> AudioPlan:
    return plan_audio_packets(script, call_connection_id=call_id, start=START)


def bodies(packets: Sequence[Any]) -> list[dict[str, Any]]:
    """The ``audioData`` objects of the AudioData packets, decoded with json."""
    return [json.loads(p.payload)["audioData"] for p in packets if p.kind == AUDIO_DATA]


def sounding_frames(spans: Sequence[tuple[float, float]], frames: int) -> list[bool]:
    """Per 20 ms frame: does it fall inside one of ``spans``?"""
    return [any(a <= i / 50 < b for a, b in spans) for i in range(frames)]


# --- the demo call --------------------------------------------------------------------------


def read_transcript() -> list[tuple[str, float, float, str]]:
    turns = []
    for line in (DEMO_AUDIO_DIR / "transcript.txt").read_text(encoding="utf-8").splitlines():
        speaker, start, end, text = line.split("\t")
        turns.append((speaker, float(start), float(end), text))
    return turns


def test_demo_audio_call_matches_its_reference_transcript() -> None:
    script = load_audio_script(DEMO_AUDIO_SCRIPT)
    assert (script.mode, script.sample_rate) == ("unmixed", 16000)
    assert [t.raw_id for t in script.tracks][1] == "4:+15551230000"
    assert str(script.tracks[0].raw_id).startswith("8:acs:")
    assert 40 <= script.duration <= 60
    for name in ("agent.wav", "customer.wav"):
        assert (DEMO_AUDIO_DIR / name).stat().st_size < 2_000_000
        with wave.open(str(DEMO_AUDIO_DIR / name)) as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
    assert len({len(t.pcm) for t in script.tracks}) == 1, "both WAVs span the whole call"

    turns = read_transcript()
    assert 8 <= len(turns) <= 12
    assert {speaker for speaker, *_ in turns} == {"agent", "customer"}
    assert all(0 <= start < end <= script.duration for _, start, end, _ in turns)
    gaps = [b[1] - a[2] for a, b in itertools.pairwise(turns)]
    assert any(6 <= gap <= 8 for gap in gaps), "a hold where nobody talks"
    overlaps = [
        (a[0], b[0]) for (a, b), gap in zip(itertools.pairwise(turns), gaps, strict=True) if gap < 0
    ]
    assert overlaps == [("agent", "customer")], "the customer cuts in once"

    # The transcript's times are where each speaker's audio is: loud inside, silent outside.
    for track, speaker in zip(script.tracks, ("agent", "customer"), strict=True):
        samples = np.frombuffer(track.pcm, dtype="<i2").astype(np.float64)
        spans = [(start, end) for who, start, end, _ in turns if who == speaker]
        inside = np.zeros(len(samples), dtype=bool)
        for start, end in spans:
            inside[round(start * 16000) : round(end * 16000)] = True
        assert not samples[~inside].any(), f"{speaker} is silent outside their turns"
        for start, end in spans:
            turn = samples[round(start * 16000) : round(end * 16000)]
            assert np.sqrt(np.mean(turn**2)) > 300, f"{speaker} speaks at {start}"


def test_demo_plan_round_trips_through_the_project_parser() -> None:
    script = load_audio_script(DEMO_AUDIO_SCRIPT)
    packets = list(plan(script))
    assert len(packets) == 1 + 2 * script.frame_count
    rebuilt: dict[str | None, bytearray] = {t.raw_id: bytearray() for t in script.tracks}
    silent = 0
    for packet in packets[1:]:
        parsed = parse_packet(packet.payload)
        assert isinstance(parsed, AudioData)
        rebuilt[parsed.participant_raw_id] += parsed.pcm()
        silent += parsed.silent
    for track in script.tracks:
        assert bytes(rebuilt[track.raw_id]) == track.pcm.ljust(script.frame_count * 640, b"\0")
    assert 0.3 < silent / (len(packets) - 1) < 0.9, "each side is quiet while the other talks"


def test_mixed_demo_is_one_stream_of_the_summed_tracks() -> None:
    unmixed = load_audio_script(DEMO_AUDIO_SCRIPT)
    mixed = load_call_script(DEMO_AUDIO_MIXED_SCRIPT)
    assert isinstance(mixed, AudioScript)
    assert mixed.mode == "mixed"
    assert len(mixed.tracks) == 1
    assert mixed.tracks[0].pcm == mix_pcm([t.pcm for t in unmixed.tracks])
    packets = plan(mixed)
    assert len(packets) == 1 + unmixed.frame_count
    assert all("participantRawID" not in body for body in bodies(packets[1:50]))


# --- the fixture WAVs -----------------------------------------------------------------------


def test_fixture_wavs_are_the_documented_tones() -> None:
    agent = tone_track([(0.5, 0), (1.0, 440), (0.5, 0), (0.6, 660), (0.4, 0)])
    customer = tone_track([(1.6, 0), (0.7, 300), (0.2, 0)])
    assert read_wav(AGENT_WAV, 16000) == agent.tobytes()
    assert read_wav(CUSTOMER_WAV, 16000) == customer.tobytes()


# --- planning -------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "frame_bytes"), [(16000, 640), (24000, 960)])
def test_plan_is_metadata_then_frames_of_the_rate(rate: int, frame_bytes: int) -> None:
    script = load_audio_script(TONES_CALL, sample_rate=rate)
    assert script.frame_bytes == frame_bytes
    assert script.frame_count == 150  # 3 s, the longer WAV
    packets = plan(script)
    first = packets[0]
    assert (first.at, first.final, first.kind) == (0.0, False, AUDIO_METADATA)
    meta = json.loads(first.payload)
    assert meta["kind"] == "AudioMetadata"
    assert meta["audioMetadata"] == {
        "subscriptionId": meta["audioMetadata"]["subscriptionId"],
        "encoding": "PCM",
        "sampleRate": rate,
        "channels": 1,
        "length": frame_bytes,
    }
    parsed_meta = parse_packet(first.payload)
    assert isinstance(parsed_meta, AudioMetadata)
    assert (parsed_meta.sample_rate, parsed_meta.length) == (rate, frame_bytes)

    assert len(packets) == 1 + 2 * 150
    for packet in packets[1:]:
        assert packet.kind == AUDIO_DATA
        assert not packet.final
        data = parse_packet(packet.payload)
        assert isinstance(data, AudioData)
        assert len(data.pcm()) == frame_bytes
    # The PCM on the wire is exactly the (resampled) WAV, then zero padding.
    agent = b"".join(
        d.pcm() for p in packets[1::2] if isinstance(d := parse_packet(p.payload), AudioData)
    )
    assert agent == script.tracks[0].pcm
    customer = b"".join(
        d.pcm() for p in packets[2::2] if isinstance(d := parse_packet(p.payload), AudioData)
    )
    assert customer == script.tracks[1].pcm + bytes(len(agent) - len(script.tracks[1].pcm))


def test_frames_have_the_exact_acs_shape() -> None:
    script = load_audio_script(TONES_CALL)
    packets = plan(script)
    frame = json.loads(packets[1].payload)
    assert list(frame) == ["kind", "audioData"]
    assert frame["kind"] == "AudioData"
    assert list(frame["audioData"]) == ["timestamp", "participantRawID", "data", "silent"]
    assert frame["audioData"]["timestamp"] == "2024-11-15T19:16:12.925Z"
    assert frame["audioData"]["participantRawID"] == AGENT
    assert base64.b64decode(frame["audioData"]["data"]) == script.tracks[0].pcm[:640]
    assert frame["audioData"]["silent"] is True
    # Compact JSON, like ACS: no spaces to pay for 50 times a second.
    assert ": " not in packets[1].payload
    assert ", " not in packets[1].payload


def test_unmixed_frames_interleave_per_tick_with_timestamps_20_ms_apart() -> None:
    packets = plan(load_audio_script(TONES_CALL))
    data = packets[1:]
    assert [b["participantRawID"] for b in bodies(data[:6])] == [AGENT, CUSTOMER] * 3
    for tick in range(150):
        agent, customer = data[2 * tick], data[2 * tick + 1]
        assert agent.at == customer.at == pytest.approx((tick + 1) * 0.02)
        stamps = {b["timestamp"] for b in bodies([agent, customer])}
        assert len(stamps) == 1, "both participants' frames of a tick share its timestamp"
        stamp = stamps.pop()
        assert ACS_TIMESTAMP.match(stamp)
        assert datetime.fromisoformat(stamp) == START + timedelta(milliseconds=20 * tick)
    ats = [p.at for p in packets]
    assert ats == sorted(ats)


def test_silent_flags_follow_frame_energy() -> None:
    packets = plan(load_audio_script(TONES_CALL))
    agent = [b["silent"] for b in bodies(packets[1::2])]
    customer = [b["silent"] for b in bodies(packets[2::2])]
    assert agent == [not s for s in sounding_frames(AGENT_SOUND, 150)]
    assert customer == [not s for s in sounding_frames(CUSTOMER_SOUND, 150)]


@pytest.mark.parametrize(
    ("level", "silent"),
    [(0, True), (100, True), (103, True), (104, False), (110, False), (-3000, False)],
)
def test_silence_threshold_is_minus_50_dbfs_rms(level: int, silent: bool) -> None:
    # A constant signal's RMS is its level; -50 dBFS is 32768 * 10**-2.5 = 103.6.
    script = AudioScript("dc", "unmixed", 16000, (AudioTrack(AGENT, pcm_of([level] * 320)),))
    assert bodies(plan(script))[0]["silent"] is silent


def test_short_tracks_are_padded_with_silent_zero_frames() -> None:
    tracks = (
        AudioTrack(AGENT, pcm_of([500] * 320 * 5)),  # 5 frames
        AudioTrack(CUSTOMER, pcm_of([700] * 330)),  # 1 frame and 10 samples
    )
    packets = plan(AudioScript("pad", "unmixed", 16000, tracks))
    assert len(packets) == 1 + 2 * 5
    customer = [parse_packet(p.payload) for p in packets[2::2]]
    assert all(isinstance(d, AudioData) for d in customer)
    pcms = [d.pcm() for d in customer if isinstance(d, AudioData)]
    assert pcms[0] == pcm_of([700] * 320)
    assert pcms[1] == pcm_of([700] * 10 + [0] * 310), "a partial last frame is zero-filled"
    assert pcms[2:] == [bytes(640)] * 3
    # 10 samples of 700 in a frame of 320 are still an RMS of 124, above -50 dBFS (103.6).
    assert [d.silent for d in customer if isinstance(d, AudioData)] == [False, False] + [True] * 3


def test_mixed_mode_sums_tracks_and_clips() -> None:
    a = pcm_of([1000, 20000, -20000, 32767, -5] + [0] * 315)
    b = pcm_of([2000, 20000, -20000, 1, 5])  # shorter: padded before summing
    mixed = mix_pcm([a, b])
    assert np.frombuffer(mixed, dtype="<i2")[:6].tolist() == [3000, 32767, -32768, 32767, 0, 0]
    assert len(mixed) == len(a)

    script = AudioScript("mix", "mixed", 16000, (AudioTrack(None, mixed),))
    packets = plan(script)
    assert len(packets) == 2
    data = parse_packet(packets[1].payload)
    assert isinstance(data, AudioData)
    assert data.participant_raw_id is None
    assert data.pcm() == mixed
    assert "participantRawID" not in packets[1].payload


def test_wavs_mixed_into_one_stream() -> None:
    script = audio_script_from_wavs([AGENT_WAV, CUSTOMER_WAV], mixed=True)
    assert (script.mode, len(script.tracks), script.tracks[0].raw_id) == ("mixed", 1, None)
    assert script.tracks[0].pcm == mix_pcm(
        [read_wav(AGENT_WAV, 16000), read_wav(CUSTOMER_WAV, 16000)]
    )
    silent = [b["silent"] for b in bodies(plan(script))]
    assert silent == [not s for s in sounding_frames(AGENT_SOUND + CUSTOMER_SOUND, 150)]


def test_audio_plan_is_a_lazy_sequence_sharing_encoded_frames() -> None:
    script = load_audio_script(TONES_CALL)
    one, two = plan(script, "call-1"), plan(script, "call-2")
    assert one._frames is two._frames, "frames are encoded once per script"
    assert list(one) == [one[i] for i in range(len(one))]
    assert one[-1] == one[len(one) - 1]
    assert one[1:4] == [one[1], one[2], one[3]]
    with pytest.raises(IndexError):
        one[len(one)]
    # Same frames, different calls: only the metadata's subscription id differs.
    assert one[0] != two[0]
    assert [p.payload for p in one[1:]] == [p.payload for p in two[1:]]


def test_start_defaults_to_now_and_is_cut_to_milliseconds() -> None:
    script = load_audio_script(TONES_CALL)
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    packets = plan_audio_packets(script, call_connection_id="c")
    stamp = datetime.fromisoformat(bodies(packets[1:2])[0]["timestamp"])
    assert before <= stamp <= datetime.now(UTC)
    naive = plan_audio_packets(
        script,
        call_connection_id="c",
        start=datetime(2025, 1, 2, 3, 4, 5, 678999),  # noqa: DTZ001
    )
    assert bodies(naive[1:2])[0]["timestamp"] == "2025-01-02T03:04:05.678Z"


# --- WAVs and resampling --------------------------------------------------------------------


def test_wav_at_another_rate_is_resampled(tmp_path: Path) -> None:
    samples = tone_track([(1.0, 1000)], rate=24000)
    wav = write_wav(tmp_path / "24k.wav", samples, rate=24000)
    pcm = read_wav(wav, 16000)
    assert len(pcm) == 2 * 16000
    spectrum = np.abs(np.fft.rfft(np.frombuffer(pcm, dtype="<i2")))
    assert np.argmax(spectrum) == 1000, "a 1 kHz tone stays 1 kHz"
    up = np.frombuffer(resample_pcm(pcm, 16000, 24000), dtype="<i2")
    assert len(up) == 24000
    assert np.argmax(np.abs(np.fft.rfft(up))) == 1000
    assert np.max(np.abs(up.astype(int) - samples.astype(int))) < 200
    # Frequencies above the new Nyquist are removed, not folded back.
    high = tone_track([(1.0, 10000)], rate=24000).tobytes()
    assert np.abs(np.frombuffer(resample_pcm(high, 24000, 16000), dtype="<i2")).max() < 50


def test_resample_pcm_edge_cases() -> None:
    assert resample_pcm(b"", 24000, 16000) == b""
    assert resample_pcm(pcm_of([1, 2, 3]), 16000, 16000) == pcm_of([1, 2, 3])
    assert len(resample_pcm(pcm_of([5]), 16000, 48000)) == 2 * 3
    with pytest.raises(ValueError, match="positive"):
        resample_pcm(b"\0\0", 0, 16000)


def float_wav(path: Path) -> Path:
    """A 32-bit IEEE-float WAV, which ``wave`` cannot read, written by hand."""
    data = struct.pack("<4f", 0.0, 0.5, -0.5, 0.0)
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: write_wav(p, [0, 0] * 100, channels=2), "2 channels; only mono"),
        (lambda p: write_wav(p, [128] * 100, width=1), "8-bit samples; only 16-bit"),
        (lambda p: write_wav(p, [0] * 100, width=4), "32-bit samples; only 16-bit"),
        (float_wav, "not a 16-bit PCM WAV file: unknown format: 3"),
        (lambda p: p.write_bytes(b"not a wav at all, just text"), "not a 16-bit PCM WAV file"),
        (lambda p: p.write_bytes(b"RIFF"), "not a 16-bit PCM WAV file: file is truncated"),
        (lambda p: write_wav(p, []), "WAV holds no audio"),
        (lambda p: None, "cannot read WAV: No such file or directory"),
        (lambda p: p.mkdir(), "cannot read WAV"),
    ],
)
def test_bad_wavs_raise_script_error(tmp_path: Path, make: Any, expected: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(ScriptError) as caught:
        read_wav(path, 16000)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_wrong_rate_without_resampling_is_an_error(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "8k.wav", [0] * 800, rate=8000)
    with pytest.raises(ScriptError, match=r"8k.wav: WAV is 8000 Hz but the call is 16000 Hz"):
        read_wav(wav, 16000, resample=False)
    with pytest.raises(ScriptError, match="resampling is off"):
        audio_script_from_wavs([wav], resample=False)
    assert len(read_wav(wav, 16000)) == 2 * 1600


# --- audio scripts --------------------------------------------------------------------------


def test_audio_script_loads_with_overrides() -> None:
    script = load_audio_script(TONES_CALL)
    assert (script.title, script.mode, script.sample_rate) == ("Tones", "unmixed", 16000)
    assert [t.raw_id for t in script.tracks] == [AGENT, CUSTOMER]
    assert script.tracks[0].source == str(AGENT_WAV)
    assert script.duration == 3.0
    mixed = load_audio_script(TONES_CALL, mode="mixed", sample_rate=24000)
    assert (mixed.mode, mixed.sample_rate, len(mixed.tracks)) == ("mixed", 24000, 1)
    assert len(mixed.tracks[0].pcm) == 2 * 24000 * 3
    with pytest.raises(ScriptError, match="resampling is off"):
        load_audio_script(TONES_CALL, sample_rate=24000, resample=False)


def test_load_call_script_tells_the_kinds_apart() -> None:
    assert isinstance(load_call_script(DEMO_DIR / "short_call.toml"), Script)
    assert isinstance(load_call_script(TONES_CALL), AudioScript)
    assert script_kind(DEMO_DIR / "short_call.toml") == "transcription"
    assert script_kind(DEMO_AUDIO_MIXED_SCRIPT) == "audio"
    with pytest.raises(ScriptError, match=r"call: this is an audio script"):
        load_script(TONES_CALL)
    with pytest.raises(ScriptError, match=r"call: missing: this is not an audio script"):
        load_audio_script(DEMO_DIR / "short_call.toml")


def write_script(folder: Path, text: str) -> Path:
    write_wav(folder / "a.wav", [1000, -1000] * 800)
    write_wav(folder / "b.wav", [0] * 800)
    path = folder / "call.toml"
    path.write_text(text, encoding="utf-8")
    return path


CALL = '[call]\nkind = "audio"\n'
PARTS = (
    '[[participants]]\nraw_id = "8:acs:x"\nwav = "a.wav"\n'
    '[[participants]]\nraw_id = "4:+1"\nwav = "b.wav"\n'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[call]\nkind = "video"\n' + PARTS, "call.kind: must be \"audio\", got 'video'"),
        ("[call]\n" + PARTS, 'call.kind: must be "audio", got None'),
        ('call = "audio"\n', "call: must be a [call] table"),
        (CALL + 'mode = "stereo"\n' + PARTS, 'call.mode: must be "unmixed" or "mixed"'),
        (CALL + "sample_rate = 8000\n" + PARTS, "call.sample_rate: must be 16000 or 24000"),
        (CALL + "sample_rate = true\n" + PARTS, "call.sample_rate: must be 16000 or 24000"),
        (CALL + "sample_rate = 16000.0\n" + PARTS, "call.sample_rate: must be 16000 or 24000"),
        (CALL + 'resample = "yes"\n' + PARTS, "call.resample: must be true or false"),
        (CALL + "speed = 2\n" + PARTS, "call: unknown key(s) speed"),
        (CALL + PARTS + "[extra]\n", "top level: unknown key(s) extra"),
        (CALL, "participants: needs at least one [[participants]] table"),
        (CALL + '[[participants]]\nwav = "a.wav"\n', "participants[0].raw_id: must be a non-empty"),
        (
            CALL + '[[participants]]\nraw_id = "8:acs:x"\n',
            "participants[0].wav: must be a non-empty",
        ),
        (
            CALL + '[[participants]]\nraw_id = "x"\nwav = "a.wav"\nvolume = 2\n',
            "participants[0]: unknown key(s) volume",
        ),
        (
            CALL + '[[participants]]\nraw_id = "x"\nwav = "a.wav"\n'
            '[[participants]]\nraw_id = "x"\nwav = "b.wav"\n',
            "participants[1].raw_id: duplicate raw id 'x'",
        ),
        (CALL + 'wav = "a.wav"\n', "call.wav: only for mixed audio"),
        (CALL + 'mode = "mixed"\nwav = "a.wav"\n' + PARTS, "participants: not allowed with"),
        (
            CALL + '[[participants]]\nraw_id = "x"\nwav = "missing.wav"\n',
            "missing.wav: cannot read WAV: No such file or directory",
        ),
        ("[call\n", "not valid TOML"),
    ],
)
def test_bad_audio_scripts_raise_script_error(tmp_path: Path, text: str, expected: str) -> None:
    path = write_script(tmp_path, text)
    with pytest.raises(ScriptError) as caught:
        load_audio_script(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_mixed_scripts_take_one_wav_or_participants_without_raw_ids(tmp_path: Path) -> None:
    one = load_audio_script(write_script(tmp_path, CALL + 'mode = "mixed"\nwav = "a.wav"\n'))
    assert one.tracks[0].pcm == read_wav(tmp_path / "a.wav", 16000)
    summed = load_audio_script(
        write_script(
            tmp_path,
            CALL
            + 'mode = "mixed"\n[[participants]]\nwav = "a.wav"\n[[participants]]\nwav = "b.wav"\n',
        )
    )
    assert summed.tracks[0].raw_id is None
    assert summed.title == "call"  # the file name when the script has no title


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"mode": "both"}, "mode must be one of unmixed, mixed"),
        ({"sample_rate": 44100}, "sample_rate must be 16000 or 24000"),
        ({"sample_rate": 16000.0}, "sample_rate must be 16000 or 24000"),
        ({"tracks": ()}, "at least one track"),
        ({"mode": "mixed"}, "mixed audio is one track without a raw id"),
        ({"tracks": (AudioTrack(None, b"\0\0"),)}, "distinct, non-empty raw ids"),
        ({"tracks": (AudioTrack("x", b"\0\0"), AudioTrack("x", b"\0\0"))}, "distinct"),
        ({"tracks": (AudioTrack("x", b"\0"),)}, "odd byte count"),
        ({"tracks": (AudioTrack("x", b""),)}, "every track is empty"),
    ],
)
def test_audio_scripts_built_in_code_are_checked(kwargs: dict[str, Any], expected: str) -> None:
    fields: dict[str, Any] = {
        "title": "t",
        "mode": "unmixed",
        "sample_rate": 16000,
        "tracks": (AudioTrack("a", b"\0\0"), AudioTrack("b", b"\0\0")),
    }
    with pytest.raises(ScriptError, match=expected):
        AudioScript(**{**fields, **kwargs})


def test_wavs_get_default_or_given_raw_ids() -> None:
    assert default_raw_ids(3) == [DEFAULT_AGENT_RAW_ID, "4:+15555550123", "4:+15555550124"]
    script = audio_script_from_wavs([AGENT_WAV, CUSTOMER_WAV])
    assert [t.raw_id for t in script.tracks] == default_raw_ids(2)
    assert script.title == "agent_tones.wav + customer_tone.wav"
    named = audio_script_from_wavs([AGENT_WAV], raw_ids=["8:acs:me"], title="Me")
    assert (named.title, named.tracks[0].raw_id) == ("Me", "8:acs:me")
    with pytest.raises(ScriptError, match=r"2 WAV file\(s\) but 1 raw id"):
        audio_script_from_wavs([AGENT_WAV, CUSTOMER_WAV], raw_ids=["8:acs:me"])
    with pytest.raises(ScriptError, match="no WAV files"):
        audio_script_from_wavs([])
    with pytest.raises(ScriptError, match="16000 or 24000"):
        audio_script_from_wavs([AGENT_WAV], sample_rate=8000)


# --- the wire -------------------------------------------------------------------------------


@dataclass
class Received:
    """What one simulated call looked like from the server side."""

    path: str
    headers: dict[str, str]
    requested_at: float  # loop time of the handshake request, before the client's clock starts
    frames: list[tuple[float, str]] = field(default_factory=list)
    close_code: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Endpoint:
    """A stand-in for Callsite's /ws/acs/ endpoint that records every frame and its time."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[Received] = []
        self._requested_at: dict[ServerConnection, float] = {}

    def process_request(self, connection: ServerConnection, request: Request) -> None:
        self._requested_at[connection] = asyncio.get_running_loop().time()

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        record = Received(ws.request.path, headers, self._requested_at.pop(ws))
        self.calls.append(record)
        loop = asyncio.get_running_loop()
        async for message in ws:
            assert isinstance(message, str), "packets go out as text frames"
            record.frames.append((loop.time(), message))
        record.close_code = ws.close_code
        record.done.set()

    async def settled(self, calls: int) -> list[Received]:
        """Wait until ``calls`` connections have closed on the server side too."""
        assert len(self.calls) == calls
        async with asyncio.timeout(5):
            for record in self.calls:
                await record.done.wait()
        return self.calls


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    fake = Endpoint()
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/ws/acs/"
        yield fake


def check_call_received(record: Received, script: AudioScript) -> None:
    """Metadata first, then every frame in tick order with the exact PCM, then a clean close."""
    assert record.close_code == 1000
    packets = [parse_packet(message) for _, message in record.frames]
    assert isinstance(packets[0], AudioMetadata)
    assert packets[0].sample_rate == script.sample_rate
    frames = packets[1:]
    assert len(frames) == script.frame_count * len(script.tracks)
    assert all(isinstance(f, AudioData) for f in frames)
    data = [f for f in frames if isinstance(f, AudioData)]
    for index, track in enumerate(script.tracks):
        mine = data[index :: len(script.tracks)]
        assert {f.participant_raw_id for f in mine} == {track.raw_id}
        pcm = b"".join(f.pcm() for f in mine)
        assert pcm == track.pcm.ljust(len(pcm), b"\0")
        stamps = [f.timestamp for f in mine]
        assert all(s is not None for s in stamps)
        steps = {(b - a).total_seconds() for a, b in itertools.pairwise(stamps) if a and b}
        assert steps == {0.02}


async def test_stream_call_sends_the_audio_on_schedule(endpoint: Endpoint) -> None:
    script = load_audio_script(TONES_CALL)
    speed = 10.0
    seen: list[str] = []
    result = await stream_call(
        endpoint.url,
        call_connection_id="audio-1",
        script=script,
        token="t",
        speed=speed,
        on_packet=lambda p: seen.append(p.kind),
    )
    assert (result.packets_sent, result.frames_sent) == (301, 300)
    assert (result.finals_sent, result.intermediates_sent) == (0, 0)
    assert seen == [AUDIO_METADATA] + [AUDIO_DATA] * 300
    [record] = await endpoint.settled(1)
    assert record.headers["x-ms-call-connection-id"] == "audio-1"
    assert "call=audio-1" in record.path
    check_call_received(record, script)

    # Pacing: tick n goes out (n + 1) * 20 ms / speed after the socket opened, never sooner.
    # The client's clock starts after the handshake request, so the lower bound is exact.
    for n in range(150):
        agent_at, customer_at = record.frames[1 + 2 * n][0], record.frames[2 + 2 * n][0]
        assert agent_at - record.requested_at >= (n + 1) * 0.02 / speed - 0.001
        assert customer_at >= agent_at
    last = record.frames[-1][0] - record.requested_at
    assert last < 3.0 / speed + 0.25
    assert 0.999 * 3.0 / speed <= result.elapsed < 3.0 / speed + 0.25


async def test_sender_keeps_to_the_clock_when_sleeps_overshoot(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sleep wakes 5 ms late: deadlines from one start absorb it instead of adding up."""
    real_sleep = asyncio.sleep
    late: list[float] = []

    async def oversleep(delay: float, result: Any = None) -> Any:
        if delay > 0:
            late.append(delay)
            delay += 0.005
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", oversleep)
    script = load_audio_script(TONES_CALL)
    result = await stream_call(
        endpoint.url, call_connection_id="late", script=script, token=None, speed=10
    )
    # 150 ticks 2 ms apart: sleeping per frame would take at least 150 * 7 ms = 1.05 s.
    assert len(late) < 150, "ticks that are already due are sent without sleeping"
    assert result.elapsed < 0.3 + 0.2
    [record] = await endpoint.settled(1)
    check_call_received(record, script)


async def test_simulate_calls_plays_audio_to_concurrent_calls(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = load_audio_script(TONES_CALL)
    encoded = []
    original = simulator.audio.audio_frame_tails

    def counting(*args: Any) -> tuple[str, ...]:
        encoded.append(args[0])
        return original(*args)

    monkeypatch.setattr(simulator.audio, "audio_frame_tails", counting)
    lines: list[str] = []
    results = await simulate_calls(
        endpoint.url,
        script=script,
        calls=3,
        token=None,
        speed=20,
        stagger=0.1,
        call_prefix="tone",
        progress=lines.append,
    )
    assert len(encoded) == 2, "each WAV is encoded once for all calls"
    assert [r.frames_sent for r in results] == [300] * 3
    assert len({r.call_connection_id for r in results}) == 3
    for record in await endpoint.settled(3):
        check_call_received(record, script)
    assert sum("connected" in line for line in lines) == 3
    assert sum("done: 300 frames" in line for line in lines) == 3


async def test_speed_zero_sends_everything_at_once(endpoint: Endpoint) -> None:
    script = load_audio_script(DEMO_AUDIO_SCRIPT)
    recorder = CallbackRecorder()
    try:
        result = await stream_call(
            endpoint.url,
            call_connection_id="fast",
            script=script,
            token=None,
            speed=0,
            callbacks_to=recorder.url,
        )
    finally:
        recorder.close()
    assert result.frames_sent == 2 * script.frame_count
    # The demo's hold: a ParticipantsUpdated at 23 s and one at 29 s, 6 s apart by their times.
    times = [datetime.fromisoformat(body[0]["time"]) for _path, body in recorder.bodies]
    assert (times[1] - times[0]).total_seconds() == 6.0
    assert result.elapsed < script.duration / 10
    [record] = await endpoint.settled(1)
    check_call_received(record, script)


# --- the command ----------------------------------------------------------------------------


async def run_command(*args: str) -> str:
    """Run ``simulate_call`` in a thread (it runs its own event loop); return its stdout."""
    from io import StringIO

    out, err = StringIO(), StringIO()
    await asyncio.to_thread(call_command, "simulate_call", *args, stdout=out, stderr=err)
    return out.getvalue()


async def test_command_streams_wavs_unmixed(endpoint: Endpoint) -> None:
    out = await run_command(
        "--url", endpoint.url, "--wav", str(AGENT_WAV), "--wav", str(CUSTOMER_WAV), "--speed", "0"
    )
    assert "(audio, unmixed, 2 stream(s) at 16000 Hz, 3.0 s)" in out
    assert "1 call(s) completed: 0 finals, 300 audio frames, 301 packets" in out
    [record] = await endpoint.settled(1)
    check_call_received(record, audio_script_from_wavs([AGENT_WAV, CUSTOMER_WAV]))


async def test_command_streams_wavs_mixed_at_24k_with_raw_ids(endpoint: Endpoint) -> None:
    out = await run_command(
        "--url",
        endpoint.url,
        "--wav",
        str(AGENT_WAV),
        "--wav",
        str(CUSTOMER_WAV),
        "--mixed",
        "--sample-rate",
        "24000",
        "--speed",
        "0",
        "--calls",
        "2",
    )
    assert "(audio, mixed, 1 stream(s) at 24000 Hz, 3.0 s)" in out
    assert "2 call(s) completed: 0 finals, 300 audio frames" in out
    script = audio_script_from_wavs([AGENT_WAV, CUSTOMER_WAV], mixed=True, sample_rate=24000)
    for record in await endpoint.settled(2):
        check_call_received(record, script)
        first = parse_packet(record.frames[1][1])
        assert isinstance(first, AudioData)
        assert len(first.pcm()) == 960


async def test_command_plays_audio_scripts_with_overrides(endpoint: Endpoint) -> None:
    out = await run_command("--url", endpoint.url, "--script", str(TONES_CALL), "--speed", "0")
    assert "Streaming 'Tones' (audio, unmixed" in out
    await run_command("--url", endpoint.url, "--script", str(TONES_CALL), "--mixed", "--speed", "0")
    records = await endpoint.settled(2)
    check_call_received(records[1], load_audio_script(TONES_CALL, mode="mixed"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--wav", "a.wav", "--script", "b.toml"], "either --script or --wav"),
        (["--raw-id", "8:acs:x"], "--raw-id names the participants of --wav"),
        (["--wav", "a.wav", "--sample-rate", "8000"], "--sample-rate must be 16000 or 24000"),
        (["--mixed"], "--mixed, --sample-rate and --no-resample are for audio calls; "),
        (["--sample-rate", "16000", "--script", str(DEMO_DIR / "short_call.toml")], "short_call"),
        (["--wav", "nope.wav"], "nope.wav: cannot read WAV"),
        (
            ["--wav", str(AGENT_WAV), "--sample-rate", "24000", "--no-resample"],
            "resampling is off",
        ),
    ],
)
def test_command_rejects_bad_audio_options(args: list[str], expected: str) -> None:
    with pytest.raises(CommandError, match=re.escape(expected)):
        call_command("simulate_call", "--url", "ws://127.0.0.1:9/ws/acs/", *args)
