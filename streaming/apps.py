from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """ACS ingest: packets, calls, participants, utterances."""

    name = "streaming"
    verbose_name = "Calls"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from streaming import checks  # noqa: F401  (registers the system checks)
        from streaming.live.registry import LIVE
        from streaming.models import AlertRule

        # A rule edited in this process applies at the next tick; other processes reload
        # their rules every few seconds.
        post_save.connect(LIVE.rules_changed, sender=AlertRule, dispatch_uid="alert-rules-saved")
        post_delete.connect(
            LIVE.rules_changed, sender=AlertRule, dispatch_uid="alert-rules-deleted"
        )
