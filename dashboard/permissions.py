"""Who may see which calls: the one rule the pages, the live socket, the admin and the API use.

* Users with ``streaming.view_call`` (the Supervisors group) may watch calls at all.
* Of those, users with ``streaming.view_all_calls`` (the Staff group) and superusers see
  every call; everyone else sees the calls of their teams: calls where one of the team's
  addresses (an ACS raw id or a phone number) is a participant, the caller or the callee,
  and the calls they placed or connected Callsite to themselves.
* Acting on a call needs a permission per kind of action (:func:`can_act`), on top of
  seeing the call.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

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


VIEW_ALL_CALLS_PERMISSION = "streaming.view_all_calls"
STAFF_GROUP = "Staff"


def sees_all_calls(user: Any) -> bool:
    return can_view_calls(user) and (
        user.is_superuser or bool(user.has_perm(VIEW_ALL_CALLS_PERMISSION))
    )


def visible_calls(user: Any) -> QuerySet[Any]:
    """The calls ``user`` may see, as a queryset to filter further (no duplicates)."""
    from dashboard.models import TeamAddress
    from streaming.models import Call, Participant

    if not can_view_calls(user):
        return Call.objects.none()
    if sees_all_calls(user):
        return Call.objects.all()
    addresses = TeamAddress.objects.filter(team__members=user)
    raw_ids = addresses.values("raw_id")
    numbers = addresses.exclude(number="").values("number")
    in_call = Participant.objects.filter(call=OuterRef("pk"), raw_id__in=raw_ids)
    return Call.objects.filter(
        Q(Exists(in_call))
        | Q(placed_by=user)
        | Q(caller__in=raw_ids)
        | Q(caller__in=numbers)
        | Q(callee__in=raw_ids)
        | Q(callee__in=numbers)
    )


def can_view_call(user: Any, call_id: int) -> bool:
    return visible_calls(user).filter(pk=call_id).exists()


CONTROL_CALL_PERMISSION = "streaming.control_call"


def can_control_calls(user: Any) -> bool:
    """Supervisors who may also start or stop streaming and hang up (granted separately)."""
    return can_view_calls(user) and bool(user.has_perm(CONTROL_CALL_PERMISSION))


LISTEN_CALL_PERMISSION = "streaming.listen_call"


def can_listen(user: Any, call_id: int) -> bool:
    """Supervisors granted ``listen_call`` who may see the call (granted separately)."""
    return bool(user.has_perm(LISTEN_CALL_PERMISSION)) and can_view_call(user, call_id)


# The permission each kind of supervisor action needs (streaming.automation.control.ActionKind).
ACTION_PERMISSIONS = {
    "control": CONTROL_CALL_PERMISSION,
    "participants": "streaming.manage_participants",
    "recording": "streaming.control_recording",
    "place": "streaming.place_calls",
}


def can_act(user: Any, kind: str) -> bool:
    """Supervisors granted the permission for this kind of action (control, participants,
    recording, place): each is granted separately, to a user or a group."""
    return can_view_calls(user) and bool(user.has_perm(ACTION_PERMISSIONS[kind]))


def action_kinds(user: Any) -> set[str]:
    """The kinds of action ``user`` may take, for the pages to show only those."""
    return {kind for kind in ACTION_PERMISSIONS if can_act(user, kind)}
