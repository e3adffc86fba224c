"""Who may use the API: the dashboard's own rule, read-only."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from dashboard.permissions import can_view_calls


class CanViewCalls(BasePermission):
    """Supervisors and staff (``streaming.view_call``).

    Anonymous requests are refused with 401, users without the permission with 403; which
    calls a user sees is decided by ``visible_calls`` in each view's queryset. The views only
    answer GET, HEAD and OPTIONS: any other method is 405.
    """

    message = "You do not have permission to view calls."

    def has_permission(self, request: Request, view: Any) -> bool:
        return can_view_calls(request.user)
