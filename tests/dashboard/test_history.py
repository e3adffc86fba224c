"""The history page: find a past call by what was said in it, open it, download its transcript.

The page uses the API's filters and queryset, narrowed to the supervisor's teams; these tests
check what a supervisor sees and gets through the pages, not the filters' every edge (those are
the API's tests).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
import srt  # type: ignore[import-untyped]  # no type hints
import webvtt
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.views import HISTORY_PAGE_SIZE
from streaming.history.exports import FORMATS
from tests.dashboard.api.conftest import (
    CONVERSATION,
    OTHER_LINE,
    STAFF_GROUP,
    SUPERVISORS_GROUP,
    Said,
    make_call,
    user_in,
)
from tests.dashboard.api.conftest import team_supervisor as team_supervisor

HISTORY = reverse("dashboard:history")


def _ids(response: Any) -> list[int]:
    return [row.id for row in response.context["rows"]]


@pytest.fixture
def calls(db: Any) -> dict[str, int]:
    return {
        "team": make_call("team-call", said=CONVERSATION, alerts=2, agent_ratio=0.625),
        "other": make_call(
            "other-call",
            line=OTHER_LINE,
            said=[Said(f"4:{OTHER_LINE}", "I was charged twice as well.", 1.0)],
        ),
        "quiet": make_call("quiet-call", said=[Said(None, "Good morning, café au lait", 1.0)]),
    }


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_supervisor_finds_a_past_call_by_a_phrase(
    team_supervisor: User, calls: dict[str, int]
) -> None:
    """Only the team's call that said it: not the team's other call, not another team's."""
    response = _client(team_supervisor).get(HISTORY, {"q": "charged twice"})
    assert response.status_code == 200
    assert _ids(response) == [calls["team"]]
    page = response.content.decode()
    assert reverse("dashboard:call", args=[calls["team"]]) in page
    assert "1 call found" in page
    row = response.context["rows"][0]
    assert (row.state, row.agent_talk, row.alerts, row.duration) == ("ended", "62%", 2, "3:00")


def test_staff_find_every_team_s_calls(db: Any, calls: dict[str, int]) -> None:
    staff = user_in("staff", SUPERVISORS_GROUP, STAFF_GROUP)
    response = _client(staff).get(HISTORY, {"q": "charged twice"})
    assert sorted(_ids(response)) == sorted([calls["team"], calls["other"]])
    assert sorted(_ids(_client(staff).get(HISTORY))) == sorted(calls.values())


def test_without_a_search_the_page_lists_the_team_s_calls_newest_first(
    team_supervisor: User, calls: dict[str, int]
) -> None:
    response = _client(team_supervisor).get(HISTORY)
    assert set(_ids(response)) == {calls["team"], calls["quiet"]}
    assert "No calls yet" not in response.content.decode()


def test_non_ascii_search_and_no_match(team_supervisor: User, calls: dict[str, int]) -> None:
    client = _client(team_supervisor)
    assert _ids(client.get(HISTORY, {"q": "café"})) == [calls["quiet"]]
    response = client.get(HISTORY, {"q": "refund the third"})
    if _ids(response):  # PostgreSQL matches words in any order; SQLite the phrase itself
        assert _ids(response) == [calls["team"]]
    else:
        assert "No call matches." in response.content.decode()


def test_a_bad_filter_is_shown_not_a_server_error(
    team_supervisor: User, calls: dict[str, int]
) -> None:
    response = _client(team_supervisor).get(HISTORY, {"started_after": "2025-02-30"})
    assert response.status_code == 200
    assert _ids(response) == []
    assert "started_after: Enter an ISO 8601 date" in response.content.decode()


def test_filters_combine_with_the_search(team_supervisor: User, calls: dict[str, int]) -> None:
    client = _client(team_supervisor)
    today = timezone.localdate()
    found = client.get(HISTORY, {"q": "charged", "state": "ended", "started_after": str(today)})
    assert _ids(found) == [calls["team"]]
    later = today + timedelta(days=1)
    assert _ids(client.get(HISTORY, {"q": "charged", "started_after": str(later)})) == []


