"""Supervisor pages. They render a shell; the live socket fills it with a snapshot and deltas."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.permissions import can_view_calls
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
    call = call_get(call_id=call_id)
    if call is None:
        raise Http404("No such call")
    return render(request, "dashboard/call.html", {"call": call})
