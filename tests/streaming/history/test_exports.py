"""Transcript exports: every format is read back by an independent reader.

SRT is read with the ``srt`` package, WebVTT with ``webvtt-py`` (strict), CSV with
``csv.DictReader`` and JSON with ``json.loads``; plain text with the small reader below. The
expected values are computed here from the rules in docs/exports.md, not with the helpers of
``streaming.history.exports``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import srt  # type: ignore[import-untyped]  # no type hints
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming import services
from streaming.acs.packets import Word
from streaming.history.exports import (
    FORMATS,
    Transcript,
    TranscriptLine,
    render,
    render_csv,
    render_json,
    render_srt,
    render_txt,
    render_vtt,
)
from streaming.history.transcripts import transcript_for_call
from streaming.models import Participant
from streaming.units import TICKS_PER_MS, TICKS_PER_SECOND

# The line breaks of str.splitlines, written out so the expectation does not reuse it.
BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"

# ------------------------------------------------------------------------------ expectations


def collapsed(text: str) -> str:
    """Every whitespace run holding a line break as one LF, then stripped."""
    return re.sub(
        r"\s+", lambda m: "\n" if any(c in BREAKS for c in m.group()) else m.group(), text
    ).strip()


def one_line_label(label: str) -> str:
    return re.sub(r"\s+", " ", label).strip() or "Unknown speaker"


def srt_text(text: str) -> str:
    """Collapsed, with each number-only line joined to the line before it, and ``-->`` an
    arrow (a timing line inside a cue would forge a cue)."""
    rows: list[str] = []
    for row in collapsed(text).replace("-->", "→").split("\n"):
        if rows and re.fullmatch(r"-?[0-9]+(\.[0-9]*)?", row):
            rows[-1] += " " + row
        else:
            rows.append(row)
    return "\n".join(rows)


def expected_order(lines: list[TranscriptLine]) -> list[TranscriptLine]:
    """By start, then given order; an untimed line sorts with the line it followed."""
    effective: list[float] = []
    for line in lines:
        previous = effective[-1] if effective else float("-inf")
        effective.append(previous if line.start_ticks is None else line.start_ticks)
    return [lines[i] for i in sorted(range(len(lines)), key=lambda i: (effective[i], i))]


def expected_cue_ms(lines: list[TranscriptLine]) -> list[tuple[int, int]]:
    """Cue times of ordered lines: start floored, end ceiled, at least 1 ms long; an untimed
    line gets the 1 ms after the previous cue."""
    times: list[tuple[int, int]] = []
    for line in lines:
        previous_end = times[-1][1] if times else 0
        if line.start_ticks is None:
            times.append((previous_end, previous_end + 1))
            continue
        start = max(0, line.start_ticks // TICKS_PER_MS)
        end = start
        if line.end_ticks is not None:
            end = max(0, (line.end_ticks + TICKS_PER_MS - 1) // TICKS_PER_MS)
        times.append((start, end if end > start else start + 1))
    return times


def clock_ms(ms: int, separator: str = ".") -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{milli:03d}"


# ---------------------------------------------------------------------------------- readers


@dataclass
class Cue:
    start_ms: int
    end_ms: int
    speaker: str
    text: str


def read_srt(body: str) -> list[Cue]:
    """Cues as (start, end, speaker, text), the speaker being what comes before the first
    ": " (a speaker's name may hold ": " too: compare ``f"{speaker}: {text}"`` then)."""
    cues = []
    for number, sub in enumerate(srt.parse(body), 1):
        assert sub.index == number
        assert not sub.proprietary
        speaker, sep, text = sub.content.partition(": ")
        assert sep
        cues.append(
            Cue(
                sub.start // timedelta(milliseconds=1),
                sub.end // timedelta(milliseconds=1),
                speaker,
                text,
            )
        )
    return cues


def srt_content(cue: Cue) -> tuple[int, int, str]:
    return cue.start_ms, cue.end_ms, f"{cue.speaker}: {cue.text}"


def read_vtt(body: str) -> list[Cue]:
    assert body == "WEBVTT\n" or body.startswith("WEBVTT\n\n")
    cues = []
    for caption in webvtt.from_string(body, strict=True).captions:
        assert caption.voice is not None, caption.raw_text
        first = caption.raw_text.split("\n", 1)[0]
        assert first.startswith(f"<v {caption.voice}>")
        cues.append(
            Cue(
                caption.start_time.in_milliseconds(),
                caption.end_time.in_milliseconds(),
                html.unescape(caption.voice),
                html.unescape(caption.text),
            )
        )
    return cues


def read_csv(body: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(body, newline=""))
    assert reader.fieldnames == [
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
    ]
    return list(reader)


@dataclass
class TxtEntry:
    stamp: str
    rest: str  # "Speaker: text", continuation lines joined with LF


def read_txt(body: str) -> tuple[list[str], list[TxtEntry]]:
    assert body.endswith("\n")
    header, blank, entries_text = body.partition("\n\n")
    assert blank
    entries: list[TxtEntry] = []
    for row in entries_text.split("\n")[:-1]:
        if row.startswith("    "):
            entries[-1].rest += "\n" + row[4:]
            continue
        match = re.fullmatch(r"\[(\d{2,}:\d{2}:\d{2}|--:--:--)\] (.*)", row, re.DOTALL)
        assert match, row
        entries.append(TxtEntry(match[1], match[2]))
    return header.split("\n"), entries


def seconds_to_ticks(value: str) -> int:
    exact = Decimal(value) * TICKS_PER_SECOND
    assert exact == exact.to_integral_value()
    return int(exact)


# -------------------------------------------------------------------------------- a fixture


def line(
    text: str,
    start: int | None,
    end: int | None,
    speaker: str = "Agent Smith",
    *,
    key: str = "8:acs:agent",
    role: str = "agent",
    confidence: float | None = 0.9,
    words: list[dict[str, Any]] | None = None,
) -> TranscriptLine:
    return TranscriptLine(key, speaker, role, start, end, text, confidence, words or [])


def transcript(lines: list[TranscriptLine]) -> Transcript:
    return Transcript(
        call_id=7,
        connection_id="conn-7",
        started_at=datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
        ended_at=datetime(2025, 3, 4, 10, 5, tzinfo=UTC),
        locale="en-US",
        participants=[
            ("8:acs:agent", "Agent Smith", "agent"),
            ("4:+15555550123", "José <jose@example.com> & Co", "customer"),
        ],
        lines=lines,
    )


CUSTOMER: dict[str, Any] = {"key": "4:+15555550123", "role": "customer"}

TRICKY = transcript(
    [
        line("Grüße, José — 你好", 12_345_678, 30_000_001),
        line(
            'He said "hi", then left',
            40_000_000,
            55_000_000,
            "José <jose@example.com> & Co",
            **CUSTOMER,
        ),
        line("<b>bold</b> & more --> arrow &amp;", 60_000_000, 70_000_000),
        line("first line\n\n\nsecond   line \r\n  third\u2028fourth", 80_000_000, 90_000_000),
        line("said without timings", None, None, "José <jose@example.com> & Co", **CUSTOMER),
        line("no duration", 100_000_000, 100_000_000),
        line("call me at\n5\n00:00:01,000 --> 00:00:02,000\nok", 110_000_000, 120_000_000),
        line("said first, stored last", 5_000_000, 6_000_000, confidence=None),
    ]
)
# Spoken order: by start; the untimed line stays after the line stored before it.
TRICKY_ORDER = [7, 0, 1, 2, 3, 4, 5, 6]


def test_order_is_by_start_then_stored_order_with_untimed_lines_kept_in_place() -> None:
    ordered = expected_order(TRICKY.lines)
    assert ordered == [TRICKY.lines[i] for i in TRICKY_ORDER]
    data = json.loads(render_json(TRICKY))
    assert [x["text"] for x in data["lines"]] == [ln.text for ln in ordered]


def test_srt_reads_back_with_the_srt_package() -> None:
    cues = read_srt(render_srt(TRICKY))
    ordered = [TRICKY.lines[i] for i in TRICKY_ORDER]
    assert [c.speaker for c in cues] == [one_line_label(ln.speaker) for ln in ordered]
    assert [c.text for c in cues] == [
        "said first, stored last",
        "Grüße, José — 你好",
        'He said "hi", then left',
        "<b>bold</b> & more → arrow &amp;",
        "first line\nsecond   line\nthird\nfourth",
        "said without timings",
        "no duration",
        "call me at 5\n00:00:01,000 → 00:00:02,000\nok",
    ]
    # Why the "5" is joined: on a line of its own, before a time line, it reads as a new cue.
    unjoined = "1\n00:00:11,000 --> 00:00:12,000\nA: call me at\n5\n00:00:01,000 --> 00:00:02,000\n"
    assert [sub.index for sub in srt.parse(unjoined)] == [1, 5]
    assert [(c.start_ms, c.end_ms) for c in cues] == [
        (500, 600),
        (1234, 3001),  # 1234.5678 ms floored, 3000.0001 ms ceiled
        (4000, 5500),
        (6000, 7000),
        (8000, 9000),
        (9000, 9001),  # untimed: 1 ms right after the previous cue
        (10_000, 10_001),  # zero duration: 1 ms
        (11_000, 12_000),
    ]


def test_srt_layout() -> None:
    body = render_srt(transcript([line("Hello", 0, 10_000_000), line("Bye", 36_000_000_000, None)]))
    assert body == (
        "1\n00:00:00,000 --> 00:00:01,000\nAgent Smith: Hello\n\n"
        "2\n01:00:00,000 --> 01:00:00,001\nAgent Smith: Bye\n"
    )


def test_vtt_reads_back_with_webvtt_py(tmp_path: Path) -> None:
    body = render_vtt(TRICKY)
    ordered = [TRICKY.lines[i] for i in TRICKY_ORDER]
    cues = read_vtt(body)
    assert [c.speaker for c in cues] == [one_line_label(ln.speaker) for ln in ordered]
    assert [c.text for c in cues] == [collapsed(ln.text) for ln in ordered]
    assert cues[3].text == "<b>bold</b> & more --> arrow &amp;"
    assert [(c.start_ms, c.end_ms) for c in cues] == expected_cue_ms(ordered)
    # "-->" appears only in timing lines; markup in text or names is escaped
    assert all(row.count(" --> ") == 1 for row in body.split("\n") if "-->" in row)
    assert "<v José &lt;jose@example.com&gt; &amp; Co>He said" in body
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more --&gt; arrow &amp;amp;" in body
    path = tmp_path / "call.vtt"
    path.write_bytes(body.encode("utf-8"))
    assert len(webvtt.read(str(path), strict=True).captions) == len(ordered)


def test_vtt_layout() -> None:
    body = render_vtt(transcript([line("a < b", 12_340_000, 25_000_000, "  Ann\n  Lee ")]))
    assert body == "WEBVTT\n\n00:00:01.234 --> 00:00:02.500\n<v Ann Lee>a &lt; b\n"


def test_csv_reads_back_with_dictreader() -> None:
    body = render_csv(TRICKY)
    rows = read_csv(body)
    ordered = [TRICKY.lines[i] for i in TRICKY_ORDER]
    assert [r["text"] for r in rows] == [ln.text for ln in ordered]  # exact, newlines too
    assert [r["speaker"] for r in rows] == [ln.speaker for ln in ordered]
    assert [r["role"] for r in rows] == [ln.role for ln in ordered]
    assert rows[1]["start"] == "00:00:01.234"
    assert rows[1]["end"] == "00:00:03.001"
    assert rows[1]["start_seconds"] == "1.2345678"
    assert rows[1]["end_seconds"] == "3.0000001"
    assert rows[0]["confidence"] == ""
    assert rows[1]["confidence"] == "0.9"
    untimed = rows[5]
    assert (untimed["start"], untimed["end"], untimed["start_seconds"]) == ("", "", "")
    for row, ln in zip(rows, ordered, strict=True):
        if ln.start_ticks is not None:
            assert seconds_to_ticks(row["start_seconds"]) == ln.start_ticks
        if ln.end_ticks is not None:
            assert seconds_to_ticks(row["end_seconds"]) == ln.end_ticks
    assert body.encode("utf-8").decode("utf-8") == body
    assert "Grüße, José — 你好" in body


def test_json_reads_back_with_json_loads() -> None:
    data = json.loads(render_json(TRICKY))
    assert data["call"] == {
        "id": 7,
        "connection_id": "conn-7",
        "started_at": "2025-03-04T10:00:00+00:00",
        "ended_at": "2025-03-04T10:05:00+00:00",
        "duration_ms": 300_000,
        "locale": "en-US",
    }
    assert data["ticks_per_second"] == TICKS_PER_SECOND
    assert data["participants"][1] == {
        "key": "4:+15555550123",
        "label": "José <jose@example.com> & Co",
        "role": "customer",
    }
    ordered = [TRICKY.lines[i] for i in TRICKY_ORDER]
    got = [(x["speaker"], x["text"], x["start_ticks"], x["end_ticks"]) for x in data["lines"]]
    assert got == [(ln.speaker, ln.text, ln.start_ticks, ln.end_ticks) for ln in ordered]
    first = data["lines"][1]
    assert first["start_seconds"] == 1.2345678
    assert first["end_seconds"] == 3.0000001
    assert first["speaker_key"] == "8:acs:agent"
    assert first["role"] == "agent"
    assert first["confidence"] == 0.9
    assert data["lines"][5]["start_seconds"] is None


def test_json_words_and_non_finite_numbers() -> None:
    words: list[dict[str, Any]] = [
        {"text": "hi", "offset": 10, "duration": 20, "confidence": float("nan")},
        {"text": "there", "offset": None, "duration": None},
    ]
    body = render_json(transcript([line("hi there", 10, 40, confidence=float("inf"), words=words)]))
    data = json.loads(body)
    assert data["lines"][0]["confidence"] is None
    assert data["lines"][0]["words"] == [
        {"text": "hi", "offset": 10, "duration": 20, "confidence": None},
        {"text": "there", "offset": None, "duration": None, "confidence": None},
    ]


def test_txt_is_a_readable_transcript() -> None:
    body = render_txt(TRICKY)
    header, entries = read_txt(body)
    assert header == [
        "Call 7",
        "Connection: conn-7",
        "Started: 2025-03-04 10:00:00 UTC",
        "Ended: 2025-03-04 10:05:00 UTC",
        "Duration: 5:00",
        "Locale: en-US",
        "Participants:",
        "  Agent Smith (agent)",
        "  José <jose@example.com> & Co (customer)",
    ]
    assert [e.stamp for e in entries] == [
        "00:00:00",
        "00:00:01",
        "00:00:04",
        "00:00:06",
        "00:00:08",
        "--:--:--",
        "00:00:10",
        "00:00:11",
    ]
    assert entries[1].rest == "Agent Smith: Grüße, José — 你好"
    assert entries[4].rest == "Agent Smith: first line\nsecond   line\nthird\nfourth"
    assert "\n    second   line\n    third\n" in body


def test_negative_ticks_are_clamped_in_clock_times_only() -> None:
    t = transcript([line("early", -15_000, -5_000)])
    assert read_srt(render_srt(t))[0] == Cue(0, 1, "Agent Smith", "early")
    row = read_csv(render_csv(t))[0]
    assert (row["start"], row["end"]) == ("00:00:00.000", "00:00:00.000")
    assert (row["start_seconds"], row["end_seconds"]) == ("-0.0015000", "-0.0005000")
    assert json.loads(render_json(t))["lines"][0]["start_ticks"] == -15_000


def test_untimed_lines_before_any_timed_line_start_at_zero() -> None:
    t = transcript([line("a", None, None), line("b", None, None), line("c", 20_000, 40_000)])
    cues = read_srt(render_srt(t))
    assert [(c.text, c.start_ms, c.end_ms) for c in cues] == [
        ("a", 0, 1),
        ("b", 1, 2),
        ("c", 2, 4),
    ]


def test_cues_end_after_they_start() -> None:
    """Under a millisecond spans one by rounding outwards; a negative duration or an unknown
    end gets the 1 ms minimum."""
    t = transcript([line("x", 10_001, 19_999), line("y", 50_000, 10_000), line("z", 70_000, None)])
    assert [(c.start_ms, c.end_ms) for c in read_vtt(render_vtt(t))] == [(1, 2), (5, 6), (7, 8)]


def test_empty_transcript_renders_in_every_format() -> None:
    empty = transcript([])
    assert read_srt(render_srt(empty)) == []
    assert read_vtt(render_vtt(empty)) == []
    assert read_csv(render_csv(empty)) == []
    assert json.loads(render_json(empty))["lines"] == []
    assert read_txt(render_txt(empty))[1] == []


def test_render_gives_content_types_and_refuses_unknown_formats() -> None:
    assert set(FORMATS) == {"json", "csv", "txt", "srt", "vtt"}
    for fmt, (media_type, extension) in FORMATS.items():
        body, content_type = render(TRICKY, fmt)
        assert content_type == f"{media_type}; charset=utf-8"
        assert extension == fmt
        assert body
    assert render(TRICKY, "vtt")[1] == "text/vtt; charset=utf-8"
    with pytest.raises(ValueError, match="unknown transcript format"):
        render(TRICKY, "docx")


# ------------------------------------------------------------------------- property test

PIECES = [
    "\n",
    "\r\n",
    "\r",
    "\n\n",
    " \n \n ",
    "\u2028",
    "\x85",
    "\t",
    "  ",
    "-->",
    "--",
    ">",
    "<b>",
    "</v>",
    "&",
    "&amp;",
    "&lt;",
    ",",
    '"',
    "5",
    "-1.5",
    "00:00:01,000 --> 00:00:02,000",
    "NOTE",
    "WEBVTT",
    "Grüße",
    "你好",
    "—",
]
texts = st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=10).map("".join)
labels = st.text(max_size=12) | st.sampled_from(["Agent <1>", "A & B", "  ", "5", "x-->y"])


