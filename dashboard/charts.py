"""The supervisor's talk-time charts, as plotly figures built from an ``AnalyticsPayload``.

Every function here is pure and returns plain JSON-serialisable dicts, ``{"data": [...],
"layout": {...}}``, which is what ``Plotly.react`` takes in the browser
(``static/callsite/charts.js``); plotly itself is not imported. Three charts:

- **talk time**: seconds each speaker talked, then overlap and silence (hatched, not speakers);
- **talk ratio**: a donut of each speaker's share of all talk;
- **timeline**: who spoke when, one row per speaker and an ``Overlap`` row in a warning colour.

A speaker has the same colour in all three, chosen by role and, among speakers of one role,
by their order in ``speakers``. :func:`figures` draws a call once; :func:`live_update` is sent
with every live analytics message and carries the timeline as a delta (docs/charts.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from streaming import units
from streaming.events import AnalyticsPayload, SpeakerStatsPayload

Figure = dict[str, Any]

OVERLAP_KEY = "overlap"
OVERLAP_LABEL = "Overlap"
SILENCE_LABEL = "Silence"

ROLE_PALETTES: dict[str, tuple[str, ...]] = {
    "agent": ("#0b6bcb", "#5b9cf5", "#0a3d80", "#8fbaf7", "#2f5d9a", "#3c8dde"),
    "customer": ("#8250df", "#b08cf0", "#5a32a3", "#d2bdf7", "#6e4aa8", "#9d6fe8"),
    "bot": ("#1a7f37", "#4ac26b", "#0f5223", "#8ddb8c", "#2f6f43", "#56a66b"),
    "unknown": ("#bf3989", "#e07bb5", "#8a1f5f", "#f0b3d6", "#a3527f", "#d1579c"),
}
OVERLAP_COLOUR = "#e8590c"  # warning orange, used by no speaker palette
SILENCE_COLOUR = "#c9d1d9"
INK = "#1b1f24"
MUTED = "#6a737d"

MAX_LABEL_CHARS = 28
# Zoom, pan and legend clicks survive updates while this stays the same.
UIREVISION = "callsite-analytics"
# Tick spacings of the time axes, in seconds; the browser uses the same list (charts.js).
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
TARGET_TICKS = 8

_FONT = {"family": 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', "color": INK}
_BASE_LAYOUT: Figure = {
    "font": _FONT,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "uirevision": UIREVISION,
}


@dataclass(frozen=True)
class _Row:
    """A speaker (or a timeline row no speaker in the payload owns) as the charts show it."""

    key: str
    label: str  # unique among the rows and the Overlap/Silence bars, escaped for plotly
    full_label: str  # escaped, untruncated: for hover
    role: str
    colour: str


# --- Public API ------------------------------------------------------------------------------


def figures(a: AnalyticsPayload) -> dict[str, Figure]:
    """The three charts drawn whole: a call page's first render, and finished calls."""
    return {
        "talk_time": talk_time_figure(a),
        "talk_ratio": talk_ratio_figure(a),
        "timeline": timeline_figure(a),
    }


def live_update(a: AnalyticsPayload) -> dict[str, Figure]:
    """What a live analytics message carries: two whole charts and the timeline's delta."""
    return {
        "talk_time": talk_time_figure(a),
        "talk_ratio": talk_ratio_figure(a),
        "timeline_delta": timeline_delta(a),
    }


