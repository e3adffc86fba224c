from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """ACS ingest: packets, calls, participants, utterances."""

    name = "streaming"
    verbose_name = "Calls"

    def ready(self) -> None:
        from streaming import checks  # noqa: F401  (registers the system checks)
