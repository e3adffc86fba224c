"""The talk-time bars and the talk-ratio donut."""

from __future__ import annotations

from dashboard.charts.style import (
    _BASE_LAYOUT,
    MUTED,
    OVERLAP_COLOUR,
    OVERLAP_LABEL,
    SILENCE_COLOUR,
    SILENCE_LABEL,
    Figure,
    _bar_text,
    _category_axis,
    _empty_note,
    _float,
    _int,
    _ratio,
    _rows,
    _seconds,
    _speakers,
    clock,
    time_ticks,
)
from streaming.events import AnalyticsPayload


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
