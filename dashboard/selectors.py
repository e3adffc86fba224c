"""The call lists every supervisor surface shows: one annotated queryset and one paginator for
the admin, the history page and the API, always narrowed from ``visible_calls(user)`` first."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import (
    Avg,
    BigIntegerField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.urls import reverse

from dashboard.permissions import visible_calls
from streaming.models import Alert, Participant, Recording, RecordingKind, Utterance


def annotated_calls(calls: QuerySet[Any]) -> QuerySet[Any]:
    """``calls`` with their list figures computed in the same query, and participants in one more.

    ``duration`` (ended calls), ``agent_talk_ratio``, ``mean_confidence``, ``alert_count``,
    ``ended_sentiment`` (the last final's that has one) and ``hold_ms`` can be shown, filtered
    and ordered by. Subqueries rather than joins, so a call's utterances and
    alerts do not multiply rows: a page costs the same number of queries whatever its size.
    """
    utterances = Utterance.objects.filter(call=OuterRef("pk")).order_by().values("call")
    alerts = Alert.objects.filter(call=OuterRef("pk")).order_by().values("call")
    felt = (
        Utterance.objects.filter(call=OuterRef("pk"))
        .exclude(sentiment="")
        .order_by(F("offset_ticks").desc(nulls_last=True), "-seq", "-pk")
        .values("sentiment")[:1]
    )
    held = Participant.objects.filter(call=OuterRef("pk")).order_by().values("call")
    return calls.annotate(
        duration=ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField()),
        agent_talk_ratio=F("analytics__agent_talk_ratio"),
        mean_confidence=Subquery(utterances.annotate(mean=Avg("confidence")).values("mean")),
        alert_count=Coalesce(
            Subquery(alerts.annotate(n=Count("pk")).values("n")),
            0,
            output_field=IntegerField(),
        ),
        ended_sentiment=Coalesce(Subquery(felt), Value("")),
        hold_ms=Coalesce(
            Subquery(held.annotate(total=Sum("hold_ms")).values("total")),
            0,
            output_field=BigIntegerField(),
        ),
    ).prefetch_related(
        Prefetch("participants", queryset=Participant.objects.order_by("created_at", "pk"))
    )


def newest_first(calls: QuerySet[Any]) -> QuerySet[Any]:
    """By start, newest first; a call that never started sorts by when it was first seen."""
    return calls.order_by(Coalesce("started_at", "created_at").desc(), "-pk")


def user_calls(user: Any) -> QuerySet[Any]:
    """The calls ``user`` may see, annotated for the list and the detail."""
    return annotated_calls(visible_calls(user))


def spoken_order(utterances: QuerySet[Utterance]) -> QuerySet[Utterance]:
    """By start, then in the order they were stored; utterances without a start come last."""
    return utterances.order_by(
        F("offset_ticks").asc(nulls_last=True), F("seq").asc(nulls_last=True), "pk"
    )


class DeferredJoinPaginator(Paginator):
    """A page is the rows whose keys are on it: the keys first, then the rows for them.

    Call lists compute figures per row (mean confidence, alert count) in subqueries. With a
    plain ``OFFSET``, the database computes them for every row it skips, so page 200 costs
    200 times page 1. Here the ``OFFSET`` runs on the keys alone, in a subquery, and the
    figures are computed for the page's rows only. Same number of queries, same rows and
    order as :class:`~django.core.paginator.Paginator`.
    """

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return Page(rows[bottom:top], number, self)
        keys = rows.values("pk")[bottom:top]
        return Page(rows.filter(pk__in=keys), number, self)


def call_teams(*, call_ids: list[int]) -> dict[int, list[str]]:
    """The names of the teams each call belongs to: teams with one of their addresses (an
    ACS raw id or a phone number) as a participant, the caller or the callee, by name."""
    from dashboard.models import TeamAddress
    from streaming.models import Call

    found: dict[int, set[str]] = {i: set() for i in call_ids}
    addresses: dict[int, set[str]] = {i: set() for i in call_ids}
    for call_id, raw_id in Participant.objects.filter(call_id__in=call_ids).values_list(
        "call_id", "raw_id"
    ):
        addresses[call_id].add(raw_id)
    for call_id, caller, callee in Call.objects.filter(pk__in=call_ids).values_list(
        "pk", "caller", "callee"
    ):
        addresses[call_id].update(a for a in (caller, callee) if a)
    every = set().union(*addresses.values()) if addresses else set()
    if not every:
        return {i: [] for i in call_ids}
    teams_of: dict[str, set[str]] = {}
    rows = TeamAddress.objects.filter(Q(raw_id__in=every) | Q(number__in=every)).values_list(
        "raw_id", "number", "team__name"
    )
    for raw_id, number, team in rows:
        teams_of.setdefault(raw_id, set()).add(team)
        if number:
            teams_of.setdefault(number, set()).add(team)
    for call_id, known in addresses.items():
        for address in known:
            found[call_id].update(teams_of.get(address, ()))
    return {i: sorted(names) for i, names in found.items()}


def wall_summaries(*, call_ids: list[int]) -> dict[int, Any]:
    """``streaming.selectors.wall_summaries`` with each call's teams
    (``dashboard.messages.WallSummary``)."""
    from streaming import selectors

    summaries = selectors.wall_summaries(call_ids=call_ids)
    for call_id, teams in call_teams(call_ids=call_ids).items():
        summaries[call_id]["teams"] = teams
    return summaries


def wall_teams(user: Any) -> list[str]:
    """The teams a supervisor can filter the wall by: every team for Staff, else theirs."""
    from dashboard.models import Team
    from dashboard.permissions import sees_all_calls

    teams = Team.objects.all() if sees_all_calls(user) else Team.objects.filter(members=user)
    return list(teams.order_by("name").values_list("name", flat=True))


def live_agents(user: Any) -> list[dict[str, Any]]:
    """The agents a supervisor watches on the agents page: every agent for Staff, else those
    of the supervisor's teams and those they supervise; each with the addresses their calls
    are recognised by and when their last call ended (None: none yet). Three queries."""
    from dashboard.models import Agent
    from dashboard.permissions import sees_all_calls

    agents = Agent.objects.select_related("team").prefetch_related("addresses")
    if not sees_all_calls(user):
        agents = agents.filter(Q(team__members=user) | Q(supervisor=user)).distinct()
    rows: list[dict[str, Any]] = [
        {
            "id": agent.pk,
            "name": agent.name,
            "team": agent.team.name if agent.team else "",
            "addresses": sorted(a.raw_id for a in agent.addresses.all()),
        }
        for agent in agents.order_by("name")
    ]
    raw_ids: list[str] = [raw_id for row in rows for raw_id in row["addresses"]]
    ended = dict(
        Participant.objects.filter(raw_id__in=raw_ids, call__ended_at__isnull=False)
        .order_by()
        .values("raw_id")
        .annotate(last=Max("call__ended_at"))
        .values_list("raw_id", "last")
    )
    for row in rows:
        addresses: list[str] = row["addresses"]
        last = max((ended[r] for r in addresses if r in ended), default=None)
        row["last_call_ended_at"] = last.isoformat() if last else None
    return rows


def call_recordings(*, call_id: int) -> list[dict[str, Any]]:
    """A call's assembled recordings for its page's player: the mix first, then each
    participant's track, each with the name a supervisor knows it by and its file's URL."""
    rows = (
        Recording.objects.filter(call_id=call_id)
        .exclude(file="")
        .select_related("participant")
        .order_by("kind", "pk")
    )
    return [
        {
            "id": r.pk,
            "label": "Everyone"
            if r.kind == RecordingKind.MIXED
            else (r.participant.display_label if r.participant else r.track),
            "url": reverse("api:recording-file", args=[call_id, r.pk]),
        }
        for r in rows
    ]
