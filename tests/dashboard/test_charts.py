"""The talk-time charts: pure figure builders, validated by plotly itself; plotly.js served.

The builders take an ``AnalyticsPayload`` and return plain dicts; every figure here goes
through ``plotly.graph_objects.Figure``, which rejects any attribute plotly.js does not know.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import charts
from streaming.events import AnalyticsPayload, SpeakerStatsPayload

# --- Payloads ------------------------------------------------------------------------------


def speaker(
    key: str,
    label: str | None = None,
    role: str = "agent",
    talk_ms: int = 0,
    share: float = 0.0,
    ratio: float = 0.0,
) -> SpeakerStatsPayload:
    return {
        "key": key,
        "label": key if label is None else label,
        "role": role,
        "talk_ms": talk_ms,
        "share": share,
        "ratio": ratio,
        "longest_monologue_ms": talk_ms,
        "current_monologue_ms": 0,
        "interruptions": 0,
        "words": 0,
        "wpm": None,
        "speaking": False,
    }


def payload(
    speakers: list[SpeakerStatsPayload] | None = None,
    rows: dict[str, list[list[int]]] | None = None,
    *,
    since_ms: int = 0,
    duration_ms: int = 60_000,
    overlap_ms: int = 0,
    silence_ms: int = 0,
) -> AnalyticsPayload:
    speakers = speakers or []
    return {
        "call_id": 1,
        "source": "audio",
        "final": False,
        "duration_ms": duration_ms,
        "talk_ms": sum(s["talk_ms"] for s in speakers),
        "overlap_ms": overlap_ms,
        "silence_ms": silence_ms,
        "hold_ms": 0,
        "longest_silence_ms": 0,
        "current_silence_ms": 0,
        "interruptions": 0,
        "speakers": speakers,
        "timeline": {"since_ms": since_ms, "rows": rows or {}},
    }


AGENT = speaker("8:acs:agent", "Ann (agent)", "agent", talk_ms=20_500, share=0.34, ratio=0.6)
CUSTOMER = speaker("4:+15551234567", "+15551234567", "customer", 13_700, 0.23, 0.4)
TWO_SPEAKERS = payload(
    [AGENT, CUSTOMER],
    {
        "8:acs:agent": [[0, 5_000], [10_250, 25_750]],
        "4:+15551234567": [[4_000, 17_700]],
        "overlap": [[4_000, 5_000], [10_250, 17_700]],
    },
    overlap_ms=8_450,
    silence_ms=30_000,
)

EDGE_CASES: dict[str, AnalyticsPayload] = {
    "two speakers": TWO_SPEAKERS,
    "no speakers": payload(),
    "zero duration": payload([speaker("a")], {"a": [], "overlap": []}, duration_ms=0),
    "unicode and long labels": payload(
        [
            speaker("a", "Zoë Ærøskøbing-Łukasiewicz 李小龍 🎧 the very longest name", "agent"),
            speaker("b", "Zoë Ærøskøbing-Łukasiewicz 李小龍 🎧 the second", "agent"),
            speaker("c", "<b>bold</b> & co", "customer", 1_000, 0.5, 1.0),
        ],
        {"c": [[0, 1_000]]},
        duration_ms=2_000,
    ),
    "a speaker with no talk": payload(
        [AGENT, speaker("4:+1666", "Quiet", "customer")],
        {"8:acs:agent": [[0, 20_500]], "4:+1666": [], "overlap": []},
    ),
    "six speakers": payload(
        [
            speaker(f"k{i}", f"Speaker {i}", role, 1_000 * i, 0.01 * i, i / 21)
            for i, role in enumerate(["agent", "agent", "customer", "bot", "unknown", "agent"], 1)
        ],
        {f"k{i}": [[1_000 * i, 2_000 * i]] for i in range(1, 7)},
    ),
    "timeline row of an unlisted speaker": payload([AGENT], {"speaker:Guest-1": [[1_000, 2_000]]}),
    "an unexpected role": payload([speaker("x", "Sup", "supervisor", 1_000, 0.1, 1.0)]),
}


def traces_by_meta(figure: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["meta"]: t for t in figure["data"]}


def colours_by_key(a: AnalyticsPayload) -> dict[str, str]:
    timeline = traces_by_meta(charts.timeline_figure(a))
    return {key: trace["marker"]["color"] for key, trace in timeline.items() if key != "overlap"}


def validate(figure: dict[str, Any]) -> None:
    """plotly.py's own validation of every trace and layout attribute, and JSON."""
    import plotly.graph_objects as go

    go.Figure(figure)
    json.loads(json.dumps(figure, allow_nan=False))


