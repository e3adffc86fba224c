"""Per-user request rate of the API."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class ApiUserRateThrottle(UserRateThrottle):
    """``UserRateThrottle`` at ``settings.CALLSITE_API_RATE`` (env ``CALLSITE_API_RATE``).

    The rate is read on every request rather than once at import, so a changed setting (a
    test's override) takes effect at once. Counts are kept in the default cache: per process
    unless ``CACHES`` points at a shared cache.
    """

    scope = "user"

    def get_rate(self) -> str:
        return str(settings.CALLSITE_API_RATE)
