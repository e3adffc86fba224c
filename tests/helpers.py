"""Small builders of ACS packets and sockets shared by the consumer tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings

from callsite.asgi import application
from simulator import wire


def transcription_metadata(call: str = "call-1", locale: str = "en-US") -> str:
    return wire.transcription_metadata(
        call_connection_id=call, correlation_id="corr-1", subscription_id="sub-1", locale=locale
    )


def transcription_data(
    text: str,
    *,
    status: str = "Final",
    offset: int | None = 10_000_000,
    duration: int = 12_000_000,
    speaker: str = "4:+15555550123",
    confidence: float | None = 0.91,
    words: list[dict[str, Any]] | None = None,
) -> str:
    return wire.transcription_data(
        text,
        offset=offset,
        duration=duration,
        participant=speaker,
        confidence=confidence,
        words=words,
        resultStatus=status,
    )


def acs_socket(
    call: str = "call-1",
    *,
    token: str | None = None,
    via_header: bool = True,
    extra_query: str = "",
) -> WebsocketCommunicator:
    """A communicator to /ws/acs/ as ACS would open it (call id in the header by default)."""
    secret = settings.CALLSITE_ACS_SHARED_SECRET if token is None else token
    query = f"token={secret}" if secret else ""
    headers = []
    if via_header:
        headers.append((b"x-ms-call-connection-id", call.encode()))
        headers.append((b"x-ms-call-correlation-id", b"corr-1"))
    else:
        query += f"&call={call}"
    if extra_query:
        query += f"&{extra_query}"
    return WebsocketCommunicator(application, f"/ws/acs/?{query}", headers=headers)


async def page_socket(user: Any, path: str = "/ws/dashboard/") -> WebsocketCommunicator:
    """A communicator to a dashboard socket as ``user``'s browser opens it from the site's
    own page (their session cookie, the site's Origin); not yet connected."""
    from channels.db import database_sync_to_async

    from tests.factories import session_cookie

    cookie = (await database_sync_to_async(session_cookie)(user)).encode()
    return WebsocketCommunicator(
        application, path, headers=[(b"cookie", cookie), (b"origin", b"http://localhost")]
    )


ACS_EPOCH = "2024-11-15T19:16:12"


def audio_metadata(sample_rate: int = 16000, *, encoding: str = "PCM", channels: int = 1) -> str:
    return wire.audio_metadata(
        sample_rate=sample_rate, encoding=encoding, channels=channels, subscription_id="sub-audio"
    )


def frame_timestamp(index: int, *, start_ms: int = 0) -> str:
    """ACS-style timestamp of the ``index``-th 20 ms frame after the test call's origin."""
    base = datetime.fromisoformat(ACS_EPOCH + "+00:00")
    return wire.frame_time(base + timedelta(milliseconds=start_ms), index)


def audio_data(
    pcm: bytes,
    *,
    index: int | None = None,
    speaker: str | None = None,
    silent: bool | None = None,
    timestamp: str | None = None,
) -> str:
    if timestamp is None and index is not None:
        timestamp = frame_timestamp(index)
    return wire.audio_data(pcm, at=timestamp, participant=speaker, silent=silent)


def tone_frame(sample_rate: int = 16000, *, amplitude: float = 0.3) -> bytes:
    """20 ms of a 440 Hz tone: loud enough to count as speech."""
    import numpy as np

    samples = sample_rate // 50
    t = np.arange(samples)
    wave = amplitude * 32767 * np.sin(2 * np.pi * 440 * t / sample_rate)
    return np.rint(wave).astype("<i2").tobytes()


def quiet_frame(sample_rate: int = 16000) -> bytes:
    return bytes(sample_rate // 50 * 2)


# Messages a dashboard socket receives on a clock (every second per live call), or as speech
# starts and stops (speaking.changed), not in answer to what a test does.
PERIODIC_EVENTS = frozenset({"analytics", "analytics.updated", "calls.health", "speaking.changed"})


async def next_event(
    socket: Any, *, within: float = 5, skip: frozenset[str] = PERIODIC_EVENTS
) -> Any:
    """The next message on a dashboard socket that is not a periodic one."""
    while True:
        message = await socket.receive_json_from(timeout=within)
        if message.get("type") not in skip:
            return message


async def wait_for_event(socket: Any, accept: Any, *, within: float = 10) -> Any:
    """Read a dashboard socket until ``accept(message)`` is true; fail after ``within`` s."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen: list[str] = []
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"no matching message within {within} s; saw {seen[-20:]}")
        try:
            message = await socket.receive_json_from(timeout=left)
        except TimeoutError:
            raise AssertionError(
                f"no matching message within {within} s; saw {seen[-20:]}"
            ) from None
        figures = message.get("analytics")
        seen.append(f"{message.get('type')}" + (f" {figures['duration_ms']}ms" if figures else ""))
        if accept(message):
            return message


def asgi_get(path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """GET ``path`` from the project's ASGI application: status, headers and body."""
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    from callsite.asgi import application

    async def fetch() -> tuple[int, dict[bytes, bytes], bytes]:
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": b"",
            "headers": [],
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "http",
            "server": ("testserver", 80),
        }
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        body = b""
        while True:
            message = await communicator.receive_output(5)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await communicator.wait(5)
        return int(start["status"]), dict(start["headers"]), body

    return async_to_sync(fetch)()


def clear_cache() -> None:
    """Empty the default cache: only this test process's keys when the cache is Redis.

    ``cache.clear()`` on Django's Redis cache empties the whole Redis database, which may
    hold a developer's other data; the test settings give the cache a per-process prefix.
    """
    from django.conf import settings
    from django.core.cache import cache

    conf = settings.CACHES["default"]
    if not conf["BACKEND"].endswith("RedisCache"):
        cache.clear()
        return
    import redis

    client = redis.Redis.from_url(conf["LOCATION"])
    try:
        keys = list(client.scan_iter(match=f"{conf['KEY_PREFIX']}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def field_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every field and array item in a JSON value, for tests that mutate one."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield (*prefix, key)
        yield from field_paths(item, (*prefix, key))
