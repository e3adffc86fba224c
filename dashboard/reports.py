"""Reports per agent and per team over a date range: calls, handle time, talk ratio,
interruptions, silence, hold, alerts and sentiment.

One query for the directory's addresses, one for the agents' participants on the calls in
range (with each call's stored figures), one for the calls' alerts and one for their
sentiments, whatever the number of calls: figures are summed here, per call once. A call
counts for each agent of the directory heard on it, and once for a team however many of its
agents were on it. Only calls the user may see count (``visible_calls``).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Q

from dashboard.models import AgentAddress
from dashboard.permissions import visible_calls
from streaming.models import Alert, Participant, Sentiment, Utterance


@dataclass(frozen=True)
class CallFigures:
    """One call's stored figures, as the reports add them up."""

    handle_ms: int
    talk_ms: int
    agent_talk_ms: float  # the agents' share of the talk, in ms
    interruptions: int
    silence_ms: int
    hold_ms: int


@dataclass
class Row:
    """One agent's (or team's) figures over the range."""

    name: str
    team: str
    calls: set[int] = field(default_factory=set)
    handle_ms: int = 0
    talk_ms: int = 0
    agent_talk_ms: float = 0.0
    interruptions: int = 0
    silence_ms: int = 0
    hold_ms: int = 0
    alerts: int = 0
    negative_finals: int = 0
    sentiment_finals: int = 0

    def add(
        self, call_id: int, figures: CallFigures | None, alerts: int, felt: tuple[int, int]
    ) -> None:
        if call_id in self.calls:
            return
        self.calls.add(call_id)
        self.alerts += alerts
        self.negative_finals += felt[0]
        self.sentiment_finals += felt[1]
        if figures is None:
            return
        self.handle_ms += figures.handle_ms
        self.talk_ms += figures.talk_ms
        self.agent_talk_ms += figures.agent_talk_ms
        self.interruptions += figures.interruptions
        self.silence_ms += figures.silence_ms
        self.hold_ms += figures.hold_ms

    def payload(self) -> dict[str, Any]:
        n = len(self.calls)
        return {
            "name": self.name,
            "team": self.team,
            "calls": n,
            "handle_ms": self.handle_ms,
            "mean_handle_ms": round(self.handle_ms / n) if n else None,
            "talk_ratio": round(self.agent_talk_ms / self.talk_ms, 4) if self.talk_ms else None,
            "interruptions": self.interruptions,
            "silence_ms": self.silence_ms,
            "hold_ms": self.hold_ms,
            "alerts": self.alerts,
            "negative_finals": self.negative_finals,
            "sentiment_finals": self.sentiment_finals,
            "negative_share": (
                round(self.negative_finals / self.sentiment_finals, 4)
                if self.sentiment_finals
                else None
            ),
        }


def agent_report(
    *, user: Any, started_after: datetime, started_before: datetime
) -> dict[str, list[dict[str, Any]]]:
    """``{"agents": [...], "teams": [...]}``, each row a :meth:`Row.payload`, by name."""
    calls = visible_calls(user).filter(started_at__gte=started_after, started_at__lt=started_before)
    addresses = {
        raw_id: (agent_id, name, team or "")
        for raw_id, agent_id, name, team in AgentAddress.objects.values_list(
            "raw_id", "agent_id", "agent__name", "agent__team__name"
        )
    }
    agents: dict[int, Row] = {}
    teams: dict[str, Row] = {}
    if not addresses:
        return {"agents": [], "teams": []}
    heard = Participant.objects.filter(
        raw_id__in=list(addresses), call__in=calls.values("pk")
    ).values_list(
        "raw_id",
        "call_id",
        "call__analytics__duration_ms",
        "call__analytics__talk_ms",
        "call__analytics__agent_talk_ratio",
        "call__analytics__interruptions",
        "call__analytics__silence_ms",
        "call__analytics__hold_ms",
    )
    rows = list(heard)
    in_range = calls.values("pk")
    alerts: dict[int, int] = defaultdict(int)
    alerts.update(
        Alert.objects.filter(call_id__in=in_range)
        .values("call_id")
        .annotate(n=Count("pk"))
        .values_list("call_id", "n")
    )
    felt: dict[int, tuple[int, int]] = {
        call_id: (negative, total)
        for call_id, negative, total in Utterance.objects.filter(call_id__in=in_range)
        .exclude(sentiment="")
        .values("call_id")
        .annotate(negative=Count("pk", filter=Q(sentiment=Sentiment.NEGATIVE)), total=Count("pk"))
        .values_list("call_id", "negative", "total")
    }
    for raw_id, call_id, duration, talk, ratio, interruptions, silence, hold in rows:
        agent_id, name, team = addresses[raw_id]
        figures = None
        if duration is not None:
            figures = CallFigures(
                handle_ms=duration,
                talk_ms=talk,
                agent_talk_ms=(ratio or 0.0) * talk,
                interruptions=interruptions,
                silence_ms=silence,
                hold_ms=hold,
            )
        per_call = (call_id, figures, alerts[call_id], felt.get(call_id, (0, 0)))
        agents.setdefault(agent_id, Row(name, team)).add(*per_call)
        if team:
            teams.setdefault(team, Row(team, team)).add(*per_call)
    return {
        "agents": [r.payload() for r in sorted(agents.values(), key=lambda r: r.name)],
        "teams": [r.payload() for r in sorted(teams.values(), key=lambda r: r.name)],
    }


CSV_COLUMNS = (
    "kind",
    "name",
    "team",
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
    "negative_share",
)


def report_csv(report: dict[str, list[dict[str, Any]]]) -> str:
    """The report as CSV: one row per agent, then one per team (``kind`` says which)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for kind in ("agents", "teams"):
        for row in report[kind]:
            cells = [kind[:-1], *(row[c] for c in CSV_COLUMNS[1:])]
            # Names come from people: a spreadsheet must not run one as a formula.
            writer.writerow(
                [f"'{c}" if isinstance(c, str) and c[:1] in "=+-@\t\r" else c for c in cells]
            )
    return out.getvalue()