@st.composite
def transcripts(draw: st.DrawFn) -> Transcript:
    speakers = draw(
        st.lists(
            st.tuples(labels, st.sampled_from(["agent", "customer", "bot", "unknown"])),
            min_size=1,
            max_size=4,
        )
    )
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        index = draw(st.integers(0, len(speakers) - 1))
        label, role = speakers[index]
        start = draw(st.none() | st.integers(-20_000_000, 4_000_000_000_000))
        duration = draw(st.none() | st.integers(-20_000, 600_000_000))
        end = start + duration if start is not None and duration is not None else None
        confidence = draw(st.none() | st.floats(0, 1))
        lines.append(
            TranscriptLine(f"speaker-{index}", label, role, start, end, draw(texts), confidence, [])
        )
    return Transcript(
        call_id=1,
        connection_id=draw(st.none() | st.text(max_size=10)),
        started_at=None,
        ended_at=None,
        locale=draw(st.text(max_size=5)),
        participants=[(f"speaker-{i}", label, role) for i, (label, role) in enumerate(speakers)],
        lines=lines,
    )


@settings(max_examples=300, deadline=None)
@given(transcripts())
def test_every_format_reads_back_the_same_lines(t: Transcript) -> None:
    ordered = expected_order(t.lines)
    cue_ms = expected_cue_ms(ordered)

    data = json.loads(render_json(t))
    assert [
        (x["speaker"], x["role"], x["text"], x["start_ticks"], x["end_ticks"], x["confidence"])
        for x in data["lines"]
    ] == [
        (ln.speaker, ln.role, ln.text, ln.start_ticks, ln.end_ticks, ln.confidence)
        for ln in ordered
    ]

    rows = read_csv(render_csv(t))
    assert [(r["speaker"], r["role"], r["text"]) for r in rows] == [
        (ln.speaker, ln.role, ln.text) for ln in ordered
    ]
    for row, ln in zip(rows, ordered, strict=True):
        if ln.start_ticks is None:
            assert row["start"] == row["start_seconds"] == ""
        else:
            assert seconds_to_ticks(row["start_seconds"]) == ln.start_ticks
            assert row["start"] == clock_ms(max(0, ln.start_ticks // TICKS_PER_MS))
        if ln.end_ticks is None:
            assert row["end"] == row["end_seconds"] == ""
        else:
            assert seconds_to_ticks(row["end_seconds"]) == ln.end_ticks
        want = "" if ln.confidence is None else ln.confidence
        assert (float(row["confidence"]) if row["confidence"] else "") == want

    header, entries = read_txt(render_txt(t))
    assert header[0] == "Call 1"
    assert len(header) == 7 + len(t.participants)
    assert [(e.stamp, e.rest) for e in entries] == [
        (
            "--:--:--"
            if ln.start_ticks is None
            else clock_ms(max(0, ln.start_ticks // TICKS_PER_MS))[:-4],
            f"{one_line_label(ln.speaker)}: {collapsed(ln.text)}",
        )
        for ln in ordered
    ]

    srt_cues = read_srt(render_srt(t))
    assert [srt_content(c) for c in srt_cues] == [
        (start, end, f"{one_line_label(ln.speaker).replace('-->', '→')}: {srt_text(ln.text)}")
        for ln, (start, end) in zip(ordered, cue_ms, strict=True)
    ]

    vtt_cues = read_vtt(render_vtt(t))
    assert vtt_cues == [
        Cue(start, end, one_line_label(ln.speaker), collapsed(ln.text))
        for ln, (start, end) in zip(ordered, cue_ms, strict=True)
    ]
    assert all(end > start for start, end in cue_ms)


# ------------------------------------------------------------------------------- database


def _record(call_id: int, raw_id: str | None, text: str, offset: int | None, **kw: Any) -> None:
    services.utterance_record(
        call_id=call_id,
        participant_raw_id=raw_id,
        text=text,
        confidence=kw.get("confidence", 0.8),
        offset_ticks=offset,
        duration_ticks=kw.get("duration"),
        words=kw.get("words", []),
        source="acs",
    )


@pytest.mark.django_db
def test_transcript_for_a_missing_call_is_none(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        assert transcript_for_call(123_456) is None


@pytest.mark.django_db
def test_transcript_for_call_builds_lines_from_stored_utterances() -> None:
    call = services.call_stream_opened(connection_id="exports-1")
    call_id = call["id"]
    _record(
        call_id,
        "8:acs:agent-1",
        "Hello, thanks for calling.",
        20_000_000,
        duration=15_000_001,
        words=[Word("Hello", 20_000_000, 5_000_000, 0.95)],
    )
    _record(call_id, "4:+15555550123", "Grüße, José — 你好", 10_000_000, duration=None)
    _record(call_id, None, "Who said this?", 50_000_000, duration=0, confidence=None)
    _record(call_id, "4:+15555550123", "untimed", None)

    t = transcript_for_call(call_id)
    assert t is not None
    assert t.call_id == call_id
    assert t.connection_id == "exports-1"
    assert t.started_at is not None
    people = {p.raw_id: p for p in Participant.objects.filter(call_id=call_id)}
    assert t.participants == [
        ("8:acs:agent-1", people["8:acs:agent-1"].display_label, "agent"),
        ("4:+15555550123", people["4:+15555550123"].display_label, "customer"),
    ]
    # stored order; rendering sorts by start
    assert [ln.text for ln in t.lines] == [
        "Hello, thanks for calling.",
        "Grüße, José — 你好",
        "Who said this?",
        "untimed",
    ]
    hello, gruss, anonymous, untimed = t.lines
    assert (hello.start_ticks, hello.end_ticks) == (20_000_000, 35_000_001)
    assert hello.words == [
        {"text": "Hello", "offset": 20_000_000, "duration": 5_000_000, "confidence": 0.95}
    ]
    assert hello.speaker == people["8:acs:agent-1"].display_label
    assert (gruss.start_ticks, gruss.end_ticks, gruss.role) == (10_000_000, None, "customer")
    assert (anonymous.speaker_key, anonymous.speaker, anonymous.role) == (
        "",
        "Unknown speaker",
        "unknown",
    )
    assert anonymous.confidence is None
    assert (untimed.start_ticks, untimed.end_ticks) == (None, None)

    cues = read_srt(render(t, "srt")[0])
    assert [c.text for c in cues] == [
        "Grüße, José — 你好",
        "Hello, thanks for calling.",
        "Who said this?",
        "untimed",
    ]
    assert [(c.start_ms, c.end_ms) for c in cues] == [
        (1000, 1001),
        (2000, 3501),
        (5000, 5001),
        (5001, 5002),
    ]


@pytest.mark.django_db
def test_participant_without_a_label_is_an_unknown_speaker() -> None:
    call_id = services.call_stream_opened(connection_id="exports-2")["id"]
    _record(call_id, "8:acs:agent-2", "hi", 0, duration=10)
    Participant.objects.filter(call_id=call_id).update(display_label="")
    t = transcript_for_call(call_id)
    assert t is not None
    assert t.lines[0].speaker == "Unknown speaker"
    assert t.participants[0][1] == "Unknown speaker"


@pytest.mark.django_db
def test_transcript_for_call_takes_four_queries_whatever_its_length(
    django_assert_num_queries: Any,
) -> None:
    call_id = services.call_stream_opened(connection_id="exports-3")["id"]
    speakers = ["8:acs:agent-3", "4:+15555550100", "28:bot-1", None]
    for i in range(120):
        _record(call_id, speakers[i % 4], f"utterance {i}", i * 10_000_000, duration=5_000_000)
    for i in range(10):
        services.call_tone_record(
            call_id=call_id,
            tone="5",
            participant_raw_id="4:+15555550100",
            at=datetime(2025, 1, 1, 0, 0, i, tzinfo=UTC),
        )
    with django_assert_num_queries(4):
        t = transcript_for_call(call_id)
    assert t is not None
    assert len(t.lines) == 130
    assert len(t.participants) == 3
    with django_assert_num_queries(0):
        for fmt in FORMATS:
            render(t, fmt)


def test_a_two_thousand_line_transcript_renders_in_every_format() -> None:
    big = transcript(
        [
            line(
                f"Utterance {i}, with “quotes”, <tags> & a\nsecond line",
                i * 15_000_000,
                i * 15_000_000 + 12_000_000,
                "Agent Smith" if i % 2 else "José <jose@example.com> & Co",
                words=[{"text": "Utterance", "offset": i, "duration": 1, "confidence": 0.5}],
            )
            for i in range(2000)
        ]
    )
    assert len(read_srt(render(big, "srt")[0])) == 2000
    assert len(read_vtt(render(big, "vtt")[0])) == 2000
    assert len(read_csv(render(big, "csv")[0])) == 2000
    assert len(json.loads(render(big, "json")[0])["lines"]) == 2000
    assert len(read_txt(render(big, "txt")[0])[1]) == 2000


def test_a_timing_line_said_on_a_call_forges_no_srt_cue() -> None:
    """Text holding an SRT timing line stays inside its cue, as every SRT reader parses it:
    16 utterances are 16 cues."""
    forged = "ok\n00:00:01,000 --> 00:00:02,000\nsomething else"
    lines = [
        line(f"{forged} {n}", n * TICKS_PER_SECOND, (n + 1) * TICKS_PER_SECOND) for n in range(16)
    ]
    body = render_srt(transcript(lines))
    cues = list(srt.parse(body))
    assert len(cues) == 16
    assert "-->" not in "".join(c.content for c in cues)
    assert "→" in cues[0].content
    # The strict reader: exactly one timing line per cue.
    assert sum(1 for row in body.splitlines() if "-->" in row) == 16


@pytest.mark.parametrize("said", ['=HYPERLINK("http://x")', "+1 call me", "-5", "@SUM(A1)", "\tx"])
def test_the_spreadsheet_csv_makes_formulas_text(said: str) -> None:
    exact = list(csv.reader(io.StringIO(render_csv(transcript([line(said, 0, 10)])))))
    safe = list(
        csv.reader(io.StringIO(render_csv(transcript([line(said, 0, 10)]), spreadsheet=True)))
    )
    assert exact[1][6] == said  # for programs: exactly what was said
    assert safe[1][6] == "'" + said  # for spreadsheets: text
    assert safe[1][4] == "Agent Smith"  # other cells as they are
