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

``talk`` draws the talk-time bars and the talk-ratio donut, ``timeline`` who spoke when, and
``style`` holds what they share.
"""

from __future__ import annotations

from dashboard.charts.style import (
    MAX_LABEL_CHARS,
    OVERLAP_COLOUR,
    ROLE_PALETTES,
    TARGET_TICKS,
    UIREVISION,
    Figure,
    clock,
    time_ticks,
)
from dashboard.charts.talk import talk_ratio_figure, talk_time_figure
from dashboard.charts.timeline import timeline_delta, timeline_figure
from streaming.events import AnalyticsPayload


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


__all__ = [
    "MAX_LABEL_CHARS",
    "OVERLAP_COLOUR",
    "ROLE_PALETTES",
    "TARGET_TICKS",
    "UIREVISION",
    "Figure",
    "clock",
    "figures",
    "live_update",
    "talk_ratio_figure",
    "talk_time_figure",
    "time_ticks",
    "timeline_delta",
    "timeline_figure",
]