def test_pages_keep_the_search_and_cost_the_same_queries(
    team_supervisor: User, django_assert_max_num_queries: Any
) -> None:
    """Two pages of matches; the links carry the search; a page's queries do not grow."""
    for n in range(HISTORY_PAGE_SIZE + 3):
        make_call(f"history-{n}", said=[Said(None, f"order number {n}", 1.0)], alerts=n % 2)
    client = _client(team_supervisor)
    first = client.get(HISTORY, {"q": "order"})
    assert len(_ids(first)) == HISTORY_PAGE_SIZE
    assert first.context["page"].paginator.count == HISTORY_PAGE_SIZE + 3
    assert 'href="?q=order&amp;page=2"' in first.content.decode()
    second = client.get(HISTORY, {"q": "order", "page": "2"})
    assert len(_ids(second)) == 3
    assert not set(_ids(first)) & set(_ids(second))
    # session, user, permissions and teams, then count, page and participants: 12 at most
    with django_assert_max_num_queries(12):
        client.get(HISTORY, {"q": "order"})
    with django_assert_max_num_queries(12):
        client.get(HISTORY, {"q": "order", "page": "2"})


def test_the_history_needs_a_supervisor(client: Client, db: Any) -> None:
    response = client.get(HISTORY)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    outsider = User.objects.create_user("outsider", password="outsider-password-123")
    assert _client(outsider).get(HISTORY).status_code == 403


# --- downloads from the call page ---------------------------------------------------------------


def test_the_call_page_links_each_format_and_each_link_downloads(
    team_supervisor: User, calls: dict[str, int]
) -> None:
    client = _client(team_supervisor)
    page = client.get(reverse("dashboard:call", args=[calls["team"]])).content.decode()
    for fmt, (media_type, extension) in FORMATS.items():
        url = reverse("api:transcript-file", args=[calls["team"], fmt])
        if fmt == "csv":  # made safe to open in a spreadsheet
            url += "?for=spreadsheet"
        assert f'href="{url}" download data-format="{fmt}"' in page
        response = client.get(url)  # the session is enough: no token needed from the page
        assert response.status_code == 200, (fmt, response.content[:200])
        assert response["Content-Type"].startswith(media_type)
        assert f'filename="call-{calls["team"]}.{extension}"' in response["Content-Disposition"]
        _check_parses(fmt, response.content.decode("utf-8"))


def _check_parses(fmt: str, body: str) -> None:
    """Each file holds the call's words, in a form its format's parser reads."""
    if fmt == "json":
        texts = [line["text"] for line in json.loads(body)["lines"]]
    elif fmt == "csv":
        texts = [row["text"] for row in csv.DictReader(io.StringIO(body))]
    elif fmt == "srt":
        texts = [s.content for s in srt.parse(body)]
    elif fmt == "vtt":
        texts = [c.text for c in webvtt.from_string(body, strict=True).captions]
    else:
        texts = [body]
    assert any("charged twice" in t for t in texts), (fmt, texts)


def test_another_team_s_supervisor_can_neither_open_nor_download(
    db: Any, calls: dict[str, int]
) -> None:
    from dashboard.models import Team, TeamAddress

    stranger = user_in("stranger", SUPERVISORS_GROUP)
    team = Team.objects.create(name="Billing")
    team.members.add(stranger)
    TeamAddress.objects.create(team=team, address=OTHER_LINE)
    client = _client(stranger)
    assert _ids(client.get(HISTORY, {"q": "charged twice"})) == [calls["other"]]
    assert client.get(reverse("dashboard:call", args=[calls["team"]])).status_code == 404
    for fmt in FORMATS:
        url = reverse("api:transcript-file", args=[calls["team"], fmt])
        assert client.get(url).status_code == 404
