"""Regenerate the demo call's audio from its dialogue with flite text-to-speech.

Run from the project root (needs Debian's ``flite``; ``sox`` only if flite's output is not
16 kHz)::

    .venv/bin/python simulator/calls/audio/generate.py

Each turn of ``DIALOGUE`` is spoken by flite (agent: voice ``slt``, customer: voice ``rms``),
trimmed to its speech, levelled, and placed on the call's timeline ``gap`` seconds after the
previous turn ends (a negative gap starts it before then: an overlap). The agent's and the
customer's audio go to separate files of the same length, ``agent.wav`` and ``customer.wav``
(16 kHz, 16-bit mono), silent while the other one talks, as unmixed ACS audio would be.
``transcript.txt`` gets the reference transcript from the same run, one line per turn:
``speaker<TAB>start<TAB>end<TAB>text`` with times in seconds from the start of the call.

flite is deterministic, so rerunning this without changing ``DIALOGUE`` rewrites the same
files. See docs/simulator.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16000
VOICES = {"agent": "slt", "customer": "rms"}
LEAD_IN = 0.5  # seconds of silence before the first turn
TAIL = 0.6  # and after the last one
PEAK = 0.5  # each turn is scaled to this fraction of full scale, so an overlap cannot clip
SPEECH_DBFS = -50.0  # 10 ms windows louder than this count as speech when trimming
MARGIN = 0.05  # seconds kept either side of the detected speech


@dataclass(frozen=True)
class Line:
    """One turn: who speaks, seconds after the previous turn ends, and what they say."""

    speaker: str
    gap: float
    text: str


# A broadband customer calls about a dropping connection. The agent puts them on hold for
# 7 s while testing the line (dead air), and the customer cuts in before the agent finishes
# turn 6 (an overlap of about a second).
DIALOGUE = (
    Line("agent", 0.0, "Thank you for calling Contoso support, this is Dana. How can I help you?"),
    Line("customer", 0.6, "Hi Dana. My internet connection keeps dropping every few minutes."),
    Line("agent", 0.5, "I am sorry to hear that. Can I have your account number, please?"),
    Line("customer", 0.7, "Yes, it is four four seven two nine one eight."),
    Line("agent", 0.5, "Thank you. One moment please, I am testing your line now."),
    Line(
        "agent",
        7.0,
        "Thanks for waiting. I found a fault on the line outside your house, "
        "so I will book a technician.",
    ),
    Line("customer", -1.0, "Can they come today?"),
    Line("agent", 0.4, "Yes, a technician can visit this afternoon between two and four."),
    Line("customer", 0.6, "Great, that works for me. Thank you so much."),
    Line("agent", 0.5, "You are welcome. Thanks for calling, goodbye."),
)


def read_pcm(path: Path) -> np.ndarray:
    """A 16-bit mono WAV's samples as int16, resampled to RATE with sox if needed."""
    with wave.open(str(path), "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        data = wav.readframes(wav.getnframes())
    if (rate, width, channels) != (RATE, 2, 1):
        if shutil.which("sox") is None:
            sys.exit(f"{path}: flite wrote {rate} Hz audio and sox is not installed to resample")
        fixed = path.with_name(path.stem + "-16k.wav")
        subprocess.run(
            ["sox", str(path), "-r", str(RATE), "-c", "1", "-b", "16", str(fixed)], check=True
        )
        return read_pcm(fixed)
    return np.frombuffer(data, dtype="<i2").copy()


def speak(line: Line, workdir: Path, index: int) -> np.ndarray:
    """flite's rendering of one line, trimmed to its speech and scaled to PEAK, as float."""
    out = workdir / f"turn{index:02d}.wav"
    command = ["flite", "-voice", VOICES[line.speaker], "-t", line.text, "-o", str(out)]
    subprocess.run(command, check=True)
    samples = read_pcm(out).astype(np.float64)
    window = RATE // 100
    frames = len(samples) // window
    rms = np.sqrt(np.mean(samples[: frames * window].reshape(frames, window) ** 2, axis=1))
    loud = np.flatnonzero(rms > 32768 * 10 ** (SPEECH_DBFS / 20))
    if not len(loud):
        sys.exit(f"flite produced no audible speech for {line.text!r}")
    margin = round(MARGIN * RATE)
    start = max(0, loud[0] * window - margin)
    end = min(len(samples), (loud[-1] + 1) * window + margin)
    speech = samples[start:end]
    return speech * (PEAK * 32767 / np.abs(speech).max())


def build(outdir: Path) -> list[tuple[str, float, float, str]]:
    """Write agent.wav, customer.wav and transcript.txt to ``outdir``; return the turns."""
    with tempfile.TemporaryDirectory() as tmp:
        clips = [speak(line, Path(tmp), i) for i, line in enumerate(DIALOGUE)]
    placed: list[tuple[str, int, np.ndarray, str]] = []
    cursor = round(LEAD_IN * RATE)  # end of the previous turn, in samples
    for index, (line, clip) in enumerate(zip(DIALOGUE, clips, strict=True)):
        start = cursor + round(line.gap * RATE) if index else cursor
        if start < 0:
            sys.exit(f"turn {index} would start before the call does")
        placed.append((line.speaker, start, clip, line.text))
        cursor = max(cursor, start + len(clip))
    total = cursor + round(TAIL * RATE)
    tracks = {speaker: np.zeros(total) for speaker in VOICES}
    for speaker, start, clip, _text in placed:
        tracks[speaker][start : start + len(clip)] += clip
    for speaker, samples in tracks.items():
        pcm = np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()
        with wave.open(str(outdir / f"{speaker}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(pcm)
    turns = [
        (speaker, start / RATE, (start + len(clip)) / RATE, text)
        for speaker, start, clip, text in placed
    ]
    lines = [f"{speaker}\t{start:.3f}\t{end:.3f}\t{text}\n" for speaker, start, end, text in turns]
    (outdir / "transcript.txt").write_text("".join(lines), encoding="utf-8")
    return turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help=f"output folder (default {HERE})")
    args = parser.parse_args()
    if shutil.which("flite") is None:
        sys.exit("flite is not installed (Debian: apt-get install flite)")
    args.out.mkdir(parents=True, exist_ok=True)
    turns = build(args.out)
    for speaker, start, end, text in turns:
        print(f"{start:6.2f}-{end:6.2f}  {speaker:8}  {text}")
    with wave.open(str(args.out / "agent.wav"), "rb") as wav:
        print(f"{wav.getnframes() / RATE:.2f} s, {len(turns)} turns, written to {args.out}")


if __name__ == "__main__":
    main()
