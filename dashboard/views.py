"""Supervisor pages. They render a shell; the live socket fills it with a snapshot and deltas."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dashboard.api.filters import CallFilters, ReportFilters, filter_calls
from dashboard.charts.reports import report_figure
from dashboard.models import SupervisorProfile
from dashboard.permissions import (
    action_kinds,
    can_act,
    can_listen,
    can_view_call,
    can_view_calls,
)
from dashboard.reports import agent_report, report_csv
from dashboard.selectors import (
    DeferredJoinPaginator,
    call_recordings,
    live_agents,
    newest_first,
    user_calls,
)
from streaming import services, units
from streaming.acs.client import CallAutomationError
from streaming.automation import announcements, control, joining
from streaming.automation.secure_pause import secure_pause_set
from streaming.events import CallPayload
from streaming.history.exports import FORMATS
from streaming.models import Alert, CallState, Sentiment
from streaming.selectors import action_payload, call_duration_ms, call_get
from streaming.services.alerts import TRIAGE_STEPS

# The call page's download links: format, label (in FORMATS' order).
DOWNLOAD_LABELS = {"json": "JSON", "csv": "CSV", "txt": "Text", "srt": "SRT", "vtt": "WebVTT"}


def supervisor_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Logged-out users go to the login page; logged-in users without permission get 403."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_view_calls(request.user):
            raise PermissionDenied("You are not allowed to watch calls.")
        return view(request, *args, **kwargs)

    return wrapped


@supervisor_required
def call_wall(request: HttpRequest) -> HttpResponse:
    """The wall of live and recent calls (with "place a call" and "connect to a room")."""
    return render(request, "dashboard/wall.html", {"can_place": can_act(request.user, "place")})


def _report_row(row: dict[str, Any]) -> dict[str, Any]:
    """A report row with its times as the page shows them (``m:ss``)."""
    mean = row["mean_handle_ms"]
    return {
        **row,
        "handle": units.clock(row["handle_ms"]),
        "mean_handle": "" if mean is None else units.clock(mean),
        "silence": units.clock(row["silence_ms"]),
        "hold": units.clock(row["hold_ms"]),
    }


@supervisor_required
def live_agents_page(request: HttpRequest) -> HttpResponse:
    """Each agent the supervisor watches, live: talking, on hold, muted, in a call or idle,
    for how long, and the call (``static/callsite/agents.js`` keeps it up to date)."""
    return render(request, "dashboard/agents.html", {"agents": live_agents(request.user)})


@supervisor_required
def agent_reports(request: HttpRequest, fmt: str = "") -> HttpResponse:
    """Figures per agent and per team over a date range, with charts; ``fmt="csv"``: as CSV.

    The range's parameters and their validation are the API's (``/api/reports/agents/``).
    """
    given = {
        k: v for k in ("started_after", "started_before") if (v := request.GET.get(k, "").strip())
    }
    filters = ReportFilters(data=given)
    if not filters.is_valid():
        errors = {f: [str(e) for e in problems] for f, problems in filters.errors.items()}
        if fmt == "csv":
            return JsonResponse(errors, status=400)
        report: dict[str, Any] = {"agents": [], "teams": []}
        span: dict[str, Any] = {}
    else:
        errors = {}
        span = filters.validated_data
        report = agent_report(user=request.user, **span)
    if fmt == "csv":
        response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="agent-report.csv"'
        return response
    shown = {kind: [_report_row(r) for r in rows] for kind, rows in report.items()}
    context = {
        "report": shown,
        "given": given,
        "errors": errors,
        "span": span,
        "query": urlencode(given),
        "figures": {
            "agents": report_figure(report["agents"], title="Agents"),
            "teams": report_figure(report["teams"], title="Teams"),
        },
    }
    return render(request, "dashboard/reports.html", context)


def call_title(call: CallPayload) -> str:
    """A call's name for people: its agents with the other party ("Dana Whitfield with
    +15551230000"), else whoever is known, else its connection id (``static/callsite/live.js``
    names it the same way as it changes)."""
    people = call["participants"]
    agents = [p["label"] for p in people if p["role"] == "agent"]
    others = [p["label"] for p in people if p["role"] != "agent"]
    if not others and (call["caller_display_name"] or call["caller"]):
        others = [call["caller_display_name"] or call["caller"]]
    if agents and others:
        return f"{', '.join(agents)} with {', '.join(others)}"
    if agents:
        return ", ".join(agents)
    if others:
        return f"Call with {', '.join(others)}"
    return f"Call {call['connection_id'] or '(ringing)'}"


@supervisor_required
def call_detail(request: HttpRequest, call_id: int) -> HttpResponse:
    """One call's captions, live or finished."""
    call = call_get(call_id=call_id) if can_view_call(request.user, call_id) else None
    if call is None:  # another team's call is as absent as one that does not exist
        raise Http404("No such call")
    kinds = action_kinds(request.user) - {"place"} if call["managed"] else set()
    whole_call = ["start-transcription", "stop-transcription", "start-media", "stop-media"]
    context = {
        "call": call,
        "title": call_title(call),
        "can_control": "control" in kinds,
        "can_listen": call["state"] != CallState.ENDED and can_listen(request.user, call_id),
        "kinds": " ".join(sorted(kinds)),
        "actions": [(slug, control.ACTIONS[slug].label) for slug in whole_call],
        "destructive": {slug for slug, spec in control.ACTIONS.items() if spec.destructive},
        "clips": announcements.clip_names() if call["bidirectional"] else [],
        "join_address": _join_address(request.user),
        "downloads": [(fmt, DOWNLOAD_LABELS[fmt]) for fmt in FORMATS],
        # A live call's tracks are assembled when its streams close: played once it ended.
        "recordings": call_recordings(call_id=call_id) if call["state"] == CallState.ENDED else [],
    }
    return render(request, "dashboard/call.html", context)


