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
        post_migrate.connect(
            _ensure_supervisors_group, sender=apps.get_app_config("streaming")
        )


def _ensure_supervisors_group(using: str = "default", **kwargs: Any) -> None:
    """Keep a "Supervisors" group that may view calls, participants and utterances.

    Permissions only exist after the auth app's own post_migrate handler has run, which is
    why this is a post_migrate handler and not a data migration.
    """
    from django.contrib.auth.models import Group, Permission

    from dashboard.permissions import SUPERVISORS_GROUP

    group, _ = Group.objects.using(using).get_or_create(name=SUPERVISORS_GROUP)
    perms = Permission.objects.using(using).filter(
        content_type__app_label="streaming",
        codename__in=["view_call", "view_participant", "view_utterance"],
    )
    group.permissions.add(*perms)
