"""Typed readers for configuration that comes from the environment.

Every setting Callsite reads from the environment goes through one of these helpers, so a bad
value fails at start-up with a message that names the variable, instead of surfacing later as
an odd behaviour. The helpers take the environment as an argument (defaulting to
``os.environ``) so they can be tested without touching the process environment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ImproperlyConfiguredEnv(ValueError):
    """An environment variable holds a value its reader cannot use."""


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] | None = None) -> str:
    """Return the variable as a stripped string, or ``default`` when unset."""
    value = _environ(environ).get(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool = False, *, environ: Mapping[str, str] | None = None) -> bool:
    """Return the variable as a boolean; accepts 1/0, true/false, yes/no, on/off."""
    value = _environ(environ).get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfiguredEnv(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Return the variable as an integer, checking an optional lower bound."""
    value = _environ(environ).get(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be at least {minimum}, got {number}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """Return the variable as a number (``1.5``), checking an optional lower bound."""
    value = _environ(environ).get(name)
    if value is None or not value.strip():
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfiguredEnv(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be at least {minimum:g}, got {number:g}")
    return number


def env_secret(name: str, *, min_length: int = 16, environ: Mapping[str, str] | None = None) -> str:
    """Return a secret (a token, a password): empty when unset, never a default.

    A value shorter than ``min_length`` is refused: a short secret is guessable, and finding
    out at start-up beats finding out from an intruder.
    """
    value = env_str(name, environ=environ)
    if value and len(value) < min_length:
        raise ImproperlyConfiguredEnv(
            f"{name} must be at least {min_length} characters long, got {len(value)} "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return value


def env_list(
    name: str, default: list[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Return a comma-separated variable as a list of non-empty, stripped items."""
    value = _environ(environ).get(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_json_patterns(name: str, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a JSON object of name -> regular expression; each must compile and have a
    name of letters, digits and underscores (it is what a match reads as: ``[name]``)."""
    value = _environ(environ).get(name, "").strip()
    if not value:
        return {}
    try:
        patterns = json.loads(value)
    except ValueError as error:
        raise ImproperlyConfiguredEnv(f"{name} must be a JSON object: {error}") from error
    if not isinstance(patterns, dict):
        raise ImproperlyConfiguredEnv(f"{name} must be a JSON object of name -> regex")
    for key, pattern in patterns.items():
        if not re.fullmatch(r"[A-Za-z0-9_]{1,40}", key) or not isinstance(pattern, str):
            raise ImproperlyConfiguredEnv(
                f"{name}: {key!r} must be a name of letters, digits and _ with a regex string"
            )
        try:
            re.compile(pattern)
        except re.error as error:
            raise ImproperlyConfiguredEnv(f"{name}: pattern {key!r} is invalid: {error}") from error
        if re.fullmatch(pattern, ""):
            raise ImproperlyConfiguredEnv(f"{name}: pattern {key!r} matches the empty string")
    return patterns


RECORDINGS_STORAGES = ("files", "azure", "s3")


def recordings_storage_from_env(
    *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``STORAGES["recordings"]`` from ``CALLSITE_RECORDINGS_STORAGE`` (docs/recordings.md).

    ``files`` (the default): a directory, ``CALLSITE_RECORDINGS_DIR``. ``azure``: a container
    (``CALLSITE_RECORDINGS_CONTAINER``) of the Azure Storage account whose connection string is
    ``CALLSITE_RECORDINGS_AZURE_CONNECTION_STRING``. ``s3``: a bucket of that name, with
    boto3's own credentials (``AWS_ACCESS_KEY_ID``... or the machine's role), at
    ``CALLSITE_RECORDINGS_S3_ENDPOINT_URL`` when it is not AWS (MinIO, Ceph...).
    """
    kind = env_str("CALLSITE_RECORDINGS_STORAGE", "files", environ=environ).lower() or "files"
    container = env_str("CALLSITE_RECORDINGS_CONTAINER", "callsite-recordings", environ=environ)
    if kind == "files":
        directory = env_str("CALLSITE_RECORDINGS_DIR", environ=environ)
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {
                "location": Path(directory) if directory else base_dir / "var" / "recordings"
            },
        }
    if kind not in RECORDINGS_STORAGES:
        raise ImproperlyConfiguredEnv(
            f"CALLSITE_RECORDINGS_STORAGE must be one of {', '.join(RECORDINGS_STORAGES)}, "
            f"got {kind!r}"
        )
    if not container:
        raise ImproperlyConfiguredEnv(
            f"CALLSITE_RECORDINGS_STORAGE={kind} needs CALLSITE_RECORDINGS_CONTAINER"
        )
    if kind == "azure":
        connection = env_str("CALLSITE_RECORDINGS_AZURE_CONNECTION_STRING", environ=environ)
        if not connection:
            raise ImproperlyConfiguredEnv(
                "CALLSITE_RECORDINGS_STORAGE=azure needs "
                "CALLSITE_RECORDINGS_AZURE_CONNECTION_STRING "
                "(the storage account's connection string, from its Access keys)"
            )
        return {
            "BACKEND": "storages.backends.azure_storage.AzureStorage",
            "OPTIONS": {
                "connection_string": connection,
                "azure_container": container,
                "overwrite_files": True,
            },
        }
    options: dict[str, Any] = {"bucket_name": container, "file_overwrite": True}
    endpoint = env_str("CALLSITE_RECORDINGS_S3_ENDPOINT_URL", environ=environ)
    if endpoint:
        options["endpoint_url"] = endpoint
    region = env_str("CALLSITE_RECORDINGS_S3_REGION", environ=environ)
    if region:
        options["region_name"] = region
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


def database_from_url(url: str, *, base_dir: Path) -> dict[str, Any]:
    """Build a Django ``DATABASES`` entry from a URL.

    Supports ``postgres://``/``postgresql://`` (user, password, host, port, database and query
    options such as ``sslmode``) and ``sqlite:///relative/or//absolute/path``. PostgreSQL gets
    persistent, health-checked connections: Django's default of closing the connection after
    every request turns each ``database_sync_to_async`` call into a reconnect.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfiguredEnv(f"DATABASE_URL has no database name: {url!r}")
        options: dict[str, Any] = dict(parse_qsl(parts.query))
        conn_max_age = int(options.pop("conn_max_age", 600))
        # The call lists' subqueries push the planner's estimates past jit_above_cost, and
        # compiling them took longer than running them (docs/benchmarks.md, "Call history").
        options.setdefault("options", "-c jit=off")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    if scheme == "sqlite":
        raw_path = unquote(parts.path)
        # sqlite:///var/db.sqlite3 is relative to the project, sqlite:////abs/db.sqlite3 absolute.
        relative = raw_path[1:] if raw_path.startswith("/") else raw_path
        path = Path(relative)
        if not relative.strip("/"):
            raise ImproperlyConfiguredEnv(f"DATABASE_URL has no SQLite path: {url!r}")
        return sqlite_database(path if path.is_absolute() else base_dir / path)
    raise ImproperlyConfiguredEnv(
        f"DATABASE_URL scheme {parts.scheme!r} is not supported (use postgres:// or sqlite:///)"
    )


def sqlite_database(path: Path) -> dict[str, Any]:
    """Return a SQLite ``DATABASES`` entry in WAL mode, tuned for one busy process.

    WAL lets supervisors read while ingest writes; ``IMMEDIATE`` transactions take the write
    lock up front, so two writers queue on ``timeout`` instead of failing with "database is
    locked" halfway through a transaction. Connections persist (``CONN_MAX_AGE``) as they do
    for PostgreSQL: with Django's default of 0, every ``database_sync_to_async`` call opens
    the file and runs the PRAGMAs again.
    """
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        "TEST": {"NAME": path.with_name(f"test_{path.name}")},
    }


REDIS_LAYERS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "list": "channels_redis.core.RedisChannelLayer",
}


def channel_layers_from_url(
    url: str, *, prefix: str = "callsite", kind: str = "pubsub"
) -> dict[str, Any]:
    """Build ``CHANNEL_LAYERS``: Redis for a ``redis://`` URL, in-memory for an empty one.

    ``kind`` picks channels-redis's layer. ``pubsub`` (the default) publishes each group
    message once and every process hands it to its own listening sockets: no per-process inbox
    to drain, no capacity at which messages are dropped silently. Its contract is best effort
    with nothing kept for a socket that is not listening, which is what Callsite's events
    assume: the database holds the truth and pages re-sync from it (``?after=<seq>``).
    ``list`` is the layer with a per-process inbox in Redis; at 100 calls per process that
    inbox fills and drops most captions (docs/benchmarks.md, "Caption latency"). Its
    ``capacity`` is raised above the default of 100 and ``group_expiry`` stays at a day,
    Daphne's default WebSocket timeout.
    """
    if not url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    scheme = urlsplit(url).scheme.lower()
    if scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfiguredEnv(
            f"REDIS_URL scheme {scheme!r} is not supported (use redis://, rediss:// or unix://)"
        )
    if kind not in REDIS_LAYERS:
        raise ImproperlyConfiguredEnv(
            f"CALLSITE_REDIS_LAYER {kind!r} is not one of {', '.join(sorted(REDIS_LAYERS))}"
        )
    config: dict[str, Any] = {"hosts": [url], "prefix": prefix}
    if kind == "list":
        config.update(capacity=1000, expiry=60, group_expiry=86400)
    return {"default": {"BACKEND": REDIS_LAYERS[kind], "CONFIG": config}}


def cache_from_url(url: str, *, prefix: str = "callsite") -> dict[str, Any]:
    """Build ``CACHES``: Django's Redis cache for a ``redis://`` URL, per-process memory without.

    The channel layer and the cache share the Redis server; keys are kept apart by
    ``KEY_PREFIX`` (the channel prefix plus ``.cache``).
    """
    if not url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"{prefix}.cache",
        }
    }
