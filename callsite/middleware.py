"""Project middleware."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils import timezone
from django.utils.decorators import sync_and_async_middleware
from django.utils.deprecation import MiddlewareMixin

from streaming import events


@sync_and_async_middleware
def live_events_from_the_loop(get_response: Callable[[HttpRequest], Any]) -> Any:
    """Send the live events a request's services committed from the event loop, after the view.

    Under the ASGI server a view runs in a thread; an event sent from there would wait on the
    event loop, and would wait for ever if the loop stopped meanwhile (see streaming/db.py).
    Served synchronously (the test client, WSGI) there is no loop to protect.
    """
    if not iscoroutinefunction(get_response):
        return get_response

    async def middleware(request: HttpRequest) -> HttpResponseBase:
        with events.outbox() as sent:
            response = await get_response(request)
        for groups, event in sent:
            await events.asend_event(groups, event)
        return response

    handler: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = middleware
    return handler


TIME_ZONE_COOKIE = "callsite_tz"


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # unknown, or not a zone's name
        return None


class ViewerTimeZoneMiddleware(MiddlewareMixin):
    """Render dates and times in the viewer's time zone, named by the ``callsite_tz`` cookie.

    ``static/callsite/timezone.js`` sets the cookie to the browser's zone; without it (or with
    a name that is not a zone) pages use ``CALLSITE_TIME_ZONE``. Every page names its zone.
    """

    def process_request(self, request: HttpRequest) -> None:
        zone = _zone(unquote(request.COOKIES.get(TIME_ZONE_COOKIE, "")))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)


NUL_REFUSED = "query parameters must not contain NUL characters"


class NulInQueryMiddleware(MiddlewareMixin):
    """A NUL character in the query string is answered 400 naming the parameter, in the
    API's shape for a parameter that is not valid (``{"name": ["reason"]}``).

    No field holds one (PostgreSQL refuses it in text), and passed on into a filter it made
    the database raise: a 500 where a clear refusal belongs.
    """

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return JsonResponse({key: [NUL_REFUSED]}, status=400)
        return None
