"""Failed logins are counted and limited (callsite/login.py), on both login forms."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


def _burst(passwords: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    """Post ``passwords`` for agent-7 at once, each in its own thread (as a server handles
    them); a password check takes 0.2 s, like a real hash. Returns how many passwords were
    checked, and each attempt's outcome: "in", "wrong" or "refused"."""
    from django.contrib.auth import authenticate as real
    from django.contrib.auth import forms as auth_forms
    from django.db import connection
    from django.test import RequestFactory

    from callsite.login import LoginForm

    checked: list[str] = []

    def slow(request: Any = None, **credentials: Any) -> Any:
        checked.append(credentials["password"])
        time.sleep(0.2)
        return real(request, **credentials)

    monkeypatch.setattr(auth_forms, "authenticate", slow)
    start = threading.Barrier(len(passwords))

    def attempt(index: int) -> str:
        request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="203.0.113.7")
        form = LoginForm(request, data={"username": "agent-7", "password": passwords[index]})
        start.wait()
        if passwords[index] == PASSWORD:
            time.sleep(0.05)  # the right one comes while the wrong ones are being checked
        try:
            return "in" if form.is_valid() else ("refused" if form.refused else "wrong")
        finally:
            connection.close()

    with ThreadPoolExecutor(len(passwords)) as pool:
        outcomes = list(pool.map(attempt, range(len(passwords))))
    return len(checked), outcomes


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_wrong_passwords_is_checked_only_up_to_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted before the check: 100 wrong passwords at once get 10 checks (the limit per
    username and address), and the right one, sent in the burst, does not log in."""
    User.objects.create_user("agent-7", password=PASSWORD)
    checked, outcomes = _burst([WRONG] * 99 + [PASSWORD], monkeypatch)
    assert checked <= 10
    assert outcomes.count("wrong") == checked
    assert outcomes.count("refused") == 100 - checked
    assert outcomes[-1] == "refused"


@pytest.mark.django_db(transaction=True)
def test_the_admin_password_change_limits_guesses_of_the_old_password() -> None:
    user = User.objects.create_superuser("root-2", password=PASSWORD)
    client = Client()
    client.force_login(user)

    def change(old: str) -> int:
        response = client.post(
            "/admin/password_change/",
            {
                "old_password": old,
                "new_password1": "N3w-pass-9876",
                "new_password2": "N3w-pass-9876",
            },
        )
        return response.status_code

    with override_settings(CALLSITE_LOGIN_MAX_FAILURES=3):
        assert [change(WRONG) for _ in range(3)] == [200, 200, 200]
        assert change(PASSWORD) == 429  # past the limit, the right old password too
        user.refresh_from_db()
        assert user.check_password(PASSWORD)
