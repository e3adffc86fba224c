"""The report page's chart: each agent's (or team's) mean handle time and talk ratio."""

from __future__ import annotations

import html
from typing import Any

from dashboard.charts.style import _BASE_LAYOUT, Figure


def report_figure(rows: list[dict[str, Any]], *, title: str) -> Figure:
    """Horizontal bars of mean handle time in minutes, one per row, with calls and talk ratio
    in the hover; names escaped (plotly renders a subset of HTML in labels)."""
    names = [html.escape(r["name"]) for r in rows]
    minutes = [round((r["mean_handle_ms"] or 0) / 60000, 2) for r in rows]
    hover = [
        f"{n}: {r['calls']} calls, talk ratio "
        + ("-" if r["talk_ratio"] is None else f"{r['talk_ratio']:.0%}")
        for n, r in zip(names, rows, strict=True)
    ]
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": names,
                "x": minutes,
                "hovertext": hover,
                "hoverinfo": "text+x",
                "marker": {"color": "#0969da"},
                "name": "Mean handle time",
            }
        ],
        "layout": {
            **_BASE_LAYOUT,
            "title": {"text": title},
            "height": 120 + 28 * max(len(rows), 1),
            "xaxis": {"title": {"text": "Mean handle time (minutes)"}, "rangemode": "tozero"},
            "yaxis": {"automargin": True, "autorange": "reversed"},
        },
    }