def talk_time_figure(a: AnalyticsPayload) -> Figure:
    """Seconds of talk per speaker, then overlap and silence, as horizontal bars."""
    rows = _rows(a)
    duration_ms = max(_int(a.get("duration_ms")), 0)
    by_key = {s["key"]: s for s in _speakers(a)}
    talk = [_seconds(_int(by_key[r.key].get("talk_ms"))) if r.key in by_key else 0.0 for r in rows]
    shares = [_float(by_key[r.key].get("share")) if r.key in by_key else 0.0 for r in rows]
    overlap_ms = max(_int(a.get("overlap_ms")), 0)
    silence_ms = max(_int(a.get("silence_ms")), 0)
    other_x = [_seconds(overlap_ms), _seconds(silence_ms)]
    other_shares = [_ratio(overlap_ms, duration_ms), _ratio(silence_ms, duration_ms)]

    speakers_trace: Figure = {
        "type": "bar",
        "orientation": "h",
        "name": "Speakers",
        "y": [r.label for r in rows],
        "x": talk,
        "text": [_bar_text(x, s) for x, s in zip(talk, shares, strict=True)],
        "textposition": "auto",
        "customdata": [
            [r.full_label, r.role, clock(x), f"{s:.0%}"]
            for r, x, s in zip(rows, talk, shares, strict=True)
        ],
        "hovertemplate": "%{customdata[0]} (%{customdata[1]})<br>"
        "talked %{customdata[2]}, %{customdata[3]} of the call<extra></extra>",
        "marker": {"color": [r.colour for r in rows]},
        "showlegend": False,
    }
    others_trace: Figure = {
        "type": "bar",
        "orientation": "h",
        "name": "Not a speaker",
        "y": [OVERLAP_LABEL, SILENCE_LABEL],
        "x": other_x,
        "text": [_bar_text(x, s) for x, s in zip(other_x, other_shares, strict=True)],
        "textposition": "auto",
        "customdata": [[clock(x), f"{s:.0%}"] for x, s in zip(other_x, other_shares, strict=True)],
        "hovertemplate": "%{y}: %{customdata[0]}, %{customdata[1]} of the call<extra></extra>",
        "marker": {
            "color": [OVERLAP_COLOUR, SILENCE_COLOUR],
            "opacity": 0.85,
            "line": {"color": MUTED, "width": 1},
            "pattern": {"shape": ["/", "."], "fgcolor": MUTED, "solidity": 0.25},
        },
        "showlegend": False,
    }
    categories = [r.label for r in rows] + [OVERLAP_LABEL, SILENCE_LABEL]
    longest = max([*talk, *other_x, 0.0])
    tickvals, ticktext = time_ticks(0.0, longest)
    layout: Figure = {
        **_BASE_LAYOUT,
        "barmode": "overlay",
        "margin": {"l": 8, "r": 16, "t": 8, "b": 40},
        "height": max(160, 34 * len(categories) + 60),
        "xaxis": {
            "title": {"text": "Talk time (m:ss)"},
            "rangemode": "nonnegative",
            "tickmode": "array",
            "tickvals": tickvals,
            "ticktext": ticktext,
            "fixedrange": True,
            "zeroline": False,
        },
        "yaxis": _category_axis(categories),
    }
    return {"data": [speakers_trace, others_trace], "layout": layout}


def talk_ratio_figure(a: AnalyticsPayload) -> Figure:
    """A donut of each speaker's talk ratio (their share of all talk)."""
    rows = _rows(a)
    by_key = {s["key"]: s for s in _speakers(a)}
    values = [_float(by_key[r.key].get("ratio")) if r.key in by_key else 0.0 for r in rows]
    talk = [_int(by_key[r.key].get("talk_ms")) if r.key in by_key else 0 for r in rows]
    nobody_talked = not any(v > 0 for v in values)
    trace: Figure = {
        "type": "pie",
        "hole": 0.55,
        "sort": False,
        "direction": "clockwise",
        "labels": [r.label for r in rows],
        "values": values,
        "customdata": [
            [r.full_label, clock(_seconds(ms)), f"{v:.0%}"]
            for r, ms, v in zip(rows, talk, values, strict=True)
        ],
        "marker": {"colors": [r.colour for r in rows], "line": {"color": "#ffffff", "width": 1}},
        # Each speaker's ratio, not plotly's own percent: no "0%" on a silent speaker's slice.
        "text": [f"{v:.0%}" if v >= 0.03 else "" for v in values],
        "textinfo": "text",
        "hovertemplate": "%{customdata[0]}<br>%{customdata[2]} of the talk (%{customdata[1]})"
        "<extra></extra>",
    }
    layout: Figure = {
        **_BASE_LAYOUT,
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "height": 280,
        "showlegend": bool(rows),
        "legend": {"orientation": "v", "x": 1.0, "y": 0.5},
        "annotations": [_empty_note("No talk yet" if nobody_talked else "Talk ratio")],
    }
    return {"data": [trace], "layout": layout}