def _join_address(user: Any) -> str:
    profile = SupervisorProfile.objects.filter(user=user).first()
    return profile.join_address if profile is not None else ""


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("Accept", "").startswith("application/json")


def _refused(
    request: HttpRequest, status: int, message: str, to: str, **kwargs: Any
) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    messages.error(request, message)
    return redirect(to, **kwargs)


@require_POST
@supervisor_required
def call_secure_pause(request: HttpRequest, call_id: int) -> HttpResponse:
    """Pause a call for payment (``paused=on``) or resume it (``paused=off``): while paused its
    audio is neither recorded nor recognized (``streaming.automation.secure_pause``).

    Any supervisor who may see the call may pause it: it only ever keeps less. With
    ``Accept: application/json`` the answer is ``{"secure_pause", "since"}`` (or
    ``{"error"}``), else a redirect to the call's page.
    """
    if not can_view_call(request.user, call_id):
        raise Http404("No such call")
    wanted = request.POST.get("paused", "")
    if wanted not in ("on", "off"):
        return _refused(request, 400, "paused must be on or off", "dashboard:call", call_id=call_id)
    try:
        call = secure_pause_set(call_id=call_id, paused=wanted == "on", user=request.user)
    except ValueError as error:
        return _refused(request, 409, str(error), "dashboard:call", call_id=call_id)
    since = call.secure_pause_since
    if _wants_json(request):
        return JsonResponse(
            {"secure_pause": since is not None, "since": since.isoformat() if since else None}
        )
    return redirect("dashboard:call", call_id=call_id)


@require_POST
@supervisor_required
def call_action(request: HttpRequest, call_id: int, action: str) -> HttpResponse:
    """A supervisor action on a live call; its pending state and outcome show on the page.

    Unknown actions and calls the user may not see are 404, actions of a kind the user is not
    granted 403; destructive ones need ``confirm=yes``. With ``Accept: application/json`` the
    answer is the stored action (or ``{"error"}``), else a redirect to the call's page.
    """
    spec = control.ACTIONS.get(action)
    if spec is None:
        raise Http404("No such action")
    if not can_act(request.user, spec.kind):
        raise PermissionDenied("You are not allowed to take this kind of action.")
    if not can_view_call(request.user, call_id):
        raise Http404("No such call")
    back = ("dashboard:call",)
    if spec.destructive and request.POST.get("confirm") != "yes":
        return _refused(request, 400, f"{spec.label}: confirm it first.", *back, call_id=call_id)
    params = {key: request.POST.get(key, "") for key in request.POST}
    if action == "join-call":
        params["address"] = _join_address(request.user)
        if not params["address"]:
            message = f"{spec.label}: your profile has no phone number or ACS id."
            return _refused(request, 400, message, *back, call_id=call_id)
    try:
        done = control.control_run(call_id=call_id, action=action, user=request.user, params=params)
    except ValueError as error:
        return _refused(request, 400, f"{spec.label}: {error}.", *back, call_id=call_id)
    except CallAutomationError as error:
        return _refused(request, 502, f"{spec.label} failed: {error}", *back, call_id=call_id)
    if _wants_json(request):
        return JsonResponse({"action": action_payload(done)})
    messages.success(request, f"{spec.label}: requested.")
    return redirect("dashboard:call", call_id=call_id)


