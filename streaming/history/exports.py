"""Render a call's transcript as JSON, CSV, plain text, SRT or WebVTT.

Pure: a ``Transcript`` goes in, text comes out; ``streaming.history.transcripts`` builds the
``Transcript`` from the database. Times are exact 100-ns ticks from the call's start; each
format's rules (columns, rounding, escaping, lines without timings) are described in
docs/exports.md, and the constants and helpers below are where they are decided.

Every format lists the lines in the same order (``ordered_lines``): by start, then by their
order in ``Transcript.lines``; a line without a start stays right after the line it followed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from streaming import units
from streaming.units import TICKS_PER_SECOND

TICKS_PER_MS: Final = TICKS_PER_SECOND // 1000

# A cue whose end would not be after its start (no end, a zero or negative duration, or a
# line wholly before the stream's start) lasts this long; so does a line without timings.
MIN_CUE_MS: Final = 1

UNKNOWN_SPEAKER: Final = "Unknown speaker"

FORMATS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "json": ("application/json", "json"),
        "csv": ("text/csv", "csv"),
        "txt": ("text/plain", "txt"),
        "srt": ("application/x-subrip", "srt"),
        "vtt": ("text/vtt", "vtt"),
    }
)

CSV_COLUMNS: Final = (
    "start",
    "end",
    "start_seconds",
    "end_seconds",
    "speaker",
    "role",
    "text",
    "confidence",
    "kind",
    "sentiment",
    "sentiment_source",
    "language",
    "redacted",
)

SPEECH: Final = "speech"  # a line's kind: something said
DTMF: Final = "dtmf"  # a DTMF tone pressed (its digit masked unless CALLSITE_DTMF_DIGITS=keep)

TXT_CONTINUATION: Final = "    "  # prefix of an utterance's second and later lines in TXT
TXT_UNTIMED: Final = "--:--:--"

# An SRT line that is only a number looks like a cue number to readers that tolerate
# missing blank lines (the ``srt`` package among them) when a time line follows it.
_SRT_NUMBER_LINE = re.compile(r"-?[0-9]+\.?[0-9]*")


@dataclass(frozen=True)
class TranscriptLine:
    """One utterance: times are 100-ns ticks from the call's start (``None``: unknown)."""

    speaker_key: str
    speaker: str
    role: str
    start_ticks: int | None
    end_ticks: int | None
    text: str
    confidence: float | None = None
    words: list[dict[str, Any]] = field(default_factory=list)  # text, offset, duration, confidence
    kind: str = SPEECH
    sentiment: str = ""  # positive, neutral, negative, mixed; empty: not known
    sentiment_source: str = ""  # acs or lexicon
    language: str = ""  # the language ACS identified
    redacted: bool | None = None  # PII/PCI masked before storage; None: redaction was off


def tone_text(tone: str) -> str:
    """What a DTMF line says: ``[DTMF •]`` (masked) or ``[DTMF 5]``."""
    return f"[DTMF {tone}]"


def _traits(line: TranscriptLine) -> str:
    """`` [negative, en-US]`` after the speaker in TXT and SRT, when either is known."""
    known = [_one_line(t) for t in (line.sentiment, line.language) if _one_line(t)]
    return f" [{', '.join(known)}]" if known else ""


@dataclass(frozen=True)
class Transcript:
    """A call and everything said on it; ``participants`` are (key, label, role)."""

    call_id: int
    connection_id: str | None
    started_at: datetime | None
    ended_at: datetime | None
    locale: str
    participants: list[tuple[str, str, str]]
    lines: list[TranscriptLine]


# ---------------------------------------------------------------------------------- shared


def ordered_lines(lines: list[TranscriptLine]) -> list[TranscriptLine]:
    """Lines by start, then by their given order; a line without a start keeps its place
    right after the line it followed (at the very beginning if it came first)."""
    keys: list[tuple[int, int, int]] = []
    anchor = (0, 0)  # (has a start, start ticks) of the last timed line seen
    for index, line in enumerate(lines):
        if line.start_ticks is not None:
            anchor = (1, line.start_ticks)
        keys.append((*anchor, index))
    order = sorted(range(len(lines)), key=keys.__getitem__)
    return [lines[i] for i in order]


def clean_text(text: str) -> str:
    """The text with every whitespace run that holds a line break made one ``\\n``, and
    stripped: no blank lines, no line starting or ending with whitespace.

    Line breaks are those of ``str.splitlines``: LF, CR, CR LF, VT, FF, FS, GS, RS, NEL,
    U+2028 and U+2029. Whitespace within a line is kept as it is.
    """
    return "\n".join(part for line in text.splitlines() if (part := line.strip()))


def _one_line(value: str) -> str:
    return " ".join(value.split())


def clean_label(label: str) -> str:
    """A speaker name on one line: whitespace runs made one space, ``Unknown speaker`` if empty."""
    return _one_line(label) or UNKNOWN_SPEAKER