# --- Values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "expected"),
    [
        (TWO_SPEAKERS, [20.5, 13.7]),
        (EDGE_CASES["a speaker with no talk"], [20.5, 0.0]),
        (EDGE_CASES["no speakers"], []),
        (EDGE_CASES["six speakers"], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    ],
)
def test_talk_time_bars_are_the_speakers_talk_seconds(
    a: AnalyticsPayload, expected: list[float]
) -> None:
    speakers, others = charts.talk_time_figure(a)["data"]
    assert speakers["x"] == expected
    assert speakers["y"] == [s["label"] for s in a["speakers"]]
    assert others["y"] == ["Overlap", "Silence"]
    assert others["x"] == [a["overlap_ms"] / 1000, a["silence_ms"] / 1000]


def test_talk_time_labels_carry_time_and_share_and_overlap_silence_look_different() -> None:
    figure = charts.talk_time_figure(TWO_SPEAKERS)
    speakers, others = figure["data"]
    assert speakers["text"] == ["0:21 · 34%", "0:14 · 23%"]  # 20.5 s and 13.7 s, rounded
    assert others["text"] == ["0:08 · 14%", "0:30 · 50%"]
    assert others["marker"]["pattern"]["shape"] == ["/", "."]
    assert "pattern" not in speakers["marker"]
    assert figure["layout"]["yaxis"]["categoryarray"] == [
        "Ann (agent)",
        "+15551234567",
        "Overlap",
        "Silence",
    ]
    # Phone numbers must stay categories, not become numbers on a linear axis.
    assert figure["layout"]["yaxis"]["type"] == "category"


@pytest.mark.parametrize(
    ("a", "expected"),
    [
        (TWO_SPEAKERS, [0.6, 0.4]),
        (EDGE_CASES["a speaker with no talk"], [0.6, 0.0]),
        (EDGE_CASES["six speakers"], [i / 21 for i in range(1, 7)]),
    ],
)
def test_donut_values_are_the_talk_ratios(a: AnalyticsPayload, expected: list[float]) -> None:
    (pie,) = charts.talk_ratio_figure(a)["data"]
    assert pie["type"] == "pie"
    assert pie["hole"] > 0
    assert pie["values"] == expected
    assert pie["labels"] == [s["label"] for s in a["speakers"]]
    assert pie["sort"] is False


@pytest.mark.parametrize(
    "name", ["no speakers", "zero duration", "a speaker with no talk", "two speakers"]
)
def test_donut_says_when_nobody_talked_yet(name: str) -> None:
    a = EDGE_CASES[name]
    nobody = not any(s["ratio"] > 0 for s in a["speakers"])
    notes = [n["text"] for n in charts.talk_ratio_figure(a)["layout"]["annotations"]]
    assert ("No talk yet" in notes) is nobody


def test_timeline_bars_are_the_segments_in_seconds() -> None:
    figure = charts.timeline_figure(TWO_SPEAKERS)
    traces = traces_by_meta(figure)
    assert list(traces) == ["8:acs:agent", "4:+15551234567", "overlap"]
    for key, segments in TWO_SPEAKERS["timeline"]["rows"].items():
        trace = traces[key]
        assert trace["type"] == "bar"
        assert trace["orientation"] == "h"
        assert trace["base"] == [start / 1000 for start, _ in segments]
        assert trace["x"] == [(end - start) / 1000 for start, end in segments]
        assert trace["y"] == [trace["name"]] * len(segments)
    assert traces["8:acs:agent"]["base"] == [0.0, 10.25]
    assert traces["8:acs:agent"]["x"] == [5.0, 15.5]


def test_timeline_has_an_overlap_row_in_the_warning_colour_last() -> None:
    for a in EDGE_CASES.values():
        figure = charts.timeline_figure(a)
        overlap = figure["data"][-1]
        assert overlap["meta"] == "overlap"
        assert overlap["name"] == "Overlap"
        assert overlap["marker"]["color"] == charts.OVERLAP_COLOUR
        assert figure["layout"]["yaxis"]["categoryarray"][-1] == "Overlap"
        assert figure["layout"]["barmode"] == "overlay"


