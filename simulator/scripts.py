"""Transcription scripts: a scripted conversation in TOML, read and checked.

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
    sentiment = "negative"              # optional: ACS's sentimentAnalysisResult on the Final
    language = "en-US"                  # optional: ACS's languageIdentified on the Final

    [[signals]]                         # optional: what else ACS reports (docs/simulator.md)
    kind = "hold"                       # "hold" or "mute" (ParticipantsUpdated callbacks
    speaker = "customer"                #   to /acs/callbacks/<id>/), or "dtmf" (DtmfData)
    before = 10                         # in the pause before this turn (1 = the first)
    seconds = 20                        # hold and mute: how long
    tones = "1234"                      # dtmf: the tones pressed, 0.3 s apart

The TOML helpers here serve the audio scripts (``simulator.audio``) too; their signals give
``at`` (seconds from the start of the call) instead of ``before``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_LOCALE = "en-US"
DEFAULT_PAUSE = 0.4
DEFAULT_CONFIDENCE = 0.9
DEFAULT_WPM = 150.0
MAX_WPM = 1000.0
DEMO_DIR = Path(__file__).with_name("calls")
DEFAULT_SCRIPT = DEMO_DIR / "billing_call.toml"
SENTIMENTS = ("positive", "neutral", "negative", "mixed")
SIGNAL_KINDS = ("hold", "mute", "dtmf")
DTMF_TONES = frozenset("0123456789*#ABCD")
TONE_GAP = 0.3  # seconds between scripted DTMF tones


class ScriptError(ValueError):
    """A script file is missing, not valid TOML, or breaks the script format."""


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
    sentiment: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Signal:
    """A hold, a mute or DTMF tones by one participant, before a turn or at a time.

    ``speaker`` is the participant's raw id. Transcription scripts place a signal in the
    pause ``before`` a turn (1-based), which grows to fit it; audio scripts ``at`` seconds.
    """

    kind: str
    speaker: str
    before: int | None = None
    at: float | None = None
    seconds: float = 0.0
    tones: str = ""


@dataclass(frozen=True)
class Script:
    """A whole scripted call."""

    title: str
    locale: str
    speakers: tuple[Speaker, ...]
    turns: tuple[Turn, ...]
    signals: tuple[Signal, ...] = ()


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


def parse_signals(
    data: Mapping[str, Any], source: str, speakers: Mapping[str, str], *, timed: bool
) -> tuple[Signal, ...]:
    """The ``[[signals]]`` of a script; ``speakers`` maps the names signals use to raw ids.

    ``timed``: an audio script's, placed ``at`` a time; otherwise ``before`` a turn.
    """
    tables = data.get("signals", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        _fail(source, "signals", "must be [[signals]] tables")
    found = []
    for i, table in enumerate(tables):
        where = f"signals[{i}]."
        place = "at" if timed else "before"
        _check_keys(table, {"kind", "speaker", place, "seconds", "tones"}, source, where[:-1])
        kind = _text(table, "kind", source, where)
        if kind not in SIGNAL_KINDS:
            _fail(source, f"{where}kind", f"must be one of {', '.join(SIGNAL_KINDS)}, got {kind!r}")
        name = _text(table, "speaker", source, where)
        if name not in speakers:
            _fail(source, f"{where}speaker", f"unknown speaker {name!r} (known: {list(speakers)})")
        seconds, tones = 0.0, ""
        if kind == "dtmf":
            tones = _text(table, "tones", source, where)
            if not set(tones) <= DTMF_TONES:
                _fail(source, f"{where}tones", f"DTMF tones are 0-9, *, # and A-D, got {tones!r}")
        else:
            seconds = _number(table, "seconds", 0.0, source, where)
            if not seconds > 0:
                _fail(source, f"{where}seconds", f"must be > 0, got {seconds}")
        before, at = None, None
        if timed:
            at = _number(table, "at", -1.0, source, where)
            if at < 0:
                _fail(source, f"{where}at", f"must be >= 0 seconds, got {at}")
        else:
            value = table.get("before")
            if type(value) is not int or value < 1:
                _fail(source, f"{where}before", f"must be a turn number (1 or more), got {value!r}")
            before = value
        found.append(Signal(kind, speakers[name], before, at, seconds, tones))
    return tuple(found)


def _optional_choice(
    table: Mapping[str, Any], key: str, choices: tuple[str, ...] | None, source: str, where: str
) -> str | None:
    if key not in table:
        return None
    value = _text(table, key, source, where)
    if choices is not None and value not in choices:
        _fail(source, f"{where}{key}", f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _parse_script(data: Mapping[str, Any], source: str) -> Script:
    _check_keys(data, {"title", "locale", "speakers", "turns", "signals"}, source, "top level")
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
        _check_keys(
            table,
            {"speaker", "text", "pause", "confidence", "wpm", "sentiment", "language"},
            source,
            where[:-1],
        )
        speaker_key = _text(table, "speaker", source, where)
        if speaker_key not in keys:
            _fail(source, f"{where}speaker", f"unknown speaker {speaker_key!r} (known: {keys})")
        turn = Turn(
            speaker_key,
            " ".join(_text(table, "text", source, where).split()),
            _number(table, "pause", DEFAULT_PAUSE, source, where),
            _number(table, "confidence", DEFAULT_CONFIDENCE, source, where),
            _number(table, "wpm", DEFAULT_WPM, source, where),
            _optional_choice(table, "sentiment", SENTIMENTS, source, where),
            _optional_choice(table, "language", None, source, where),
        )
        if problem := _turn_problem(turn):
            _fail(source, f"{where}{problem[0]}", problem[1])
        turns.append(turn)
    signals = parse_signals(data, source, {s.key: s.raw_id for s in speakers}, timed=False)
    for i, signal in enumerate(signals):
        if signal.before is not None and signal.before > len(turns):
            _fail(source, f"signals[{i}].before", f"there are only {len(turns)} turns")
    return Script(title, locale, tuple(speakers), tuple(turns), signals)


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
