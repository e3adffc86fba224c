"""What the project answers for requests that fit no page: a NUL in the query, a WebSocket to
nowhere. A clear refusal each, never a 500 or a traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from callsite.asgi import application
from tests.helpers import page_socket


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/admin/streaming/call/?participant=%00", "participant"),
        ("/history/?participant=a%00b", "participant"),
        ("/history/?q=%00", "q"),
        ("/api/calls/?participant=%00", "participant"),
        ("/api/calls/1/utterances/?%00=1", "\x00"),
    ],
)
def test_a_nul_in_the_query_is_refused_with_the_reason(
    path: str, name: str, supervisor: User
) -> None:
    """On PostgreSQL a NUL reaching a filter made the database raise (a 500)."""
    supervisor.is_staff = True
    supervisor.save()
    client = Client()
    client.force_login(supervisor)
    response = client.get(path)
    assert response.status_code == 400
    assert response.json() == {name: ["query parameters must not contain NUL characters"]}


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_to_a_path_with_none_is_refused_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        socket = WebsocketCommunicator(application, "/ws/no-such-socket/")
        connected, _ = await socket.connect()
    assert not connected
    assert "no socket there" in caplog.text
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.django_db(transaction=True)
async def test_what_a_browser_sends_up_a_dashboard_socket_is_ignored(supervisor: Any) -> None:
    """Binary frames and text that is not JSON neither close the socket nor log an error."""
    wall = await page_socket(supervisor)
    assert (await wall.connect())[0]
    assert (await wall.receive_json_from())["type"] == "snapshot"
    await wall.send_to(bytes_data=b"\x00\xffbinary")
    await wall.send_to(text_data="{not json")
    await wall.send_to(text_data='{"type": "call.updated"}')
    assert await wall.receive_nothing(timeout=0.3)
    await wall.disconnect()
