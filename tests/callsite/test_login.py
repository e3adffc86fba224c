"""Failed logins are counted and limited (callsite/login.py), on both login forms."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from tests.helpers import clear_cache

PASSWORD = "right-password-123"
WRONG = "wrong-password-123"


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def agent(db: Any) -> User:
    return User.objects.create_user("agent-7", password=PASSWORD)


def login(address: str = "203.0.113.7", password: str = PASSWORD, *, path: str = "/accounts/login/",
          username: str = "agent-7") -> tuple[int, str, bool]:  # fmt: skip
    """Post the form from ``address``: the status, the page, and whether it logged in."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password})
    return response.status_code, response.content.decode(), "_auth_user_id" in client.session


@override_settings(CALLSITE_LOGIN_MAX_FAILURES=3)
def test_past_the_limit_even_the_right_password_is_refused_with_a_reason(agent: User) -> None:
    for _ in range(3):
        status, page, logged_in = login(password=WRONG)
        assert (status, logged_in) == (200, False)
        assert "didn&#x27;t match" in page or "didn't match" in page
    status, page, logged_in = login()
    assert status == 429
    assert not logged_in
    assert "Too many failed logins for this username" in page
    assert "15 minutes" in page
    # Another username from the same address, and this one from another address, go on.
    User.objects.create_user("agent-8", password=PASSWORD)
    assert login(username="agent-8")[2]
    assert login(address="198.51.100.9")[2]


@override_settings(CALLSITE_LOGIN_MAX_FAILURES=3)
def test_a_right_password_before_the_limit_logs_in(agent: User) -> None:
    for _ in range(2):
        assert not login(password=WRONG)[2]
    assert login() == (302, "", True)


@override_settings(CALLSITE_LOGIN_MAX_FAILURES=2)
def test_forged_addresses_meet_the_usernames_own_limit(agent: User) -> None:
    """An address can be forged (X-Forwarded-For); over all addresses a username gets five
    times the per-address allowance."""
    for n in range(10):
        assert not login(address=f"192.0.2.{n}", password=WRONG)[2]
    status, _, logged_in = login(address="192.0.2.200")
    assert (status, logged_in) == (429, False)


@override_settings(CALLSITE_LOGIN_MAX_FAILURES=2, CALLSITE_LOGIN_WINDOW_SECONDS=1)
def test_the_window_ends(agent: User) -> None:
    for _ in range(2):
        login(password=WRONG)
    assert login()[0] == 429
    time.sleep(1.2)
    assert login()[2]


@override_settings(CALLSITE_LOGIN_MAX_FAILURES=2)
def test_the_admin_login_is_limited_too(db: Any) -> None:
    User.objects.create_superuser("root-1", password=PASSWORD)
    for _ in range(2):
        assert not login(path="/admin/login/", username="root-1", password=WRONG)[2]
    status, page, logged_in = login(path="/admin/login/", username="root-1")
    assert status == 200  # the admin shows the form again, with the reason
    assert not logged_in
    assert "Too many failed logins for this username" in page
    assert login(username="root-1")[0] == 429  # the same count on the other form


@override_settings(CALLSITE_LOGIN_MAX_FAILURES=0)
def test_zero_turns_the_limit_off(agent: User) -> None:
    for _ in range(12):
        login(password=WRONG)
    assert login()[2]


def test_logins_go_on_while_the_cache_is_away(agent: User) -> None:
    away = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    with override_settings(CACHES=away, CALLSITE_LOGIN_MAX_FAILURES=1):
        assert not login(password=WRONG)[2]
        assert not login(password=WRONG)[2]
        assert login()[2]  # not counted, so not refused