@require_POST
@supervisor_required
def alert_triage(request: HttpRequest, alert_id: int, step: str) -> HttpResponse:
    """Acknowledge, resolve or reopen an alert (``note`` optional), from the call page or the
    wall; every supervisor watching the call sees the change live.

    Any supervisor who may see the alert's call may triage it; an alert of a call the user
    may not see is a 404, like one that does not exist. With ``Accept: application/json``
    the answer is ``{"alert": ...}`` (or ``{"error"}``, 400), else a redirect to the call.
    """
    if step not in TRIAGE_STEPS:
        raise Http404("No such step")
    call_id = Alert.objects.filter(pk=alert_id).values_list("call_id", flat=True).first()
    if call_id is None or not can_view_call(request.user, call_id):
        raise Http404("No such alert")
    try:
        alert = services.alert_triage(
            alert_id=alert_id, step=step, user=request.user, note=request.POST.get("note", "")
        )
    except services.TriageError as error:
        return _refused(request, 400, f"Alert: {error}.", "dashboard:call", call_id=call_id)
    except Alert.DoesNotExist:
        raise Http404("No such alert") from None
    if _wants_json(request):
        return JsonResponse({"alert": alert})
    messages.success(request, f"Alert {alert['state']}.")
    return redirect("dashboard:call", call_id=call_id)


@require_POST
@supervisor_required
def call_new(request: HttpRequest, how: str) -> HttpResponse:
    """Place a call (``how="place"``, to ``address``) or join a room call (``room_id``)."""
    if how not in ("place", "room"):
        raise Http404("No such way to start a call")
    if not can_act(request.user, "place"):
        raise PermissionDenied("You are not allowed to place calls.")
    label = "Place a call" if how == "place" else "Connect to a room"
    try:
        if how == "place":
            call = joining.call_place(target=request.POST.get("address", ""), user=request.user)
        else:
            call = joining.room_call_connect(
                room_id=request.POST.get("room_id", ""), user=request.user
            )
    except ValueError as error:
        return _refused(request, 400, f"{label}: {error}.", "dashboard:wall")
    except CallAutomationError as error:
        return _refused(request, 502, f"{label} failed: {error}", "dashboard:wall")
    if _wants_json(request):
        return JsonResponse({"call_id": call.pk})
    messages.success(request, f"{label}: requested.")
    return redirect("dashboard:call", call_id=call.pk)


HISTORY_PAGE_SIZE = 25
HISTORY_FILTERS = (
    "q",
    "state",
    "started_after",
    "started_before",
    "participant",
    "agent",
    "sentiment",
    "ended_negative",
)


@dataclass(frozen=True)
class HistoryRow:
    """One past or live call in the history list, with what the table shows."""

    id: int
    connection_id: str | None
    state: str
    started_at: datetime | None
    duration: str
    participants: str
    agent_talk: str
    mean_confidence: str
    alerts: int
    ended_sentiment: str
    hold: str


def _history_row(call: Any) -> HistoryRow:
    start = call.started_at
    duration = units.clock(call_duration_ms(call))
    if duration and call.state != CallState.ENDED:
        duration += " so far"
    ratio, confidence = call.agent_talk_ratio, call.mean_confidence
    return HistoryRow(
        id=call.pk,
        connection_id=call.connection_id,
        state=call.state,
        started_at=start,
        duration=duration,
        participants=", ".join(p.display_label for p in call.participants.all()),
        agent_talk="" if ratio is None else f"{ratio:.0%}",
        mean_confidence="" if confidence is None else f"{confidence:.0%}",
        alerts=call.alert_count,
        ended_sentiment=call.ended_sentiment,
        hold=units.clock(call.hold_ms) if call.hold_ms else "",
    )


@supervisor_required
def call_history(request: HttpRequest) -> HttpResponse:
    """Every call the supervisor may see, newest first, searchable by what was said in it.

    The filters are the API's (``/api/calls/``): the same parameters, the same validation and
    the same queryset, narrowed from the calls of the supervisor's teams.
    """
    given = {k: v for k in HISTORY_FILTERS if (v := request.GET.get(k, "").strip())}
    filters = CallFilters(data=given)
    errors: dict[str, list[str]] = {}
    calls = user_calls(request.user)
    if filters.is_valid():
        calls = filter_calls(calls, filters.validated_data)
    else:
        errors = {field: [str(e) for e in problems] for field, problems in filters.errors.items()}
        calls = calls.none()
    paginator = DeferredJoinPaginator(newest_first(calls), HISTORY_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": [_history_row(call) for call in page.object_list],
        "given": given,
        "errors": errors,
        "states": CallState.choices,
        "sentiments": Sentiment.choices,
        "query": urlencode(given),
        "searched": bool(given),
    }
    return render(request, "dashboard/history.html", context)