def _floor_ms(ticks: int) -> int:
    return max(0, ticks // TICKS_PER_MS)


def _ceil_ms(ticks: int) -> int:
    return max(0, -(-ticks // TICKS_PER_MS))


def cue_times(lines: list[TranscriptLine]) -> list[tuple[int, int]]:
    """(start, end) in ms for each of ``lines`` (already ordered), as SRT and WebVTT show them.

    A start is floored to the millisecond and an end ceiled, both at least 0. An end that
    would not be after its start becomes start + ``MIN_CUE_MS``. A line without a start
    starts where the cue before it ends (0 for the first) and lasts ``MIN_CUE_MS``.
    """
    times: list[tuple[int, int]] = []
    previous_end = 0
    for line in lines:
        if line.start_ticks is None:
            start, end = previous_end, previous_end + MIN_CUE_MS
        else:
            start = _floor_ms(line.start_ticks)
            end = _ceil_ms(line.end_ticks) if line.end_ticks is not None else start
            if end <= start:
                end = start + MIN_CUE_MS
        times.append((start, end))
        previous_end = end
    return times


def _clock(ms: int, separator: str = ".") -> str:
    """``HH:MM:SS.mmm`` (hours grow past two digits when needed)."""
    seconds, milliseconds = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{milliseconds:03d}"


def _exact_seconds(ticks: int) -> str:
    """Ticks as an exact decimal number of seconds with 7 decimals, e.g. ``-0.0000001``."""
    whole, fraction = divmod(abs(ticks), TICKS_PER_SECOND)
    return f"{'-' if ticks < 0 else ''}{whole}.{fraction:07d}"


def _finite(value: Any) -> float | None:
    """A confidence as a finite float, or ``None`` (JSON has no NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _word(word: Mapping[str, Any]) -> dict[str, Any]:
    offset, duration = word.get("offset"), word.get("duration")
    return {
        "text": str(word.get("text", "")),
        "offset": offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
        "duration": (
            duration if isinstance(duration, int) and not isinstance(duration, bool) else None
        ),
        "confidence": _finite(word.get("confidence")),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _readable(moment: datetime | None) -> str | None:
    """``2025-03-04 10:00:00 UTC``: the pages' date and time format, in UTC."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration_ms(transcript: Transcript) -> int | None:
    start, end = transcript.started_at, transcript.ended_at
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


# ---------------------------------------------------------------------------------- formats


def render_json(transcript: Transcript) -> str:
    """The whole transcript: call, participants and lines with exact ticks and seconds."""
    lines = []
    for line in ordered_lines(transcript.lines):
        lines.append(
            {
                "start_ticks": line.start_ticks,
                "end_ticks": line.end_ticks,
                "start_seconds": (
                    line.start_ticks / TICKS_PER_SECOND if line.start_ticks is not None else None
                ),
                "end_seconds": (
                    line.end_ticks / TICKS_PER_SECOND if line.end_ticks is not None else None
                ),
                "speaker_key": line.speaker_key,
                "speaker": line.speaker,
                "role": line.role,
                "text": line.text,
                "confidence": _finite(line.confidence),
                "words": [_word(w) for w in line.words],
                "kind": line.kind,
                "sentiment": line.sentiment or None,
                "sentiment_source": line.sentiment_source or None,
                "language": line.language or None,
                "redacted": line.redacted,
            }
        )
    document = {
        "call": {
            "id": transcript.call_id,
            "connection_id": transcript.connection_id,
            "started_at": _iso(transcript.started_at),
            "ended_at": _iso(transcript.ended_at),
            "duration_ms": _duration_ms(transcript),
            "locale": transcript.locale,
        },
        "ticks_per_second": TICKS_PER_SECOND,
        "participants": [
            {"key": key, "label": label, "role": role}
            for key, label, role in transcript.participants
        ],
        "lines": lines,
    }
    return json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def render_csv(transcript: Transcript, *, spreadsheet: bool = False) -> str:
    """One header row, then one row per line (``CSV_COLUMNS``), RFC 4180 quoting, CRLF rows.

    ``spreadsheet``: for opening in a spreadsheet, a cell that begins with ``=``, ``+``,
    ``-``, ``@`` or a tab or carriage return is written after an apostrophe, so what was said
    on a call ("=HYPERLINK(...)") is shown as text and never run as a formula.
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    cell = _spreadsheet_cell if spreadsheet else str
    for line in ordered_lines(transcript.lines):
        start, end = line.start_ticks, line.end_ticks
        confidence = _finite(line.confidence)
        writer.writerow(
            (
                _clock(_floor_ms(start)) if start is not None else "",
                _clock(_ceil_ms(end)) if end is not None else "",
                _exact_seconds(start) if start is not None else "",
                _exact_seconds(end) if end is not None else "",
                cell(line.speaker),
                cell(line.role),
                cell(line.text),
                repr(confidence) if confidence is not None else "",
                line.kind,
                line.sentiment,
                line.sentiment_source,
                cell(line.language),
                "" if line.redacted is None else str(line.redacted).lower(),
            )
        )
    return out.getvalue()


_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def render_txt(transcript: Transcript) -> str:
    """A header, a blank line, then ``[hh:mm:ss] Speaker: text`` per line."""
    header = [
        f"Call {transcript.call_id}",
        f"Connection: {_one_line(transcript.connection_id or '') or '-'}",
        f"Started: {_readable(transcript.started_at) or '-'}",
        f"Ended: {_readable(transcript.ended_at) or '-'}",
        f"Duration: {units.clock(_duration_ms(transcript)) or '-'}",
        f"Locale: {_one_line(transcript.locale) or '-'}",
        "Participants:" if transcript.participants else "Participants: -",
    ]
    for _key, label, role in transcript.participants:
        role_text = _one_line(role)
        header.append(f"  {clean_label(label)}" + (f" ({role_text})" if role_text else ""))
    out = ["\n".join(header), ""]
    for line in ordered_lines(transcript.lines):
        if line.start_ticks is None:
            stamp = TXT_UNTIMED
        else:
            stamp = _clock(_floor_ms(line.start_ticks))[:-4]
        text = clean_text(line.text).replace("\n", "\n" + TXT_CONTINUATION)
        out.append(f"[{stamp}] {clean_label(line.speaker)}{_traits(line)}: {text}")
    return "\n".join(out) + "\n"


def _srt_text(text: str) -> str:
    """Cue text that cannot be read as a cue: no number alone on a line, and no ``-->``
    (players and ffmpeg take a line holding one for a timing line: forged cues)."""
    rows: list[str] = []
    for row in clean_text(text).replace("-->", "→").split("\n"):
        if rows and _SRT_NUMBER_LINE.fullmatch(row):
            rows[-1] = f"{rows[-1]} {row}"
        else:
            rows.append(row)
    return "\n".join(rows)


def render_srt(transcript: Transcript) -> str:
    """Numbered SubRip cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` of ``Speaker: text``."""
    lines = ordered_lines(transcript.lines)
    cues = []
    for number, (line, (start, end)) in enumerate(zip(lines, cue_times(lines), strict=True), 1):
        cues.append(
            f"{number}\n{_clock(start, ',')} --> {_clock(end, ',')}\n"
            f"{(clean_label(line.speaker) + _traits(line)).replace('-->', '→')}: "
            f"{_srt_text(line.text)}\n"
        )
    return "\n".join(cues)


def vtt_escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as WebVTT character references (so ``-->`` cannot appear)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(transcript: Transcript) -> str:
    """``WEBVTT``, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` of ``<v Speaker>text``."""
    lines = ordered_lines(transcript.lines)
    out = ["WEBVTT\n"]
    for line, (start, end) in zip(lines, cue_times(lines), strict=True):
        out.append(
            f"{_clock(start)} --> {_clock(end)}\n"
            f"<v {vtt_escape(clean_label(line.speaker))}>{_vtt_text(line)}\n"
        )
    return "\n".join(out)


_VTT_CLASS = re.compile(r"[^A-Za-z0-9_-]")
_VTT_LANGUAGE = re.compile(r"[^A-Za-z0-9-]")


def _vtt_text(line: TranscriptLine) -> str:
    """The cue text, in a ``<lang>`` span for the language ACS identified and a ``<c>`` class
    span for the sentiment (``<c.negative>``), both WebVTT's own cue markup."""
    text = vtt_escape(clean_text(line.text))
    language = _VTT_LANGUAGE.sub("", line.language)
    if language:
        text = f"<lang {language}>{text}</lang>"
    sentiment = _VTT_CLASS.sub("", line.sentiment)
    if sentiment:
        text = f"<c.{sentiment}>{text}</c>"
    return text


_RENDERERS: Final[Mapping[str, Callable[[Transcript], str]]] = MappingProxyType(
    {
        "json": render_json,
        "csv": render_csv,
        "txt": render_txt,
        "srt": render_srt,
        "vtt": render_vtt,
    }
)


def render(transcript: Transcript, fmt: str, *, spreadsheet: bool = False) -> tuple[str, str]:
    """(body, content type with charset) of the transcript in ``fmt``, one of ``FORMATS``;
    ``spreadsheet``: CSV cells that a spreadsheet would run as formulas are made text."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown transcript format {fmt!r}") from None
    media_type, _extension = FORMATS[fmt]
    if fmt == "csv" and spreadsheet:
        return render_csv(transcript, spreadsheet=True), f"{media_type}; charset=utf-8"
    return renderer(transcript), f"{media_type}; charset=utf-8"
