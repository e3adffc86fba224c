"""Production settings: ``check --deploy`` is clean, secrets have no defaults, HTTPS is on.

Each test starts Django in a subprocess with an environment built from nothing, as
``/etc/callsite.env`` would give it (docs/deploy.md), so no variable of the test run leaks in.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]
OURS = ("DJANGO_", "CALLSITE_", "DATABASE_", "REDIS_", "SPEECH_", "ACS_")

# Settings that hold a secret: none may get a usable value from anywhere but the environment.
SECRET_SETTINGS = [
    "CALLSITE_ACS_SHARED_SECRET",
    "CALLSITE_METRICS_TOKEN",
    "SPEECH_KEY",
    "ACS_CONNECTION_STRING",
]
HTTPS_SETTINGS = [
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
]


def production(**overrides: str | None) -> dict[str, str]:
    """The environment of docs/deploy.md's recipe (``None`` removes a variable)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(OURS)}
    env.update(
        DJANGO_SETTINGS_MODULE="callsite.settings",
        DATABASE_URL="postgres://callsite:db-password-0123@db.internal:5432/callsite",
        REDIS_URL="redis://redis.internal:6379/0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="callsite.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://callsite.example.com",
        CALLSITE_SERVE_STATIC="0",
        CALLSITE_ACS_SHARED_SECRET=secrets.token_urlsafe(24),
        CALLSITE_ACS_RESOURCE_ID="11111111-2222-3333-4444-555555555555",
        CALLSITE_RECOGNIZER="azure",
        SPEECH_KEY=secrets.token_hex(16),
        SPEECH_REGION="westeurope",
        CALLSITE_WORKERS="4",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def demo(**overrides: str) -> dict[str, str]:
    """What ``make demo`` runs with: DEBUG on, a fresh ACS secret, nothing else."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(OURS)}
    env.update(
        DJANGO_SETTINGS_MODULE="callsite.settings",
        DJANGO_DEBUG="1",
        CALLSITE_ACS_SHARED_SECRET=secrets.token_urlsafe(24),
    )
    env.update(overrides)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(env, "manage.py", *args)


def read_settings(env: dict[str, str], names: list[str]) -> dict[str, Any]:
    """The values the settings module computes from ``env``."""
    code = (
        "import json, callsite.settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}, default=str))"
    )
    result = run(env, "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- check --deploy -----------------------------------------------------------------------------


def test_check_deploy_is_clean_in_production() -> None:
    """docs/deploy.md's environment passes ``check --deploy`` with no warning at all."""
    result = manage(production(), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_flags_a_deployment_without_https() -> None:
    """Turning CALLSITE_HTTPS off in production is possible, and ``check --deploy`` says what
    it costs."""
    result = manage(production(CALLSITE_HTTPS="0"), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr


def test_the_demo_passes_its_checks() -> None:
    """``make demo``'s environment (DEBUG on, no secret key) starts."""
    result = manage(demo(), "check")
    assert result.returncode == 0, result.stdout + result.stderr


# --- HTTPS between production and the demo ------------------------------------------------------


def test_https_settings_follow_debug_and_the_environment() -> None:
    """Production (DEBUG off) gets HTTPS everywhere by default; the demo's plain
    http://127.0.0.1 gets none of it; CALLSITE_HSTS_SECONDS changes the HSTS lifetime."""
    prod = read_settings(production(), HTTPS_SETTINGS)
    assert prod == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": ["^healthz$", "^readyz$", "^metrics$"],
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
    }
    plain = read_settings(demo(), HTTPS_SETTINGS)
    assert plain["SECURE_PROXY_SSL_HEADER"] is None
    assert plain["SECURE_SSL_REDIRECT"] is False
    assert plain["SESSION_COOKIE_SECURE"] is False
    assert plain["CSRF_COOKIE_SECURE"] is False
    assert plain["SECURE_HSTS_SECONDS"] == 0
    shorter = read_settings(production(CALLSITE_HSTS_SECONDS="3600"), ["SECURE_HSTS_SECONDS"])
    assert shorter == {"SECURE_HSTS_SECONDS": 3600}


@pytest.fixture
def production_https() -> Any:
    """This process's settings with production's HTTPS values (read from a subprocess)."""
    values = read_settings(production(), HTTPS_SETTINGS)
    values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    with override_settings(**values):
        yield


@pytest.mark.django_db
@pytest.mark.usefixtures("production_https")
def test_production_https_behind_nginx(supervisor: Any) -> None:
    """As nginx passes requests on: plain http is redirected to https, https gets HSTS and
    secure cookies, and the probes and scrapers on a worker's own port are not redirected."""
    client = Client()
    redirected = client.get("/history/?q=refund")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/history/?q=refund"
    redirected = client.post("/acs/events/", data="[]", content_type="application/json")
    assert redirected.status_code == 301

    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path, REMOTE_ADDR="127.0.0.1").status_code == 200, path

    https = {"X-Forwarded-Proto": "https"}  # as nginx sets it
    page = client.get("/accounts/login/", headers=https)
    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert page.cookies[django_settings.CSRF_COOKIE_NAME]["secure"]
    logged_in = client.post(
        "/accounts/login/",
        {"username": "sup", "password": "sup-password-123"},
        headers=https,
    )
    assert logged_in.status_code == 302
    session = logged_in.cookies[django_settings.SESSION_COOKIE_NAME]
    assert session["secure"]
    assert session["httponly"]
    assert session["samesite"] == "Lax"
    assert client.get("/", headers=https).status_code == 200


# --- secrets have no defaults in production -----------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "environment", "message"),
    [
        (
            "manage.py",
            {"DJANGO_SECRET_KEY": None},
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off",
        ),
        (
            "asgi",
            {"DJANGO_SECRET_KEY": None},
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off",
        ),
        (
            "asgi",
            {"DJANGO_SECRET_KEY": ""},
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off",
        ),
        (
            "asgi",
            {"DJANGO_SECRET_KEY": "django-insecure-development-only-key-do-not-use-in-production"},
            "DJANGO_SECRET_KEY is a development key",
        ),
        (
            "asgi",
            {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": None},
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off",
        ),
        (
            "asgi",
            {"CALLSITE_METRICS_TOKEN": "short-token"},
            "CALLSITE_METRICS_TOKEN must be at least 16 characters long",
        ),
        (
            "asgi",
            {"DJANGO_ALLOWED_HOSTS": "*"},
            "DJANGO_ALLOWED_HOSTS must list host names when DJANGO_DEBUG is off",
        ),
    ],
    ids=[
        "no secret key: manage.py",
        "no secret key: server",
        "empty secret key",
        "the development key",
        "DEBUG explicitly off, no key",
        "short metrics token",
        "any host and any origin",
    ],
)
def test_production_refuses_to_start(
    entry: str, environment: dict[str, str | None], message: str
) -> None:
    """Started with DEBUG off and a missing or unusable secret, Django stops with a message
    naming the variable. ``asgi`` imports ``callsite.asgi`` as Daphne does when it starts."""
    env = production(**environment)
    if entry == "manage.py":
        result = manage(env, "check")
    else:
        result = run(env, "-c", "import callsite.asgi")
    assert result.returncode != 0
    assert message in result.stderr


def test_the_demo_key_exists_only_with_debug() -> None:
    """Without DJANGO_SECRET_KEY only DEBUG gets a key, and it is marked as insecure."""
    key = read_settings(demo(), ["SECRET_KEY"])["SECRET_KEY"]
    assert key.startswith("django-insecure-")


def test_no_secret_has_a_default() -> None:
    """With DEBUG off and only the secret key set, every other secret is empty (the features
    that need them are then off or refuse everyone), and the database has no password."""
    env = production(
        **dict.fromkeys(SECRET_SETTINGS), DATABASE_URL=None, CALLSITE_RECOGNIZER="none"
    )
    values = read_settings(env, [*SECRET_SETTINGS, "DATABASES"])
    assert {name: values[name] for name in SECRET_SETTINGS} == dict.fromkeys(SECRET_SETTINGS, "")
    assert values["DATABASES"]["default"].get("PASSWORD", "") == ""
    # ...and the system check says the ACS endpoints refuse every connection.
    result = manage(env | {"CALLSITE_ACS_RESOURCE_ID": ""}, "check")
    assert "callsite.W002" in result.stderr
    assert "refuses every connection" in result.stderr


def test_env_secret_has_no_default_and_refuses_short_values() -> None:
    from callsite.env import ImproperlyConfiguredEnv, env_secret

    assert env_secret("TOKEN", environ={}) == ""
    assert env_secret("TOKEN", environ={"TOKEN": " 0123456789abcdef "}) == "0123456789abcdef"
    with pytest.raises(ImproperlyConfiguredEnv, match="TOKEN must be at least 16 characters"):
        env_secret("TOKEN", environ={"TOKEN": "0123456789abcde"})


@pytest.mark.parametrize(
    ("environment", "check"),
    [
        ({"CALLSITE_ACS_SHARED_SECRET": "short-secret"}, "callsite.E001"),
        ({"DJANGO_SECRET_KEY": "short-secret-key"}, "security.W009"),
    ],
    ids=["short ACS shared secret", "short secret key"],
)
def test_weak_secrets_fail_the_deploy_check(environment: dict[str, str], check: str) -> None:
    result = manage(production(**environment), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert check in result.stderr


# --- request limits from the environment --------------------------------------------------------


def test_request_limits_come_from_the_environment() -> None:
    names = [
        "DATA_UPLOAD_MAX_MEMORY_SIZE",
        "FILE_UPLOAD_MAX_MEMORY_SIZE",
        "DATA_UPLOAD_MAX_NUMBER_FIELDS",
    ]
    assert read_settings(production(), names) == {
        "DATA_UPLOAD_MAX_MEMORY_SIZE": 2 * 1024 * 1024,
        "FILE_UPLOAD_MAX_MEMORY_SIZE": 2 * 1024 * 1024,
        "DATA_UPLOAD_MAX_NUMBER_FIELDS": 1000,
    }
    larger = production(CALLSITE_MAX_REQUEST_BYTES="4194304", CALLSITE_MAX_REQUEST_FIELDS="5000")
    assert read_settings(larger, names) == {
        "DATA_UPLOAD_MAX_MEMORY_SIZE": 4 * 1024 * 1024,
        "FILE_UPLOAD_MAX_MEMORY_SIZE": 4 * 1024 * 1024,
        "DATA_UPLOAD_MAX_NUMBER_FIELDS": 5000,
    }
    # Below an Event Grid batch: refused at start-up.
    result = run(production(CALLSITE_MAX_REQUEST_BYTES="65536"), "-c", "import callsite.settings")
    assert result.returncode != 0
    assert "CALLSITE_MAX_REQUEST_BYTES must be at least 1048576" in result.stderr
