"""Supervisor pages: login required, permission required, static assets local."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from streaming import services

pytestmark = pytest.mark.django_db


def test_wall_redirects_anonymous_users_to_login(client: Client) -> None:
    """Logged-out visitors are sent to the login page."""
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_wall_forbids_users_without_permission(client: Client) -> None:
    """A logged-in user who is not a supervisor gets 403, not a login loop."""
    client.force_login(User.objects.create_user("visitor", password="x-123456"))
    assert client.get("/").status_code == 403


def test_supervisor_sees_the_wall_and_a_call(client: Client, supervisor: User) -> None:
    """Supervisors get the wall and each call's page; unknown calls are 404."""
    client.force_login(supervisor)
    wall = client.get("/")
    assert wall.status_code == 200
    assert b"wall.js" in wall.content
    call = services.call_stream_opened(connection_id="page-call")
    page = client.get(f"/calls/{call['id']}/")
    assert page.status_code == 200
    assert b"page-call" in page.content
    assert client.get("/calls/987654/").status_code == 404


def test_login_page_renders(client: Client) -> None:
    """The login form is served with a CSRF token."""
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content


def test_pages_use_no_external_assets(client: Client, supervisor: User) -> None:
    """Every script and stylesheet is served from /static/: no CDN."""
    client.force_login(supervisor)
    html = client.get("/").content.decode()
    assert "http://" not in html
    assert "https://" not in html
    assert "/static/callsite/live.js" in html


def test_static_files_are_served_by_the_asgi_app(settings: Any) -> None:
    """Daphne serves /static/ itself when CALLSITE_SERVE_STATIC is on (the default)."""
    from tests.helpers import asgi_get

    assert asgi_get("/static/callsite/live.js")[0] == 200


def test_admin_shows_a_call_with_its_history(client: Client) -> None:
    """Call history in the admin: the change page renders participants, utterances, events."""
    from streaming.models import Call, CallEvent

    admin = User.objects.create_superuser("root", password="root-password-123")
    client.force_login(admin)
    call = services.call_stream_opened(connection_id="admin-call")
    CallEvent.objects.create(
        call_id=call["id"],
        event_id="e1",
        type="MediaStreamingFailed",
        is_failure=True,
        result_code=400,
        result_message="Transport url is not valid",
    )
    assert client.get("/admin/streaming/call/").status_code == 200
    page = client.get(f"/admin/streaming/call/{call['id']}/change/")
    assert page.status_code == 200
    assert b"Transport url is not valid" in page.content
    assert Call.objects.count() == 1


def test_a_call_page_is_named_by_its_people_not_its_connection_id(
    client: Client, supervisor: User
) -> None:
    from dashboard.views import call_title
    from tests.factories import make_call

    client.force_login(supervisor)
    named = make_call("named-call", people=("8:acs:resource_agent-1", "4:+15551230000"))
    page = client.get(f"/calls/{named}/").content.decode()
    assert '<h1 id="call-title">Agent nt-1 with +15551230000</h1>' in page
    assert "<title>Agent nt-1 with +15551230000 · Callsite</title>" in page
    assert "<code>named-call</code>" in page  # still there, for whoever needs it

    ringing = services.call_stream_opened(connection_id="ringing-call")
    assert call_title(ringing) == "Call ringing-call"
    assert call_title({**ringing, "caller": "4:+15559990000", "caller_display_name": ""}) == (
        "Call with 4:+15559990000"
    )
    agent_only = {**ringing, "participants": [{"label": "Dana", "role": "agent"}]}
    assert call_title(agent_only) == "Dana"  # type: ignore[arg-type]
