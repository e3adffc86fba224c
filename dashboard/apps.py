from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class DashboardConfig(AppConfig):
    """Supervisor pages and their live socket."""

    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        # Sent once per app with models; streaming's permissions exist once it has been sent
        # for streaming (auth's handler, connected earlier, creates them first).
        post_migrate.connect(_ensure_supervisors_group, sender=apps.get_app_config("streaming"))
        # Participants are labelled with their agent's name from the directory.
        from dashboard.agents import agent_name
        from streaming import directory

        directory.register(agent_name)


def _ensure_supervisors_group(using: str = "default", **kwargs: Any) -> None:
    """Keep a "Supervisors" group that may view calls (their teams'), participants,
    utterances and alerts, and a "Staff" group that may also see every call.

    Permissions only exist after the auth app's own post_migrate handler has run, which is
    why this is a post_migrate handler and not a data migration.
    """
    from django.contrib.auth.models import Group, Permission

    from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP

    viewing = ["view_call", "view_participant", "view_utterance", "view_alert"]
    group, _ = Group.objects.using(using).get_or_create(name=SUPERVISORS_GROUP)
    perms = Permission.objects.using(using).filter(
        content_type__app_label="streaming", codename__in=viewing
    )
    group.permissions.add(*perms)
    # Staff see every call, not only their teams'.
    staff, _ = Group.objects.using(using).get_or_create(name=STAFF_GROUP)
    staff.permissions.add(
        *Permission.objects.using(using).filter(
            content_type__app_label="streaming", codename__in=[*viewing, "view_all_calls"]
        )
    )