def timeline_figure(a: AnalyticsPayload) -> Figure:
    """Who spoke when: a row per speaker plus the Overlap row, on seconds into the call."""
    rows = _rows(a)
    segments = _timeline_rows(a)
    data = [_timeline_trace(r, segments.get(r.key, [])) for r in rows]
    data.append(_timeline_trace(_overlap_row(), segments.get(OVERLAP_KEY, [])))
    ends = [end for segs in segments.values() for _, end in segs]
    extent = max([_seconds(max(_int(a.get("duration_ms")), 0)), *(_seconds(e) for e in ends)])
    tickvals, ticktext = time_ticks(0.0, extent)
    layout: Figure = {
        **_BASE_LAYOUT,
        "barmode": "overlay",
        "bargap": 0.25,
        "showlegend": False,
        "hovermode": "closest",
        "margin": {"l": 8, "r": 16, "t": 8, "b": 40},
        # m:ss ticks for the whole call; charts.js redoes them for the range on screen.
        "xaxis": {
            "title": {"text": "Time into the call (m:ss)"},
            "rangemode": "tozero",
            "tickmode": "array",
            "tickvals": tickvals,
            "ticktext": ticktext,
            "zeroline": False,
            "showgrid": True,
        },
        "height": _timeline_height(rows),
        "yaxis": _category_axis(_timeline_categories(rows)),
    }
    return {"data": data, "layout": layout}


