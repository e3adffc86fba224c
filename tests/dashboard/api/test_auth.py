"""Who gets in: tokens and sessions for supervisors; 401 for anonymous, 403 for the rest."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.dashboard.api.conftest import token_client

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    "/api/calls/",
    "/api/calls/{id}/",
    "/api/calls/{id}/utterances/",
    "/api/calls/{id}/transcript/",
    "/api/calls/{id}/transcript.csv",
    "/api/schema/",
]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_anonymous_requests_are_refused_with_401(client: Client, team_call: int, url: str) -> None:
    response = client.get(url.format(id=team_call))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    if url != "/api/schema/":  # the schema view answers in YAML unless asked for JSON
        assert response["Content-Type"] == "application/json"
        assert "credentials" in response.json()["detail"]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_users_without_the_view_permission_get_403(
    outsider: User, team_call: int, url: str
) -> None:
    response = token_client(outsider).get(url.format(id=team_call), HTTP_ACCEPT="application/json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to view calls."}


def test_a_token_authenticates(staff: User, team_call: int) -> None:
    token = Token.objects.create(user=staff)
    response = Client().get("/api/calls/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [team_call]


def test_a_wrong_token_is_401(db: None) -> None:
    response = Client().get("/api/calls/", HTTP_AUTHORIZATION="Token not-a-real-key")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_an_inactive_users_token_is_refused(staff: User) -> None:
    api = token_client(staff)
    User.objects.filter(pk=staff.pk).update(is_active=False)
    assert api.get("/api/calls/").status_code == 401


def test_a_session_authenticates(client: Client, staff: User, team_call: int) -> None:
    client.force_login(staff)
    response = client.get(f"/api/calls/{team_call}/")
    assert response.status_code == 200
    assert response.json()["id"] == team_call


def test_a_real_login_session_works_too(client: Client, staff: User) -> None:
    assert client.login(username="staff", password="staff-password-123")
    assert client.get("/api/calls/").status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_api_is_read_only(staff_api: Client, team_call: int, method: str) -> None:
    for url in ENDPOINTS[:-1]:
        response = getattr(staff_api, method)(url.format(id=team_call))
        assert response.status_code == 405, url
        assert "POST" not in response["Allow"]


def test_head_and_options_are_answered(staff_api: Client, team_call: int) -> None:
    for url in ENDPOINTS[:-1]:
        url = url.format(id=team_call)
        head = staff_api.head(url)
        assert head.status_code == 200, url
        assert head.content == b""
        options = staff_api.options(url)
        assert options.status_code == 200, url
        assert options["Content-Type"] == "application/json"
        assert options.json()["renders"]


def test_a_session_needs_no_csrf_token_to_read(staff: User, team_call: int) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.get("/api/calls/").status_code == 200
