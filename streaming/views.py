"""Operational endpoints of the ingest side."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from callsite.health import operator_request
from streaming.metrics import INGEST


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Ingest counters in Prometheus' text format.

    Served to operators (``callsite.health.operator_request``): a scraper or sidecar on the
    same host calling the worker's own port, or a request that carries
    ``Authorization: Bearer <CALLSITE_METRICS_TOKEN>``. Refused otherwise, including loopback
    requests relayed by nginx: the counters are process-wide (no call ids or numbers), but
    how many calls a contact centre runs is nobody else's business.
    """
    if not operator_request(request):
        return HttpResponse("metrics need loopback or the metrics token\n", status=403)
    return HttpResponse(INGEST.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