def test_timeline_keeps_its_ui_revision_and_reads_as_minutes_and_seconds() -> None:
    first = charts.timeline_figure(TWO_SPEAKERS)["layout"]
    later = charts.timeline_figure(payload([AGENT], duration_ms=600_000))["layout"]
    assert first["uirevision"] == later["uirevision"] == charts.UIREVISION
    assert first["xaxis"]["ticktext"][:3] == ["0:00", "0:10", "0:20"]
    assert later["xaxis"]["ticktext"] == ["0:00", "2:00", "4:00", "6:00", "8:00", "10:00"]
    assert later["xaxis"]["tickvals"] == [0, 120, 240, 360, 480, 600]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (59.49, "0:59"),
        (59.5, "1:00"),  # rounded half up, as every duration Callsite shows
        (61, "1:01"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (-3, "0:00"),
    ],
)
def test_clock(seconds: float, text: str) -> None:
    assert charts.clock(seconds) == text


@pytest.mark.parametrize(("lo", "hi"), [(0, 0), (0, 7), (9, 16), (0, 3600), (0, 1e6), (5.5, 5.6)])
def test_time_ticks_are_few_and_in_range(lo: float, hi: float) -> None:
    vals, text = charts.time_ticks(lo, hi)
    assert len(vals) == len(text) <= charts.TARGET_TICKS + 1
    assert all(lo <= v <= max(hi, lo) for v in vals)


def test_timeline_delta_carries_the_new_segments_and_the_style_of_each_row() -> None:
    a = payload(
        [AGENT, CUSTOMER],
        {"8:acs:agent": [[10_250, 26_000]], "overlap": [[25_000, 26_000]]},
        since_ms=10_000,
    )
    delta = charts.timeline_delta(a)
    assert delta["since_ms"] == 10_000
    assert delta["categories"] == ["Ann (agent)", "+15551234567", "Overlap"]
    assert set(delta["rows"]) == {"8:acs:agent", "overlap"}
    agent = delta["rows"]["8:acs:agent"]
    assert agent["label"] == "Ann (agent)"
    assert agent["base"] == [10.25]
    assert agent["x"] == [15.75]
    full = traces_by_meta(charts.timeline_figure(a))
    for key, row in delta["rows"].items():
        assert row["trace"] == {**full[key], "base": [], "x": [], "y": []}
    assert delta["height"] == charts.timeline_figure(a)["layout"]["height"]


def test_figures_and_live_update_shapes() -> None:
    assert set(charts.figures(TWO_SPEAKERS)) == {"talk_time", "talk_ratio", "timeline"}
    update = charts.live_update(TWO_SPEAKERS)
    assert set(update) == {"talk_time", "talk_ratio", "timeline_delta"}
    assert update["talk_time"] == charts.talk_time_figure(TWO_SPEAKERS)
    assert update["timeline_delta"] == charts.timeline_delta(TWO_SPEAKERS)


# --- Colours and labels --------------------------------------------------------------------


def test_a_speaker_has_one_colour_in_all_three_charts() -> None:
    for name, a in EDGE_CASES.items():
        by_key = colours_by_key(a)
        keys = [s["key"] for s in a["speakers"]]
        bars = charts.talk_time_figure(a)["data"][0]["marker"]["color"]
        slices = charts.talk_ratio_figure(a)["data"][0]["marker"]["colors"]
        assert bars[: len(keys)] == [by_key[k] for k in keys], name
        assert slices[: len(keys)] == [by_key[k] for k in keys], name


def test_colours_follow_role_and_differ_within_a_role() -> None:
    colours = colours_by_key(EDGE_CASES["six speakers"])
    assert len(set(colours.values())) == 6
    assert colours["k1"] == charts.ROLE_PALETTES["agent"][0]
    assert colours["k2"] == charts.ROLE_PALETTES["agent"][1]
    assert colours["k6"] == charts.ROLE_PALETTES["agent"][2]
    assert colours["k3"] == charts.ROLE_PALETTES["customer"][0]
    assert colours["k4"] == charts.ROLE_PALETTES["bot"][0]
    assert colours["k5"] == charts.ROLE_PALETTES["unknown"][0]
    assert charts.OVERLAP_COLOUR not in colours.values()
    # Deterministic: the same payload, the same colours.
    assert colours == colours_by_key(EDGE_CASES["six speakers"])
    assert colours_by_key(EDGE_CASES["an unexpected role"]) == {
        "x": charts.ROLE_PALETTES["unknown"][0]
    }


