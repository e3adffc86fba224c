"""The call list (rows, filters, search, pagination, query count), one call, its utterances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.api.pagination import CallsitePagination
from streaming.models import Call, CallState, Participant
from streaming.units import TICKS_PER_SECOND
from tests.dashboard.api.conftest import AGENT, CONVERSATION, OTHER_LINE, TEAM_LINE, Said, make_call

pytestmark = pytest.mark.django_db


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# ----------------------------------------------------------------------------------- rows


def test_a_list_row_holds_the_calls_figures(staff_api: Client, team_call: int) -> None:
    row = staff_api.get("/api/calls/").json()["results"][0]
    call = Call.objects.get(pk=team_call)
    assert call.started_at is not None
    assert call.ended_at is not None
    assert row["id"] == team_call
    assert row["connection_id"] == "team-call"
    assert row["state"] == "ended"
    assert row["started_at"] == call.started_at.isoformat().replace("+00:00", "Z")
    assert row["ended_at"] == call.ended_at.isoformat().replace("+00:00", "Z")
    assert row["duration_seconds"] == 180.0
    assert [(p["raw_id"], p["role"], p["kind"]) for p in row["participants"]] == [
        (AGENT, "agent", "acs_user"),
        (f"4:{TEAM_LINE}", "customer", "phone"),
    ]
    assert row["participants"][1]["label"] == TEAM_LINE
    assert row["agent_talk_ratio"] == 0.625
    # The untimed line has no confidence: the mean is of the three others.
    assert row["mean_confidence"] == pytest.approx((0.95 + 0.8 + 0.85) / 3)
    assert row["alert_count"] == 2


def test_a_call_without_figures_has_nulls_and_zeros(staff_api: Client) -> None:
    make_call("bare", ended=False)
    started = Call.objects.get(connection_id="bare").started_at
    assert started is not None
    row = staff_api.get("/api/calls/").json()["results"][0]
    assert row["state"] == "connected"
    assert row["ended_at"] is None
    assert row["end_reason"] == ""
    # A live call's duration so far, by the server's clock.
    so_far = (timezone.now() - started).total_seconds()
    assert 0 <= row["duration_seconds"] <= so_far
    assert row["agent_talk_ratio"] is None
    assert row["mean_confidence"] is None
    assert row["alert_count"] == 0


def test_calls_come_newest_first(staff_api: Client) -> None:
    now = datetime.now(UTC)
    old = make_call("old", started_at=now - timedelta(days=2))
    new = make_call("new", started_at=now - timedelta(hours=1))
    middle = make_call("middle", started_at=now - timedelta(days=1))
    ringing = Call.objects.create(state=CallState.RINGING, caller=f"4:{TEAM_LINE}").pk
    assert ids(staff_api.get("/api/calls/")) == [ringing, new, middle, old]


# ---------------------------------------------------------------------------------- detail


def test_one_call_with_participants_and_analytics(staff_api: Client, team_call: int) -> None:
    call = staff_api.get(f"/api/calls/{team_call}/").json()
    assert call["id"] == team_call
    assert call["alert_count"] == 2
    assert call["agent_talk_ratio"] == 0.625
    assert [p["raw_id"] for p in call["participants"]] == [AGENT, f"4:{TEAM_LINE}"]
    assert set(call["participants"][0]) == {
        "id",
        "raw_id",
        "label",
        "role",
        "kind",
        "is_muted",
        "is_on_hold",
        "in_call",
        "display_name",
        "held_since",
        "hold_ms",
        "longest_hold_ms",
        "muted_since",
        "mute_ms",
        "longest_mute_ms",
    }
    analytics = call["analytics"]
    assert analytics["talk_ms"] == 150_000
    assert analytics["silence_ms"] == 30_000
    assert analytics["overlap_ms"] == 4_000
    assert analytics["interruptions"] == 3
    assert analytics["agent_talk_ratio"] == 0.625
    assert [(s["key"], s["role"], s["ratio"]) for s in analytics["speakers"]] == [
        (AGENT, "agent", 0.625),
        (f"4:{TEAM_LINE}", "customer", 0.375),
    ]
    assert analytics["speakers"][0]["wpm"] == 140.5
    assert analytics["speakers"][1]["wpm"] is None


def test_a_call_without_analytics_says_null(staff_api: Client) -> None:
    call_id = make_call("no-analytics")
    call = staff_api.get(f"/api/calls/{call_id}/").json()
    assert call["analytics"] is None
    assert call["alert_count"] == 0


def test_malformed_stored_figures_are_made_safe(staff_api: Client, team_call: int) -> None:
    from streaming.models import CallAnalytics

    CallAnalytics.objects.filter(pk=team_call).update(
        speakers=[{"key": AGENT, "ratio": "lots"}, "junk"], agent_talk_ratio=None
    )
    analytics = staff_api.get(f"/api/calls/{team_call}/").json()["analytics"]
    assert analytics["agent_talk_ratio"] is None
    assert analytics["speakers"] == [
        {
            "key": AGENT,
            "label": "",
            "role": "",
            "talk_ms": 0,
            "ratio": None,
            "share": None,
            "interruptions": 0,
            "longest_monologue_ms": 0,
            "words": 0,
            "wpm": None,
        }
    ]


@pytest.mark.parametrize("call_id", ["0", "-1", "99999999", "9" * 30])
def test_unknown_call_ids_are_json_404s(staff_api: Client, call_id: str) -> None:
    for suffix in ("", "utterances/", "transcript/", "transcript.txt"):
        response = staff_api.get(f"/api/calls/{call_id}/{suffix}")
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"


# ------------------------------------------------------------------------------ utterances


def test_utterances_come_in_spoken_order_with_their_details(
    staff_api: Client, team_call: int
) -> None:
    page = staff_api.get(f"/api/calls/{team_call}/utterances/").json()
    assert page["count"] == 4
    lines = page["results"]
    assert [u["text"] for u in lines] == [s.text for s in CONVERSATION]
    first = lines[0]
    assert first["speaker"]["key"] == AGENT
    assert first["speaker"]["role"] == "agent"
    assert first["offset_ticks"] == 1 * TICKS_PER_SECOND
    assert first["duration_ticks"] == 3 * TICKS_PER_SECOND
    assert first["confidence"] == 0.95
    assert first["source"] == "recognizer"
    assert first["words"][0] == {
        "text": "Hello,",
        "offset": TICKS_PER_SECOND,
        "duration": 3 * TICKS_PER_SECOND,
        "confidence": 0.95,
    }
    assert lines[3]["speaker"] is None
    assert lines[3]["offset_ticks"] is None
    assert lines[3]["confidence"] is None


def test_utterances_are_ordered_by_start_not_by_arrival(staff_api: Client) -> None:
    call_id = make_call(
        "late-final",
        said=[
            Said(AGENT, "second", 5.0),
            Said(AGENT, "first", 1.0),
            Said(AGENT, "third", 9.0),
        ],
    )
    page = staff_api.get(f"/api/calls/{call_id}/utterances/").json()
    assert [u["text"] for u in page["results"]] == ["first", "second", "third"]


def test_utterances_are_paginated(staff_api: Client) -> None:
    call_id = make_call("long", said=[Said(AGENT, f"line {n}", float(n)) for n in range(7)])
    first = staff_api.get(f"/api/calls/{call_id}/utterances/?page_size=3").json()
    assert first["count"] == 7
    assert [u["text"] for u in first["results"]] == ["line 0", "line 1", "line 2"]
    assert first["next"].endswith(f"/api/calls/{call_id}/utterances/?page=2&page_size=3")
    last = staff_api.get(f"/api/calls/{call_id}/utterances/?page=3&page_size=3").json()
    assert [u["text"] for u in last["results"]] == ["line 6"]
    assert last["next"] is None


# --------------------------------------------------------------------------------- filters


def test_filter_by_state(staff_api: Client) -> None:
    ended = make_call("ended")
    live = make_call("live", ended=False)
    assert ids(staff_api.get("/api/calls/?state=ended")) == [ended]
    assert ids(staff_api.get("/api/calls/?state=connected")) == [live]
    assert ids(staff_api.get("/api/calls/?state=ringing")) == []


def test_filter_by_start(staff_api: Client, settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    march_3 = make_call("march-3", started_at=datetime(2025, 3, 3, 23, 30, tzinfo=UTC))
    march_4 = make_call("march-4", started_at=datetime(2025, 3, 4, 10, 0, tzinfo=UTC))
    march_5 = make_call("march-5", started_at=datetime(2025, 3, 5, 0, 0, tzinfo=UTC))

    def found(query: str) -> list[int]:
        return ids(staff_api.get(f"/api/calls/?{query}"))

    assert found("started_after=2025-03-04") == [march_5, march_4]
    assert found("started_before=2025-03-04") == [march_4, march_3]  # the whole of the 4th
    assert found("started_after=2025-03-04&started_before=2025-03-04") == [march_4]
    assert found("started_after=2025-03-04T10:00:00Z") == [march_5, march_4]
    assert found("started_after=2025-03-04T10:00:01Z") == [march_5]
    assert found("started_before=2025-03-04T10:00:00%2B00:00") == [march_3]
    # A time with an offset: 11:00 in UTC+1 is 10:00 UTC.
    assert found("started_after=2025-03-04T11:00:00%2B01:00") == [march_5, march_4]
    # Without an offset, the server's time zone.
    settings.TIME_ZONE = "America/New_York"
    assert found("started_after=2025-03-04T05:00:00") == [march_5, march_4]
    assert found("started_before=2025-03-03") == [march_3]  # 18:30 on the 3rd in New York
    assert found("started_after=2025-03-04") == [march_5, march_4]  # from 05:00 UTC


def test_filter_by_participant(staff_api: Client) -> None:
    team = make_call("team")
    other = make_call("other", line=OTHER_LINE)
    Participant.objects.filter(call_id=other, raw_id=f"4:{OTHER_LINE}").update(
        display_label="Dana Scully"
    )
    assert ids(staff_api.get("/api/calls/?participant=4:%2B15551230000")) == [team]
    assert ids(staff_api.get("/api/calls/?participant=5551230000")) == [team]  # in the label
    assert ids(staff_api.get("/api/calls/?participant=scully")) == [other]
    assert ids(staff_api.get(f"/api/calls/?participant={AGENT}")) == [other, team]
    assert ids(staff_api.get("/api/calls/?participant=nobody")) == []
    # The raw id must match exactly; only labels match in part.
    assert ids(staff_api.get("/api/calls/?participant=8:acs:resource")) == []


def test_filter_by_alerts(staff_api: Client) -> None:
    quiet = make_call("quiet")
    loud = make_call("loud", alerts=1)
    assert ids(staff_api.get("/api/calls/?has_alerts=true")) == [loud]
    assert ids(staff_api.get("/api/calls/?has_alerts=false")) == [quiet]
    assert ids(staff_api.get("/api/calls/")) == [loud, quiet]


def test_search_by_what_was_said(staff_api: Client, team_call: int, other_call: int) -> None:
    assert ids(staff_api.get("/api/calls/?q=charged+twice")) == [team_call]
    assert ids(staff_api.get("/api/calls/?q=REFUND")) == [team_call]
    assert ids(staff_api.get("/api/calls/?q=subscription")) == [other_call]
    assert ids(staff_api.get("/api/calls/?q=mortgage")) == []
    assert len(ids(staff_api.get("/api/calls/?q=+"))) == 2  # blank: no filter


def test_search_stays_within_the_teams_calls(
    team_api: Client, team_call: int, other_call: int
) -> None:
    assert ids(team_api.get("/api/calls/?q=subscription")) == []
    assert ids(team_api.get("/api/calls/?q=refund")) == [team_call]


def test_filters_combine(staff_api: Client, team_call: int, other_call: int) -> None:
    assert ids(staff_api.get("/api/calls/?state=ended&has_alerts=true&q=refund")) == [team_call]
    assert ids(staff_api.get("/api/calls/?state=connected&q=refund")) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("state=finished", "state"),
        ("started_after=yesterday", "started_after"),
        ("started_before=2025-02-30", "started_before"),
        ("has_alerts=maybe", "has_alerts"),
        ("sentiment=furious", "sentiment"),
        ("ended_negative=maybe", "ended_negative"),
        ("participant=a%00b", "participant"),  # the NUL guard answers first, in this shape
        ("q=" + "x" * 501, "q"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(
    staff_api: Client, query: str, field: str
) -> None:
    response = staff_api.get(f"/api/calls/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [field]


# ------------------------------------------------------------------------------ pagination


def test_the_list_is_paginated(staff_api: Client) -> None:
    start = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
    made = [make_call(f"call-{n}", started_at=start + timedelta(minutes=n)) for n in range(5)]
    newest_first = made[::-1]
    first = staff_api.get("/api/calls/?page_size=2").json()
    assert first["count"] == 5
    assert [row["id"] for row in first["results"]] == newest_first[:2]
    assert first["previous"] is None
    assert first["next"].endswith("/api/calls/?page=2&page_size=2")
    third = staff_api.get("/api/calls/?page_size=2&page=3").json()
    assert [row["id"] for row in third["results"]] == newest_first[4:]
    assert staff_api.get("/api/calls/?page_size=2&page=4").status_code == 404


def test_page_size_defaults_to_50_and_is_capped(
    staff_api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CallsitePagination.page_size == 50
    assert CallsitePagination.max_page_size == 200
    for n in range(4):
        make_call(f"call-{n}")
    monkeypatch.setattr(CallsitePagination, "max_page_size", 3)
    assert len(staff_api.get("/api/calls/?page_size=1000").json()["results"]) == 3
    monkeypatch.setattr(CallsitePagination, "page_size", 2)
    assert len(staff_api.get("/api/calls/").json()["results"]) == 2
    assert len(staff_api.get("/api/calls/?page_size=nonsense").json()["results"]) == 2


# ---------------------------------------------------------------------------- query count


def _queries(api: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert api.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("who", ["staff_api", "team_api"])
def test_a_page_costs_the_same_queries_whatever_its_size(
    request: pytest.FixtureRequest, who: str, django_assert_max_num_queries: Any
) -> None:
    api: Client = request.getfixturevalue(who)
    for n in range(60):
        make_call(
            f"bulk-{n}",
            said=[Said(AGENT, f"hello {n}", 1.0), Said(f"4:{TEAM_LINE}", "hi", 2.0)],
            alerts=n % 3,
            agent_ratio=0.5 if n % 2 else None,
        )
    # Token and user, the user's permissions (2), then count, page and participants.
    with django_assert_max_num_queries(6):
        page = api.get("/api/calls/?page_size=60").json()
    assert len(page["results"]) == 60
    assert {row["alert_count"] for row in page["results"]} == {0, 1, 2}
    assert _queries(api, "/api/calls/?page_size=5") == _queries(api, "/api/calls/?page_size=60")
    filtered = "/api/calls/?page_size=60&has_alerts=true&q=hello&participant=agent&state=ended"
    with django_assert_max_num_queries(6):
        assert len(api.get(filtered).json()["results"]) == 40


def test_utterance_pages_cost_a_constant_number_of_queries(
    staff_api: Client, django_assert_max_num_queries: Any
) -> None:
    call_id = make_call("chatty", said=[Said(AGENT, f"line {n}", float(n)) for n in range(60)])
    with django_assert_max_num_queries(6):
        assert (
            len(staff_api.get(f"/api/calls/{call_id}/utterances/?page_size=60").json()["results"])
            == 60
        )
    assert _queries(staff_api, f"/api/calls/{call_id}/utterances/?page_size=2") == _queries(
        staff_api, f"/api/calls/{call_id}/utterances/?page_size=60"
    )
