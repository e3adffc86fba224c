"""Who spoke when: a row per speaker and one for overlap, whole or as a live delta."""

from __future__ import annotations

from dashboard.charts.style import (
    _BASE_LAYOUT,
    OVERLAP_COLOUR,
    OVERLAP_KEY,
    OVERLAP_LABEL,
    Figure,
    _category_axis,
    _int,
    _Row,
    _rows,
    _seconds,
    _timeline_rows,
    time_ticks,
)
from streaming.events import AnalyticsPayload


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


def _overlap_row() -> _Row:
    return _Row(OVERLAP_KEY, OVERLAP_LABEL, OVERLAP_LABEL, "overlap", OVERLAP_COLOUR)


def _timeline_categories(rows: list[_Row]) -> list[str]:
    return [r.label for r in rows] + [OVERLAP_LABEL]


def _timeline_height(rows: list[_Row]) -> int:
    return max(160, 40 * (len(rows) + 1) + 70)


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