def test_labels_are_short_unique_and_shown_as_text() -> None:
    a = EDGE_CASES["unicode and long labels"]
    labels = charts.timeline_figure(a)["layout"]["yaxis"]["categoryarray"]
    assert len(labels) == len(set(labels)) == 4
    assert all(len(label) <= charts.MAX_LABEL_CHARS + 4 for label in labels)
    assert labels[0].startswith("Zoë Ærøskøbing-Łukasiewicz")
    assert labels[0].endswith("…")
    assert labels[1] == labels[0] + " (2)"
    assert labels[2] == "&lt;b&gt;bold&lt;/b&gt; &amp; co"
    # The full name is kept for hover.
    bars = charts.talk_time_figure(a)["data"][0]
    assert bars["customdata"][0][0] == "Zoë Ærøskøbing-Łukasiewicz 李小龍 🎧 the very longest name"


def test_labels_never_merge_with_each_other_or_with_overlap_and_silence() -> None:
    a = payload(
        [speaker("a", "Overlap"), speaker("b", "Sam"), speaker("c", "Sam"), speaker("d", "")]
    )
    (pie,) = charts.talk_ratio_figure(a)["data"]
    assert pie["labels"] == ["Overlap (2)", "Sam", "Sam (2)", "d"]


def test_a_timeline_row_without_a_speaker_gets_a_row_of_its_own() -> None:
    traces = traces_by_meta(
        charts.timeline_figure(EDGE_CASES["timeline row of an unlisted speaker"])
    )
    assert list(traces) == ["8:acs:agent", "speaker:Guest-1", "overlap"]
    assert traces["speaker:Guest-1"]["base"] == [1.0]


# --- Validity --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_every_figure_is_valid_plotly_and_json(name: str) -> None:
    a = EDGE_CASES[name]
    for figure in charts.figures(a).values():
        validate(figure)
    update = charts.live_update(a)
    validate(update["talk_time"])
    validate(update["talk_ratio"])
    json.dumps(update, allow_nan=False)
    for row in update["timeline_delta"]["rows"].values():
        validate({"data": [row["trace"]], "layout": {}})


def test_malformed_segments_are_skipped_not_fatal() -> None:
    a = payload([AGENT], {"8:acs:agent": [[1_000, 500], [1], [2_000, 3_000]]})
    trace = traces_by_meta(charts.timeline_figure(a))["8:acs:agent"]
    assert trace["base"] == [1.0, 2.0]
    assert trace["x"] == [0.0, 1.0]


# --- Properties ------------------------------------------------------------------------------

ROLES = st.sampled_from(["agent", "customer", "bot", "unknown", "supervisor", ""])
LABELS = st.text(max_size=60)
SEGMENT = st.tuples(st.integers(0, 10_000_000), st.integers(0, 3_600_000)).map(
    lambda p: [p[0], p[0] + p[1]]
)


@st.composite
def payloads(draw: st.DrawFn) -> AnalyticsPayload:
    keys = draw(st.lists(st.text(min_size=1, max_size=20), max_size=8, unique=True))
    keys = [k for k in keys if k != "overlap"]
    talk = [draw(st.integers(0, 10_000_000)) for _ in keys]
    total = sum(talk)
    duration = draw(st.integers(0, 20_000_000))
    speakers = [
        speaker(
            key,
            draw(LABELS),
            draw(ROLES),
            t,
            t / duration if duration else 0.0,
            t / total if total else 0.0,
        )
        for key, t in zip(keys, talk, strict=True)
    ]
    row_keys = [*(draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []), "overlap"]
    row_keys += draw(st.lists(st.text(min_size=1, max_size=10), max_size=2))
    rows = {key: draw(st.lists(SEGMENT, max_size=6)) for key in row_keys}
    return payload(
        speakers,
        rows,
        since_ms=draw(st.integers(0, 20_000_000)),
        duration_ms=duration,
        overlap_ms=draw(st.integers(0, duration)),
        silence_ms=draw(st.integers(0, duration)),
    )


