"""System checks for settings that would make ingest insecure or broken."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("callsite", deploy=False)
def check_acs_auth(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    """Warn when the ACS socket would refuse everyone, or accept anyone."""
    messages: list[Warning | Error] = []
    if not settings.CALLSITE_ACS_SHARED_SECRET:
        if settings.DEBUG:
            messages.append(
                Warning(
                    "The ACS ingest socket accepts unauthenticated connections.",
                    hint="DEBUG is on and CALLSITE_ACS_SHARED_SECRET is empty; set a secret.",
                    id="callsite.W001",
                )
            )
        else:
            messages.append(
                Warning(
                    "The ACS ingest socket refuses every connection.",
                    hint="Set CALLSITE_ACS_SHARED_SECRET (and pass it to ACS as ?token=).",
                    id="callsite.W002",
                )
            )
    elif len(settings.CALLSITE_ACS_SHARED_SECRET) < 16:
        messages.append(
            Error(
                "CALLSITE_ACS_SHARED_SECRET is shorter than 16 characters.",
                hint="Use a long random value, e.g. from secrets.token_urlsafe(32).",
                id="callsite.E001",
            )
        )
    return messages
