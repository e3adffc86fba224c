"""Operational endpoints of the ingest side."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from streaming.metrics import INGEST

LOOPBACK = {"127.0.0.1", "::1"}


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Ingest counters in Prometheus' text format.

    Served to loopback clients (a scraper or sidecar on the same host) and to requests that
    carry ``Authorization: Bearer <CALLSITE_METRICS_TOKEN>``; refused otherwise.
    """
    token = settings.CALLSITE_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    allowed = request.META.get("REMOTE_ADDR") in LOOPBACK or (
        bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    )
    if not allowed:
        return HttpResponse("metrics need loopback or the metrics token\n", status=403)
    return HttpResponse(INGEST.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