def timeline_delta(a: AnalyticsPayload) -> Figure:
    """The timeline's live form: new segments per row, in seconds, to apply in the browser.

    ``{"since_ms": int, "categories": [label, ...], "height": int, "rows": {key: {"label":
    str, "base": [start_s, ...], "x": [duration_s, ...], "trace": {the row's empty trace}}}}``.
    The browser drops its segments of every row that end after ``since_ms`` (all of them
    when it is 0), appends these, adds a trace from ``trace`` for a key it has not seen, and
    orders the rows by ``categories`` (the y axis' order, Overlap last).
    """
    rows = _rows(a)
    by_key = {r.key: r for r in rows}
    by_key[OVERLAP_KEY] = _overlap_row()
    out_rows: dict[str, Figure] = {}
    for key, segs in _timeline_rows(a).items():
        row = by_key[key]
        trace = _timeline_trace(row, segs)
        out_rows[key] = {
            "label": row.label,
            "base": trace["base"],
            "x": trace["x"],
            "trace": {**trace, "base": [], "x": [], "y": []},
        }
    timeline = a.get("timeline") or {}
    return {
        "since_ms": max(_int(timeline.get("since_ms")), 0),
        "categories": _timeline_categories(rows),
        "height": _timeline_height(rows),
        "rows": out_rows,
    }


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on), rounded to the second as everywhere else."""
    return units.clock(seconds * 1000 if math.isfinite(seconds) else 0)


def time_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick positions in seconds between ``lo`` and ``hi``, labelled ``m:ss``, about 8 of them."""
    lo = max(lo, 0.0)
    span = max(hi - lo, 1.0)
    step = next((s for s in TICK_STEPS if span / s <= TARGET_TICKS), 0)
    if not step:  # beyond the table: whole multiples of its last step
        step = TICK_STEPS[-1] * math.ceil(span / (TICK_STEPS[-1] * TARGET_TICKS))
    first = math.ceil(lo / step) * step
    count = int((max(hi, lo) - first) // step) + 1
    vals = [float(first + i * step) for i in range(max(count, 0))]
    return vals, [clock(v) for v in vals]


# --- Rows, colours, labels -------------------------------------------------------------------


def _speakers(a: AnalyticsPayload) -> list[SpeakerStatsPayload]:
    return [s for s in a.get("speakers") or [] if isinstance(s, dict) and "key" in s]


def _rows(a: AnalyticsPayload) -> list[_Row]:
    """Speakers in payload order, then timeline rows that no speaker owns, with colours."""
    entries: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for speaker in _speakers(a):
        key = str(speaker["key"])
        if key in seen or key == OVERLAP_KEY:
            continue
        seen.add(key)
        role = str(speaker.get("role") or "unknown")
        entries.append((key, str(speaker.get("label") or ""), role))
    for key in _timeline_rows(a):
        if key not in seen and key != OVERLAP_KEY:
            seen.add(key)
            entries.append((key, "", "unknown"))

    used = {OVERLAP_LABEL, SILENCE_LABEL}
    per_role: dict[str, int] = {}
    rows = []
    for key, raw_label, role in entries:
        full = _clean(raw_label) or _clean(key) or "Unknown speaker"
        label = _unique(_truncate(full), used)
        used.add(label)
        palette_role = role if role in ROLE_PALETTES else "unknown"
        palette = ROLE_PALETTES[palette_role]
        index = per_role.get(palette_role, 0)
        per_role[palette_role] = index + 1
        rows.append(
            _Row(
                key=key,
                label=_escape(label),
                full_label=_escape(full),
                role=_escape(role),
                colour=palette[index % len(palette)],
            )
        )
    return rows


def _overlap_row() -> _Row:
    return _Row(OVERLAP_KEY, OVERLAP_LABEL, OVERLAP_LABEL, "overlap", OVERLAP_COLOUR)


def _timeline_categories(rows: list[_Row]) -> list[str]:
    return [r.label for r in rows] + [OVERLAP_LABEL]


def _timeline_height(rows: list[_Row]) -> int:
    return max(160, 40 * (len(rows) + 1) + 70)


def _clean(text: str) -> str:
    """One line of printable text."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1].rstrip() + "…"


def _unique(label: str, used: set[str]) -> str:
    """Axis categories and donut slices merge equal labels: number the repeats."""
    if label not in used:
        return label
    n = 2
    while f"{label} ({n})" in used:
        n += 1
    return f"{label} ({n})"


def _escape(text: str) -> str:
    """Plotly renders a subset of HTML in labels; participants' names are shown as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- Timeline --------------------------------------------------------------------------------


def _timeline_rows(a: AnalyticsPayload) -> dict[str, list[tuple[int, int]]]:
    """The payload's timeline rows as (start_ms, end_ms) pairs; malformed segments skipped."""
    timeline = a.get("timeline") or {}
    rows = timeline.get("rows") or {}
    out: dict[str, list[tuple[int, int]]] = {}
    for key, segments in rows.items():
        pairs = []
        for segment in segments or []:
            if isinstance(segment, list | tuple) and len(segment) == 2:
                start, end = _int(segment[0]), _int(segment[1])
                pairs.append((start, max(end, start)))
        out[str(key)] = pairs
    return out


def _timeline_trace(row: _Row, segments: list[tuple[int, int]]) -> Figure:
    overlap = row.key == OVERLAP_KEY
    marker: Figure = {"color": row.colour}
    if overlap:
        marker["line"] = {"color": "#b33c00", "width": 1}
    return {
        "type": "bar",
        "orientation": "h",
        "meta": row.key,
        "name": row.label,
        "y": [row.label] * len(segments),
        "base": [_seconds(start) for start, _ in segments],
        "x": [_seconds(end - start) for start, end in segments],
        "marker": marker,
        # On a bar with a base, %{x} is where the bar ends.
        "hovertemplate": "%{y}<br>%{base:.1f} s to %{x:.1f} s<extra></extra>",
    }


# --- Small helpers ---------------------------------------------------------------------------


def _category_axis(categories: list[str]) -> Figure:
    """Rows top to bottom in this order; a phone number stays a name, not a number."""
    return {
        "type": "category",
        "categoryorder": "array",
        "categoryarray": categories,
        "autorange": "reversed",
        "automargin": True,
        "fixedrange": True,
        "ticksuffix": " ",
    }


def _empty_note(text: str) -> Figure:
    """A note in the middle of the plot (the empty state, or the donut's caption)."""
    return {
        "text": text,
        "showarrow": False,
        "x": 0.5,
        "y": 0.5,
        "xref": "paper",
        "yref": "paper",
        "font": {"color": MUTED, "size": 14},
    }


def _bar_text(seconds: float, share: float) -> str:
    return f"{clock(seconds)} · {share:.0%}"


def _seconds(ms: int) -> float:
    return ms / 1000


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0
