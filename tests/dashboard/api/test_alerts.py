"""GET /api/alerts/: team-scoped, filtered by state, kind, call and agent, paginated."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from streaming import services
from streaming.models import Alert
from tests import factories
from tests.dashboard.api.conftest import OTHER_LINE, TEAM_LINE, make_call, token_client
from tests.factories import AGENT


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [a["id"] for a in response.json()["results"]]


def test_a_team_supervisor_sees_only_their_teams_alerts(
    team_api: Client, staff_api: Client, db: Any
) -> None:
    ours = make_call("ours", alerts=2)
    theirs = make_call("theirs", line=OTHER_LINE, alerts=1)
    mine = list(Alert.objects.filter(call_id=ours).values_list("pk", flat=True))
    other = list(Alert.objects.filter(call_id=theirs).values_list("pk", flat=True))
    assert sorted(_ids(team_api.get("/api/alerts/"))) == sorted(mine)
    assert sorted(_ids(staff_api.get("/api/alerts/"))) == sorted(mine + other)
    assert _ids(team_api.get(f"/api/alerts/?call={theirs}")) == []


def test_each_alert_carries_its_triage(team_api: Client, team_supervisor: User) -> None:
    call_id = make_call("triaged", alerts=1)
    alert = Alert.objects.get(call_id=call_id)
    services.alert_triage(alert_id=alert.pk, step="acknowledge", user=team_supervisor, note="ok")
    row = team_api.get("/api/alerts/").json()["results"][0]
    assert row["id"] == alert.pk
    assert row["call"] == call_id
    assert row["kind"] == "dead_air"
    assert row["state"] == "acknowledged"
    assert row["acknowledged_by"] == "teamsup"
    assert row["acknowledged_at"] is not None
    assert row["resolved_by"] is None
    assert row["resolved_at"] is None
    assert row["note"] == "ok"


def test_filters(team_api: Client, team_supervisor: User) -> None:
    first = make_call("first", alerts=1)
    second = factories.make_call(
        "second", people=["8:acs:resource_agent-2", f"4:{TEAM_LINE}"], alerts=["hold", "keyword"]
    )
    by_kind = {a.kind: a.pk for a in Alert.objects.filter(call_id=second)}
    services.alert_triage(alert_id=by_kind["hold"], step="resolve", user=team_supervisor)
    first_alert = Alert.objects.get(call_id=first).pk

    assert sorted(_ids(team_api.get("/api/alerts/?state=open"))) == sorted(
        [first_alert, by_kind["keyword"]]
    )
    assert _ids(team_api.get("/api/alerts/?state=resolved")) == [by_kind["hold"]]
    assert _ids(team_api.get("/api/alerts/?kind=keyword")) == [by_kind["keyword"]]
    assert sorted(_ids(team_api.get(f"/api/alerts/?call={second}"))) == sorted(by_kind.values())
    assert _ids(team_api.get(f"/api/alerts/?agent={AGENT}")) == [first_alert]
    agent_2 = sorted(_ids(team_api.get("/api/alerts/?agent=NT-2")))  # "Agent nt-2"
    assert agent_2 == sorted(by_kind.values())
    assert _ids(team_api.get("/api/alerts/?agent=nobody")) == []


def test_bad_filters_are_400s_naming_the_parameter(team_api: Client, db: Any) -> None:
    for query, name in [("state=snoozed", "state"), ("kind=weather", "kind"), ("call=x", "call")]:
        response = team_api.get(f"/api/alerts/?{query}")
        assert response.status_code == 400
        assert name in response.json()


def test_anonymous_and_non_supervisors_are_refused(outsider: User) -> None:
    assert Client().get("/api/alerts/").status_code == 401
    assert token_client(outsider).get("/api/alerts/").status_code == 403


def test_a_page_costs_the_same_queries_for_many_alerts(
    team_api: Client, django_assert_num_queries: Any
) -> None:
    make_call("few", alerts=1)
    team_api.get("/api/alerts/")
    with django_assert_num_queries(5) as few:
        team_api.get("/api/alerts/")
    for n in range(10):
        make_call(f"many-{n}", alerts=3)
    with django_assert_num_queries(len(few.captured_queries)):
        assert len(_ids(team_api.get("/api/alerts/"))) == 31


# --- POST /api/alerts/<id>/<step>/ ------------------------------------------------------------


def test_an_api_client_triages_its_teams_alerts_with_a_token(
    team_api: Client, team_supervisor: User, django_capture_on_commit_callbacks: Any
) -> None:
    call_id = make_call("to-triage", alerts=1)
    alert = Alert.objects.get(call_id=call_id)
    url = f"/api/alerts/{alert.pk}"
    with django_capture_on_commit_callbacks(execute=False) as broadcasts:
        acknowledged = team_api.post(
            f"{url}/acknowledge/", {"note": "  Calling back  "}, content_type="application/json"
        )
    assert acknowledged.status_code == 200, acknowledged.content
    body = acknowledged.json()
    assert (body["id"], body["state"], body["acknowledged_by"]) == (
        alert.pk,
        "acknowledged",
        "teamsup",
    )
    assert body["note"] == "Calling back"
    assert broadcasts, "the change is sent to the pages watching the call"
    resolved = team_api.post(f"{url}/resolve/")  # no body: the note is kept
    assert resolved.status_code == 200
    assert resolved.json()["state"] == "resolved"
    assert resolved.json()["note"] == "Calling back"
    # A resolved alert cannot be acknowledged: reopened first.
    refused = team_api.post(f"{url}/acknowledge/")
    assert refused.status_code == 400
    assert "step" in refused.json()
    assert team_api.post(f"{url}/reopen/").json()["state"] == "open"
    stored = Alert.objects.get(pk=alert.pk)
    assert (stored.state, stored.acknowledged_by_id, stored.resolved_by_id) == ("open", None, None)


def test_triage_refuses_what_it_cannot_do(
    team_api: Client, outsider: User, team_supervisor: User
) -> None:
    ours = Alert.objects.get(call_id=make_call("ours-to-triage", alerts=1))
    theirs = Alert.objects.get(call_id=make_call("theirs-to-triage", line=OTHER_LINE, alerts=1))
    assert team_api.post(f"/api/alerts/{theirs.pk}/acknowledge/").status_code == 404
    assert team_api.post(f"/api/alerts/{ours.pk}/snooze/").status_code == 404
    assert team_api.post(f"/api/alerts/{2**70}/acknowledge/").status_code == 404
    assert team_api.post("/api/alerts/0/acknowledge/").status_code == 404
    too_long = team_api.post(
        f"/api/alerts/{ours.pk}/acknowledge/", {"note": "x" * 501}, content_type="application/json"
    )
    assert too_long.status_code == 400
    assert "note" in too_long.json()
    not_an_object = team_api.post(
        f"/api/alerts/{ours.pk}/acknowledge/", [1, 2], content_type="application/json"
    )
    assert not_an_object.status_code == 400
    assert team_api.get(f"/api/alerts/{ours.pk}/acknowledge/").status_code == 405
    assert Client().post(f"/api/alerts/{ours.pk}/acknowledge/").status_code == 401
    assert token_client(outsider).post(f"/api/alerts/{ours.pk}/acknowledge/").status_code == 403
    # A browser session must send its CSRF token, as the pages do.
    session = Client(enforce_csrf_checks=True)
    session.force_login(team_supervisor)
    assert session.post(f"/api/alerts/{ours.pk}/acknowledge/").status_code == 403
    assert Alert.objects.get(pk=ours.pk).state == "open"
