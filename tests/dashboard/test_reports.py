"""Reports per agent and team: figures equal sums computed here from the fixture calls, on
the page, in the CSV and the API; queries constant in the number of calls; team scoping."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.models import Agent, AgentAddress, Team
from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
from tests import factories
from tests.factories import Said, user_in

pytestmark = pytest.mark.django_db

AGENTS = {
    "Ann Lee": ("Billing", "8:acs:r_agent-ann"),
    "Bob Stone": ("Billing", "8:acs:r_agent-bob"),
    "Cy Ray": ("Sales", "8:acs:r_agent-cy"),
}


@dataclass(frozen=True)
class Spec:
    """A fixture call: who was on it and its figures."""

    agents: tuple[str, ...]
    days_ago: float
    duration_ms: int
    talk_ms: int
    agent_ratio: float
    interruptions: int
    silence_ms: int
    hold_ms: int
    alerts: int
    sentiments: tuple[str, ...]


def _directory() -> None:
    for name, (team, raw_id) in AGENTS.items():
        agent = Agent.objects.create(name=name, team=Team.objects.get_or_create(name=team)[0])
        AgentAddress.objects.create(agent=agent, address=raw_id)


def _specs(n: int, seed: int = 7) -> list[Spec]:
    rng = random.Random(seed)
    names = list(AGENTS)
    specs = []
    for _ in range(n):
        who = tuple(rng.sample(names, rng.choice([1, 1, 1, 2])))
        talk = rng.randrange(30_000, 300_000)
        specs.append(
            Spec(
                agents=who,
                days_ago=rng.uniform(0.1, 12),  # some outside the 7-day range
                duration_ms=talk + rng.randrange(0, 60_000),
                talk_ms=talk,
                agent_ratio=round(rng.uniform(0.2, 0.8), 4),
                interruptions=rng.randrange(0, 9),
                silence_ms=rng.randrange(0, 40_000),
                hold_ms=rng.randrange(0, 20_000),
                alerts=rng.randrange(0, 3),
                sentiments=tuple(
                    rng.choice(["negative", "neutral", "positive"])
                    for _ in range(rng.randrange(0, 4))
                ),
            )
        )
    return specs


def _store(specs: list[Spec], prefix: str = "report") -> None:
    now = timezone.now()
    for n, spec in enumerate(specs):
        people = [AGENTS[a][1] for a in spec.agents] + ["4:+15550001111"]
        factories.make_call(
            f"{prefix}-{n}",
            people=people,
            said=[
                Said(people[0], f"line {i}", float(i), sentiment=s)
                for i, s in enumerate(spec.sentiments)
            ],
            alerts=spec.alerts,
            analytics={
                "source": "audio",
                "final": True,
                "duration_ms": spec.duration_ms,
                "talk_ms": spec.talk_ms,
                "agent_talk_ratio": spec.agent_ratio,
                "interruptions": spec.interruptions,
                "silence_ms": spec.silence_ms,
                "hold_ms": spec.hold_ms,
            },
            started=now - timedelta(days=spec.days_ago),
            length=timedelta(milliseconds=spec.duration_ms),
        )


def _expected(specs: list[Spec], member: Any) -> dict[str, dict[str, Any]]:
    """Sums over the calls of the last 7 days for which ``member(spec)`` holds, per name."""
    out: dict[str, dict[str, Any]] = {}
    for name in [*AGENTS, "Billing", "Sales"]:
        mine = [s for s in specs if s.days_ago < 7 and member(s, name)]
        if not mine:
            continue
        talk = sum(s.talk_ms for s in mine)
        felt = [x for s in mine for x in s.sentiments]
        out[name] = {
            "calls": len(mine),
            "handle_ms": sum(s.duration_ms for s in mine),
            "mean_handle_ms": round(sum(s.duration_ms for s in mine) / len(mine)),
            "talk_ratio": round(sum(s.agent_ratio * s.talk_ms for s in mine) / talk, 4),
            "interruptions": sum(s.interruptions for s in mine),
            "silence_ms": sum(s.silence_ms for s in mine),
            "hold_ms": sum(s.hold_ms for s in mine),
            "alerts": sum(s.alerts for s in mine),
            "negative_finals": felt.count("negative"),
            "sentiment_finals": len(felt),
        }
    return out


def _member(spec: Spec, name: str) -> bool:
    if name in AGENTS:
        return name in spec.agents
    return any(AGENTS[a][0] == name for a in spec.agents)


def _staff() -> Client:
    client = Client()
    client.force_login(user_in("boss", SUPERVISORS_GROUP, STAFF_GROUP))
    return client


FIELDS = (
    "calls",
    "handle_ms",
    "mean_handle_ms",
    "talk_ratio",
    "interruptions",
    "silence_ms",
    "hold_ms",
    "alerts",
    "negative_finals",
    "sentiment_finals",
)


def test_report_figures_equal_the_sums_of_the_fixture_calls() -> None:
    _directory()
    specs = _specs(40)
    _store(specs)
    expected = _expected(specs, _member)
    body = _staff().get("/api/reports/agents/").json()
    got = {r["name"]: {f: r[f] for f in FIELDS} for r in body["agents"] + body["teams"]}
    assert got == expected
    assert [r["team"] for r in body["agents"]] == ["Billing", "Billing", "Sales"]


def test_the_page_and_the_csv_show_the_same_figures() -> None:
    _directory()
    specs = _specs(15, seed=3)
    _store(specs)
    expected = _expected(specs, _member)
    client = _staff()
    page = client.get("/reports/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="chart-agents"' in html
    assert "plotly" in html
    for name, figures in expected.items():
        assert f'data-name="{name}"' in html
        assert f'<td data-field="alerts">{figures["alerts"]}</td>' in html
    rows = list(csv.DictReader(io.StringIO(client.get("/reports/agents.csv").content.decode())))
    by_name = {r["name"]: r for r in rows}
    for name, figures in expected.items():
        assert int(by_name[name]["calls"]) == figures["calls"]
        assert int(by_name[name]["handle_ms"]) == figures["handle_ms"]
        assert float(by_name[name]["talk_ratio"]) == figures["talk_ratio"]
    assert {r["kind"] for r in rows} == {"agent", "team"}


def test_a_range_is_chosen_and_validated() -> None:
    _directory()
    specs = _specs(20, seed=5)
    _store(specs)
    client = _staff()
    since = (timezone.now() - timedelta(days=10)).isoformat().replace("+00:00", "Z")
    wide = client.get("/api/reports/agents/", {"started_after": since}).json()
    got = {r["name"]: r["calls"] for r in wide["agents"]}
    assert got == {
        name: n
        for name in AGENTS
        if (n := len([s for s in specs if s.days_ago < 10 and name in s.agents]))
    }
    bad = client.get("/api/reports/agents/?started_after=yesterday")
    assert bad.status_code == 400
    assert "started_after" in bad.json()
    backwards = client.get(
        "/api/reports/agents/?started_after=2025-03-05&started_before=2025-03-01"
    )
    assert backwards.status_code == 400
    assert client.get("/reports/?started_after=nonsense").status_code == 200  # the page says why
    assert client.get("/reports/agents.csv?started_after=nonsense").status_code == 400


def test_a_team_supervisor_counts_only_calls_they_may_see() -> None:
    _directory()
    specs = _specs(10, seed=11)
    _store(specs)
    supervisor = factories.team_supervisor("tess", AGENTS["Cy Ray"][1])
    client = Client()
    client.force_login(supervisor)
    body = client.get("/api/reports/agents/").json()
    # Calls with Cy on them are the team's; Ann and Bob appear only on those.
    cy = [s for s in specs if s.days_ago < 7 and "Cy Ray" in s.agents]
    assert {r["name"]: r["calls"] for r in body["agents"]}.get("Cy Ray", 0) == len(cy)
    for row in body["agents"]:
        assert row["calls"] == len([s for s in cy if row["name"] in s.agents])


def test_the_report_costs_the_same_queries_for_many_calls(django_assert_num_queries: Any) -> None:
    _directory()
    _store(_specs(5, seed=1))
    client = _staff()
    client.get("/api/reports/agents/")
    with CaptureQueriesContext(connection) as few:
        client.get("/api/reports/agents/")
    with CaptureQueriesContext(connection) as few_csv:
        client.get("/reports/agents.csv")
    _store(_specs(60, seed=2), prefix="more")
    with django_assert_num_queries(len(few)):
        client.get("/api/reports/agents/")
    with django_assert_num_queries(len(few_csv)):
        client.get("/reports/agents.csv")


def test_anonymous_and_non_supervisors_are_refused(db: Any) -> None:
    assert Client().get("/api/reports/agents/").status_code == 401
    visitor = User.objects.create_user("visitor", password="visitor-password-1")
    client = Client()
    client.force_login(visitor)
    assert client.get("/api/reports/agents/").status_code == 403
    assert client.get("/reports/").status_code == 403
