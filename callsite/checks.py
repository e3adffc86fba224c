"""System checks on the project's settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register("callsite")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The settings problems that stop the server also stop every command that runs checks.

    ``manage.py help`` and ``<command> --help`` run no checks, so they work without secrets.
    """
    return [
        Error(problem, id="callsite.E010")
        for problem in getattr(settings, "CALLSITE_SETTINGS_ERRORS", [])
    ]
