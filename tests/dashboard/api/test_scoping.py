"""Team scoping: another team's call does not exist for a supervisor, on any endpoint."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from dashboard.permissions import SUPERVISORS_GROUP
from streaming.models import Call
from tests.dashboard.api.conftest import OTHER_LINE, TEAM_LINE, make_call, token_client, user_in

pytestmark = pytest.mark.django_db

CALL_URLS = [
    "/api/calls/{id}/",
    "/api/calls/{id}/utterances/",
    "/api/calls/{id}/transcript/",
    "/api/calls/{id}/transcript.json",
    "/api/calls/{id}/transcript.csv",
    "/api/calls/{id}/transcript.txt",
    "/api/calls/{id}/transcript.srt",
    "/api/calls/{id}/transcript.vtt",
]


def test_the_list_holds_only_the_teams_calls(
    team_api: Client, team_call: int, other_call: int
) -> None:
    rows = team_api.get("/api/calls/").json()
    assert rows["count"] == 1
    assert [row["id"] for row in rows["results"]] == [team_call]


def test_staff_see_every_call(staff_api: Client, team_call: int, other_call: int) -> None:
    ids = {row["id"] for row in staff_api.get("/api/calls/").json()["results"]}
    assert ids == {team_call, other_call}


@pytest.mark.parametrize("url", CALL_URLS)
def test_another_teams_call_is_404_like_a_missing_one(
    team_api: Client, team_call: int, other_call: int, url: str
) -> None:
    assert team_api.get(url.format(id=team_call)).status_code == 200
    hidden = team_api.get(url.format(id=other_call))
    missing = team_api.get(url.format(id=other_call + 1000))
    assert hidden.status_code == missing.status_code == 404
    assert hidden["Content-Type"] == "application/json"
    assert hidden.json() == missing.json()
    assert OTHER_LINE not in hidden.content.decode()
    assert "Content-Disposition" not in hidden


def test_a_call_is_visible_through_its_caller_or_callee(team_api: Client, db: None) -> None:
    """The team's number as caller or callee is enough, without a stored participant."""
    called = make_call("called", line=OTHER_LINE)
    Call.objects.filter(pk=called).update(callee=TEAM_LINE)
    assert team_api.get(f"/api/calls/{called}/").status_code == 200
    ids = [row["id"] for row in team_api.get("/api/calls/").json()["results"]]
    assert ids == [called]


def test_a_supervisor_of_no_team_sees_nothing(db: None, team_call: int) -> None:
    api = token_client(user_in("lonely", SUPERVISORS_GROUP))
    assert api.get("/api/calls/").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    assert api.get(f"/api/calls/{team_call}/").status_code == 404


def test_a_superuser_sees_every_call(db: None, team_call: int, other_call: int) -> None:
    root = User.objects.create_superuser("root", password="root-password-123")
    assert token_client(root).get("/api/calls/").json()["count"] == 2
