"""Read speech for the recognizer benchmark, made on this machine: several voices, and each
clip again through a telephone channel.

Voices are Debian's text-to-speech engines (``apt-get install flite espeak-ng sox``): flite's
``slt``, ``rms``, ``awb`` and ``kal16`` and espeak-ng's American and British English. Every
voice reads every sentence of ``SENTENCES``; the sentences a voice reads become one stream,
as one participant of a call would speak them, with ``PAUSE`` seconds of silence between them.

The telephone-band version of a clip: band-limited to 300-3400 Hz and resampled to 8 kHz
(sox), line noise added (hiss ``LINE_SNR_DB`` below the speech and a 60 Hz hum), encoded as 8 kHz
G.711 µ-law (sox), then decoded and resampled to the 16 kHz PCM that ACS would stream.

Clips are cached in ``var/bench-speech/`` (rebuilt when this file's sentences or voices
change); nothing made here is checked in.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench-speech"
RATE = 16000
PAUSE = 1.2
LEAD_IN = 0.5
# Hiss this many dB below the speech: a fair line. At 25 dB Whisper tiny.en's errors on
# flite's slt voice went from 11% (band-limited and µ-law only) to 24%; at 35 dB, 16%.
LINE_SNR_DB = 30

# Twelve Harvard sentences (IEEE 1969, public domain), then twelve of a contact centre's.
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "Good morning, you are through to the billing team, how can I help?",
    "I was charged twice for my last bill and I would like a refund.",
    "Can you confirm the first line of your address and your postcode?",
    "My account number is three one four one five nine two six.",
    "The engineer will arrive between eight and ten tomorrow morning.",
    "I have cancelled the duplicate payment, you will see it in five days.",
    "Is there anything else I can help you with today?",
    "Please hold the line while I transfer you to a colleague.",
    "Mister Patel asked us to call him back after lunch.",
    "Your new contract starts on the first of next month.",
    "The router keeps dropping the connection every evening.",
    "Thank you for your patience, have a lovely afternoon.",
)
VOICES = {
    "flite-slt": ["flite", "-voice", "slt"],
    "flite-rms": ["flite", "-voice", "rms"],
    "flite-awb": ["flite", "-voice", "awb"],
    "flite-kal16": ["flite", "-voice", "kal16"],
    "espeak-en-us": ["espeak-ng", "-v", "en-us", "-s", "160"],
    "espeak-en-gb": ["espeak-ng", "-v", "en-gb", "-s", "160"],
}


@dataclass(frozen=True)
class Clip:
    """One stream of read speech: 16 kHz PCM, and what was said, sentence by sentence with
    its time span (seconds from the start)."""

    name: str
    pcm: bytes
    said: tuple[tuple[float, float, str], ...]

    @property
    def reference(self) -> str:
        return " ".join(text for _, _, text in self.said)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"the speech corpus needs {', '.join(missing)}: apt-get install flite espeak-ng sox"
        )


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32)


def _write(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes())


def _speak(command: list[str], text: str, out: Path, scratch: Path) -> np.ndarray:
    raw = scratch / "raw.wav"
    if command[0] == "flite":
        subprocess.run([*command, "-t", text, "-o", str(raw)], check=True)
    else:
        subprocess.run([*command, "-w", str(raw), text], check=True)
    subprocess.run(["sox", "-V1", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)],
                   check=True)  # fmt: skip
    samples = _read(out)
    loud = np.flatnonzero(np.abs(samples) > 300)
    samples = samples[loud[0] : loud[-1] + 1] if loud.size else samples
    return samples * (0.5 * 32767 / max(1.0, float(np.abs(samples).max())))


def telephone(samples: np.ndarray, scratch: Path, seed: int = 1) -> np.ndarray:
    """``samples`` (16 kHz) as they come back from a phone line: see the module docstring."""
    source, band, ulaw, back = (scratch / f"{n}.wav" for n in ("in", "band", "ulaw", "back"))
    _write(source, samples)
    sox = ["sox", "-V1"]
    subprocess.run([*sox, str(source), "-r", "8000", str(band), "sinc", "300-3400"], check=True)
    with wave.open(str(band)) as wav:
        narrow = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32)
    speech_rms = float(np.sqrt(np.mean(narrow[np.abs(narrow) > 300] ** 2)))
    rng = np.random.default_rng(seed)
    t = np.arange(narrow.size) / 8000
    noise = rng.normal(0, speech_rms * 10 ** (-LINE_SNR_DB / 20), narrow.size)
    noise += speech_rms * 0.02 * np.sin(2 * np.pi * 60 * t)
    _write(band, narrow + noise, rate=8000)
    subprocess.run([*sox, str(band), "-e", "u-law", str(ulaw)], check=True)
    pcm16 = ["-e", "signed-integer", "-b", "16", "-r", str(RATE)]
    subprocess.run([*sox, str(ulaw), *pcm16, str(back)], check=True)
    return _read(back)


def _stream(sentences: list[tuple[str, np.ndarray]], name: str) -> Clip:
    gap = np.zeros(int(PAUSE * RATE), dtype=np.float32)
    parts = [np.zeros(int(LEAD_IN * RATE), dtype=np.float32)]
    said = []
    at = LEAD_IN
    for text, samples in sentences:
        said.append((round(at, 3), round(at + samples.size / RATE, 3), text))
        at += samples.size / RATE + PAUSE
        parts += [samples, gap]
    pcm = np.clip(np.rint(np.concatenate(parts)), -32768, 32767).astype("<i2").tobytes()
    return Clip(name, pcm, tuple(said))


def corpus() -> dict[str, list[Clip]]:
    """``{"clean": [a stream per voice], "phone": [the same through a phone line]}``."""
    _require("flite", "espeak-ng", "sox")
    made_with = (SENTENCES, VOICES, PAUSE, LEAD_IN, LINE_SNR_DB)
    key = hashlib.sha256(repr(made_with).encode()).hexdigest()[:12]
    folder = CACHE / key
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, list[Clip]] = {"clean": [], "phone": []}
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(temporary)
        for voice, command in VOICES.items():
            for condition in ("clean", "phone"):
                sentences = []
                for number, text in enumerate(SENTENCES):
                    path = folder / f"{voice}-{condition}-{number:02d}.wav"
                    if not path.exists():
                        clean = _speak(command, text, scratch / "clean.wav", scratch)
                        made = clean if condition == "clean" else telephone(clean, scratch, number)
                        _write(path, made)
                    sentences.append((text, _read(path)))
                result[condition].append(_stream(sentences, f"{voice} ({condition})"))
    return result
