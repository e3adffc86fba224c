"""Per-user request rate of the API."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from rest_framework.throttling import UserRateThrottle

logger = logging.getLogger(__name__)


class ApiUserRateThrottle(UserRateThrottle):
    """``UserRateThrottle`` at ``settings.CALLSITE_API_RATE`` (env ``CALLSITE_API_RATE``).

    The rate is read on every request rather than once at import, so a changed setting (a
    test's override) takes effect at once. Counts are kept in the default cache: per process
    unless ``CACHES`` points at a shared cache.
    """

    scope = "user"

    def get_rate(self) -> str:
        return str(settings.CALLSITE_API_RATE)

    def allow_request(self, request: Any, view: Any) -> bool:
        """Count the request; if the cache (Redis) is away, let it through.

        The limit protects the database from a runaway client; refusing every request while
        Redis restarts would cost every user instead.
        """
        try:
            return super().allow_request(request, view)
        except Exception as error:  # the cache backend's own connection errors
            logger.warning("API rate not checked, the cache is unavailable: %s", error)
            return True
