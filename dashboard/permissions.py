"""Who may watch calls. The pages and the live socket ask the same question here."""

from __future__ import annotations

from typing import Any

SUPERVISORS_GROUP = "Supervisors"
VIEW_CALL_PERMISSION = "streaming.view_call"


def can_view_calls(user: Any) -> bool:
    """An active, logged-in user with permission to view calls (supervisors and staff)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.has_perm(VIEW_CALL_PERMISSION)
    )


CONTROL_CALL_PERMISSION = "streaming.control_call"


def can_control_calls(user: Any) -> bool:
    """Supervisors who may also start or stop streaming and hang up (granted separately)."""
    return can_view_calls(user) and bool(user.has_perm(CONTROL_CALL_PERMISSION))
