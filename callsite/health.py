"""Health endpoints for load balancers and orchestrators, the metrics, and who counts as an
operator.

``/healthz`` (liveness) answers as long as the process serves requests: it touches nothing
else, so a database outage does not get every worker restarted. ``/readyz`` (readiness) checks
what a worker needs to do its job, the database and the channel layer, and answers 503 naming
what failed, so a load balancer stops sending it new sockets until they are back.

Both are public: a probe needs no credentials. What failed is told only to operators (see
``operator_request``), because the errors name internal hosts, ports and database users;
everyone else gets the status and which check failed, and the log has the whole error.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from callsite.load import LOAD
from streaming.metrics import INGEST

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0
PROBE_GROUP = "callsite.readyz"

LOOPBACK = frozenset({"127.0.0.1", "::1"})
# Headers a proxy adds to a request it relays. Behind nginx a worker's REMOTE_ADDR is the first
# X-Forwarded-For entry (Daphne's --proxy-headers), and nginx appends to what the client sent:
# a client that sends "X-Forwarded-For: 127.0.0.1" would look local. So a request that carries
# any of these came from elsewhere, whatever its address says.
FORWARDED_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def operator_request(request: HttpRequest) -> bool:
    """A request from this machine straight to the worker, or one with the metrics token.

    Loopback counts only when no proxy relayed the request; elsewhere a request needs
    ``Authorization: Bearer <CALLSITE_METRICS_TOKEN>``.
    """
    token = settings.CALLSITE_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    relayed = any(name in request.headers for name in FORWARDED_HEADERS)
    return request.META.get("REMOTE_ADDR") in LOOPBACK and not relayed


@never_cache
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # A probe thread of its own: close what it opened.
        connection.close()


async def _channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    # A message to a group nobody is in: a round trip to Redis over the process's own
    # connection (publish, or the list layer's group lookup), delivered to no one.
    await layer.group_send(PROBE_GROUP, {"type": "readyz.probe"})


async def _timed(check: Callable[[], Awaitable[None]]) -> dict[str, object]:
    started = time.monotonic()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:.0f} s"}
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


@never_cache
async def readyz(request: HttpRequest) -> JsonResponse:
    database, layer = await asyncio.gather(
        _timed(sync_to_async(_database, thread_sensitive=False)), _timed(_channel_layer)
    )
    checks = {"database": database, "channel_layer": layer, "capacity": _capacity()}
    ready = all(check["ok"] for check in checks.values())
    if not ready:
        logger.warning("not ready: %s", {k: v["error"] for k, v in checks.items() if not v["ok"]})
        if not operator_request(request):
            checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def _capacity() -> dict[str, object]:
    """Whether this worker takes new calls (``callsite/load.py``)."""
    if LOAD.overloaded:
        return {
            "ok": False,
            "error": f"over capacity: {LOAD.reason}",
        }
    return {"ok": True}


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Ingest counters and the event loop's lag in Prometheus' text format.

    Served to operators (``operator_request``): a scraper or sidecar on the same host calling
    the worker's own port, or a request that carries ``Authorization: Bearer
    <CALLSITE_METRICS_TOKEN>``. Refused otherwise, including loopback requests relayed by
    nginx: the counters are process-wide (no call ids or numbers), but how many calls a
    contact centre runs is nobody else's business.
    """
    if not operator_request(request):
        return HttpResponse("metrics need loopback or the metrics token\n", status=403)
    return HttpResponse(
        INGEST.render() + LOAD.render(), content_type="text/plain; version=0.0.4; charset=utf-8"
    )
