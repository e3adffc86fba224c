"""Browser-facing WebSocket routes.

Each is wrapped in a session check and an Origin check: a browser socket carries the user's
cookies wherever the page that opened it came from, so only origins in ALLOWED_HOSTS may
open one (cross-site WebSocket hijacking).
"""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from dashboard.consumers import CallPageConsumer, ListenConsumer, WallConsumer


def browser_only(app: Any) -> Any:
    return AllowedHostsOriginValidator(AuthMiddlewareStack(app))


websocket_urlpatterns = [
    path("ws/dashboard/", browser_only(WallConsumer.as_asgi())),
    path("ws/dashboard/calls/<int:call_id>/", browser_only(CallPageConsumer.as_asgi())),
    path("ws/dashboard/calls/<int:call_id>/listen/", browser_only(ListenConsumer.as_asgi())),
]
