"""Per-user throttling at CALLSITE_API_RATE."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

from callsite.env import env_str
from tests.dashboard.api.conftest import token_client

pytestmark = pytest.mark.django_db


def test_the_default_rate_is_600_a_minute() -> None:
    if env_str("CALLSITE_API_RATE"):
        pytest.skip("CALLSITE_API_RATE is set in this environment")
    assert django_settings.CALLSITE_API_RATE == "600/min"


def test_a_user_over_the_rate_gets_429(
    settings: Any, staff: User, team_supervisor: User, team_call: int
) -> None:
    settings.CALLSITE_API_RATE = "3/min"
    api = token_client(staff)
    for url in ("/api/calls/", f"/api/calls/{team_call}/", f"/api/calls/{team_call}/transcript/"):
        assert api.get(url).status_code == 200
    refused = api.get(f"/api/calls/{team_call}/transcript.csv")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"]
    # Counted per user: another supervisor is not held back.
    assert token_client(team_supervisor).get("/api/calls/").status_code == 200


def test_token_and_session_requests_count_for_the_same_user(settings: Any, staff: User) -> None:
    settings.CALLSITE_API_RATE = "2/min"
    session = Client()
    session.force_login(staff)
    assert token_client(staff).get("/api/calls/").status_code == 200
    assert session.get("/api/calls/").status_code == 200
    assert session.get("/api/calls/").status_code == 429


@pytest.mark.parametrize("rate", ["600", "600/fortnight", "0/min", "-5/s", "many/min"])
def test_a_bad_rate_stops_the_server_naming_the_variable(rate: str) -> None:
    env = {**os.environ, "CALLSITE_API_RATE": rate, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "CALLSITE_API_RATE" in result.stderr
