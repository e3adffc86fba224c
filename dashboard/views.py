"""Supervisor pages. They render a shell; the live socket fills it with a snapshot and deltas."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dashboard.permissions import can_control_calls, can_view_call, can_view_calls
from streaming.automation import lifecycle
from streaming.automation.client import CallAutomationError
from streaming.selectors import call_get


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
    """The wall of live and recent calls."""
    return render(request, "dashboard/wall.html")


@supervisor_required
def call_detail(request: HttpRequest, call_id: int) -> HttpResponse:
    """One call's captions, live or finished."""
    call = call_get(call_id=call_id) if can_view_call(request.user, call_id) else None
    if call is None:  # another team's call is as absent as one that does not exist
        raise Http404("No such call")
    context = {
        "call": call,
        "can_control": can_control_calls(request.user) and call["managed"],
        "actions": [(slug, label) for slug, (label, _) in lifecycle.CALL_ACTIONS.items()],
    }
    return render(request, "dashboard/call.html", context)


@require_POST
@supervisor_required
def call_action(request: HttpRequest, call_id: int, action: str) -> HttpResponse:
    """A supervisor action on a live call; the outcome is shown on the call page."""
    if not can_control_calls(request.user):
        raise PermissionDenied("You are not allowed to control calls.")
    if action not in lifecycle.CALL_ACTIONS:
        raise Http404("No such action")
    if not can_view_call(request.user, call_id):
        raise Http404("No such call")
    label = lifecycle.CALL_ACTIONS[action][0]
    try:
        lifecycle.call_control(call_id=call_id, action=action)
    except ValueError as error:
        messages.error(request, f"{label}: {error}.")
    except CallAutomationError as error:
        messages.error(request, f"{label} failed: {error}")
    else:
        messages.success(request, f"{label}: requested.")
    return redirect("dashboard:call", call_id=call_id)
