"""ASGI entry point: HTTP goes to Django, WebSockets to the ingest and dashboard consumers.

``get_asgi_application()`` runs first so the app registry is ready before any consumer module
imports models.
"""

import gc
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callsite.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

# A server never starts with a missing or development secret key (see the settings).
if settings.CALLSITE_SETTINGS_ERRORS:
    raise ImproperlyConfigured("; ".join(settings.CALLSITE_SETTINGS_ERRORS))

from streaming.recognizers import RecognizerError, check_recognizer  # noqa: E402

# Nor with a recognizer that cannot run (a Whisper model whose hash is not the expected one).
try:
    check_recognizer()
except RecognizerError as error:
    raise ImproperlyConfigured(error.reason) from None

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from dashboard.routing import websocket_urlpatterns as dashboard_ws  # noqa: E402
from streaming.ingest.routing import websocket_urlpatterns as streaming_ws  # noqa: E402


class NoSuchSocket(AsyncWebsocketConsumer):
    """A WebSocket to a path that has none: refused at the handshake (403), one log line,
    instead of Channels' routing error (a 500 and a traceback per attempt)."""

    async def connect(self) -> None:
        logging.getLogger("callsite.asgi").info(
            "refused WebSocket to %s: no socket there", self.scope.get("path", "?")[:200]
        )
        await self.close()


application = ProtocolTypeRouter(
    {
        # /static/ is served by WhiteNoise's middleware (CALLSITE_SERVE_STATIC).
        "http": django_asgi_app,
        # ACS is a server-side client that sends no Origin header, so its route is
        # authenticated by token only; the dashboard routes check session and Origin.
        "websocket": URLRouter(
            [*streaming_ws, *dashboard_ws, re_path(r"", NoSuchSocket.as_asgi())]
        ),
    }
)

# Everything loaded so far (Django, the app registry, numpy...) lives as long as the process:
# move it out of the collector's reach, so full collections scan only what calls create.
# Measured: full collections paused the ingest loop 63-92 ms every ~10 s at 350 calls, and
# 2-3 ms with the start-up objects frozen.
if settings.CALLSITE_GC_FREEZE:
    gc.collect()
    gc.freeze()