def segment_total_s(a: AnalyticsPayload) -> float:
    return sum((e - s) / 1000 for segs in a["timeline"]["rows"].values() for s, e in segs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_builders_never_raise_and_the_timeline_holds_every_segment(a: AnalyticsPayload) -> None:
    figures = charts.figures(a)
    update = charts.live_update(a)
    json.dumps([figures, update], allow_nan=False)

    timeline = figures["timeline"]
    total = sum(sum(t["x"]) for t in timeline["data"])
    assert math.isclose(total, segment_total_s(a), rel_tol=1e-9, abs_tol=1e-6)
    assert {t["meta"] for t in timeline["data"]} >= set(a["timeline"]["rows"])
    labels = timeline["layout"]["yaxis"]["categoryarray"]
    assert len(labels) == len(set(labels)) == len(timeline["data"])
    for trace in timeline["data"]:
        assert len(trace["base"]) == len(trace["x"]) == len(trace["y"])
        assert all(x >= 0 for x in trace["x"])

    delta = update["timeline_delta"]
    delta_total = sum(sum(row["x"]) for row in delta["rows"].values())
    assert math.isclose(delta_total, segment_total_s(a), rel_tol=1e-9, abs_tol=1e-6)
    (pie,) = update["talk_ratio"]["data"]
    assert len(pie["labels"]) == len(set(pie["labels"])) == len(pie["values"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_random_figures_are_valid_plotly(a: AnalyticsPayload) -> None:
    for figure in charts.figures(a).values():
        validate(figure)


# --- plotly.js as a static file --------------------------------------------------------------


def test_plotly_js_is_a_static_file_from_the_plotly_package() -> None:
    import plotly
    from django.contrib.staticfiles import finders

    found = finders.find("plotly/plotly.min.js")
    assert found is not None
    path = Path(str(found))
    assert path == Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    assert path.read_bytes()[:200].decode().lstrip("/* \n").startswith("plotly.js v")
    # Only that file: nothing else of the package is exposed.
    assert finders.find("plotly/widgetbundle.js") is None
    assert finders.find("plotly/../plotly/plotly.min.js") is None


def test_the_plotly_finder_passes_its_system_check() -> None:
    from django.contrib.staticfiles.finders import get_finder

    assert get_finder("dashboard.staticfinders.PlotlyFinder").check() == []


def test_collectstatic_copies_plotly_js(tmp_path: Path, settings: Any) -> None:
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    copied = tmp_path / "static" / "plotly" / "plotly.min.js"
    assert copied.is_file()
    assert b"plotly.js v" in copied.read_bytes()[:200]


def test_daphne_serves_plotly_js() -> None:
    """The ASGI app serves /static/ itself (CALLSITE_SERVE_STATIC, the default)."""
    from tests.helpers import asgi_get

    status, headers, body = asgi_get("/static/plotly/plotly.min.js")
    assert status == 200
    assert b"javascript" in headers[b"Content-Type"]
    assert b"plotly.js v" in body[:200]
    assert len(body) > 1_000_000


def test_a_tick_s_analytics_message_is_built_once_for_every_page() -> None:
    """Pages of one process share the encoded message of a tick; the next tick is new."""
    from dashboard.messages import LIVE_ANALYTICS, analytics_update

    tick = copy.deepcopy(TWO_SPEAKERS)
    tick["call_id"] = 987_654
    first = LIVE_ANALYTICS.text(copy.deepcopy(tick))
    assert LIVE_ANALYTICS.text(copy.deepcopy(tick)) is first  # another page, same tick
    assert json.loads(first) == json.loads(json.dumps(analytics_update(tick)))
    later = copy.deepcopy(tick)
    later["duration_ms"] += 1000
    later["talk_ms"] += 1000
    text = LIVE_ANALYTICS.text(later)
    assert text is not first
    assert json.loads(text)["analytics"]["talk_ms"] == tick["talk_ms"] + 1000
    final = copy.deepcopy(later)
    final["final"] = True
    assert json.loads(LIVE_ANALYTICS.text(final))["analytics"]["final"] is True
    assert 987_654 not in LIVE_ANALYTICS.latest  # the call ended: nothing kept for it
