from django.apps import AppConfig


class CallsiteConfig(AppConfig):
    """The project itself: its system checks on the settings as a whole."""

    name = "callsite"
    verbose_name = "Callsite"

    def ready(self) -> None:
        from callsite import checks  # noqa: F401  (registers the system checks)
