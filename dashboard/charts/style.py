"""What every chart shares: rows (speakers, overlap, silence), colours, labels, axes, time.

Pure functions of the analytics payload; plotly only ever sees their output.
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
