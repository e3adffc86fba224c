"""The typed environment readers behind the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from callsite.env import (
    ImproperlyConfiguredEnv,
    channel_layers_from_url,
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_json_patterns,
    env_list,
    env_str,
    recordings_storage_from_env,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool_accepts_common_spellings(raw: str, expected: bool) -> None:
    """Booleans accept 1/0, true/false, yes/no and on/off in any case."""
    assert env_bool("X", not expected, environ={"X": raw}) is expected


def test_env_bool_default_and_error() -> None:
    """Unset gives the default; anything else is an error naming the variable."""
    assert env_bool("X", True, environ={}) is True
    with pytest.raises(ImproperlyConfiguredEnv, match="X must be a boolean"):
        env_bool("X", environ={"X": "maybe"})


def test_env_int_bounds_and_errors() -> None:
    """Integers parse, respect a minimum and name the variable when wrong."""
    assert env_int("N", 5, environ={}) == 5
    assert env_int("N", 5, environ={"N": " 12 "}) == 12
    with pytest.raises(ImproperlyConfiguredEnv, match="N must be an integer"):
        env_int("N", 5, environ={"N": "twelve"})
    with pytest.raises(ImproperlyConfiguredEnv, match="at least 0"):
        env_int("N", 5, minimum=0, environ={"N": "-1"})


def test_env_float_bounds_and_errors() -> None:
    """Numbers parse, respect a minimum and name the variable when wrong."""
    assert env_float("F", 2.0, environ={}) == 2.0
    assert env_float("F", 2.0, environ={"F": " 1.5 "}) == 1.5
    assert env_float("F", 2.0, environ={"F": "0"}) == 0.0
    with pytest.raises(ImproperlyConfiguredEnv, match="F must be a number"):
        env_float("F", 2.0, environ={"F": "soon"})
    with pytest.raises(ImproperlyConfiguredEnv, match="finite"):
        env_float("F", 2.0, environ={"F": "nan"})
    with pytest.raises(ImproperlyConfiguredEnv, match="at least 0"):
        env_float("F", 2.0, minimum=0, environ={"F": "-0.5"})


def test_env_str_and_list() -> None:
    """Strings are stripped; lists split on commas and drop blanks."""
    assert env_str("S", "d", environ={}) == "d"
    assert env_str("S", environ={"S": "  v "}) == "v"
    assert env_list("L", ["a"], environ={}) == ["a"]
    assert env_list("L", environ={"L": "a.example, b.example,,"}) == ["a.example", "b.example"]
    assert env_list("L", ["a"], environ={"L": ""}) == []


def test_postgres_url() -> None:
    """A PostgreSQL URL gives credentials, options and persistent, health-checked connections."""
    db = database_from_url(
        "postgres://user:p%40ss@db.example:6543/calls?sslmode=require", base_dir=Path("/srv")
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("calls", "user", "p@ss")
    assert (db["HOST"], db["PORT"]) == ("db.example", "6543")
    assert db["OPTIONS"] == {"sslmode": "require", "options": "-c jit=off"}
    assert db["CONN_MAX_AGE"] == 600
    assert db["CONN_HEALTH_CHECKS"] is True


def test_postgres_url_conn_max_age_override() -> None:
    """``conn_max_age`` in the query sets the connection lifetime and is not a driver option."""
    db = database_from_url("postgresql://u@h/d?conn_max_age=0", base_dir=Path("/srv"))
    assert db["CONN_MAX_AGE"] == 0
    assert db["OPTIONS"] == {"options": "-c jit=off"}
    # Server options given in the URL replace the default.
    own = database_from_url("postgres://u@h/d?options=-c%20work_mem%3D64MB", base_dir=Path("/"))
    assert own["OPTIONS"] == {"options": "-c work_mem=64MB"}


def test_sqlite_urls_are_wal_mode() -> None:
    """SQLite paths may be relative to the project or absolute; WAL is always on."""
    relative = database_from_url("sqlite:///var/x.sqlite3", base_dir=Path("/srv/app"))
    assert relative["NAME"] == Path("/srv/app/var/x.sqlite3")
    absolute = database_from_url("sqlite:////data/x.sqlite3", base_dir=Path("/srv/app"))
    assert absolute["NAME"] == Path("/data/x.sqlite3")
    assert "journal_mode=WAL" in absolute["OPTIONS"]["init_command"]
    assert absolute["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert absolute["CONN_MAX_AGE"] == 600  # not reopened and re-PRAGMA'd per query


@pytest.mark.parametrize("url", ["mysql://u@h/d", "postgres://u@h/", "sqlite://"])
def test_unsupported_database_urls_fail_clearly(url: str) -> None:
    """Unknown schemes and URLs without a database are configuration errors."""
    with pytest.raises(ImproperlyConfiguredEnv, match="DATABASE_URL"):
        database_from_url(url, base_dir=Path("/srv"))


def test_channel_layers() -> None:
    """No URL means the in-memory layer; a redis:// URL means channels-redis with a prefix."""
    assert channel_layers_from_url("")["default"]["BACKEND"].endswith("InMemoryChannelLayer")
    redis = channel_layers_from_url("redis://127.0.0.1:6379/2", prefix="cs")["default"]
    assert redis["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert redis["CONFIG"] == {"hosts": ["redis://127.0.0.1:6379/2"], "prefix": "cs"}
    listed = channel_layers_from_url("redis://h:6379/0", kind="list")["default"]
    assert listed["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert listed["CONFIG"]["capacity"] >= 1000
    with pytest.raises(ImproperlyConfiguredEnv, match="REDIS_URL"):
        channel_layers_from_url("amqp://x")
    with pytest.raises(ImproperlyConfiguredEnv, match="CALLSITE_REDIS_LAYER"):
        channel_layers_from_url("redis://h:6379/0", kind="streams")


def test_env_json_patterns_reads_names_and_regexes() -> None:
    assert env_json_patterns("P", environ={}) == {}
    assert env_json_patterns("P", environ={"P": '{"policy": "POL-\\\\d{6}"}'}) == {
        "policy": "POL-\\d{6}"
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[1]", "JSON object of name"),
        ("{nope", "must be a JSON object"),
        ('{"bad name": "x"}', "letters, digits and _"),
        ('{"p": "("}', "pattern 'p' is invalid"),
        ('{"p": "x*"}', "matches the empty string"),
    ],
)
def test_env_json_patterns_refuses_what_it_cannot_use(raw: str, message: str) -> None:
    with pytest.raises(ImproperlyConfiguredEnv, match=message):
        env_json_patterns("P", environ={"P": raw})


def test_recordings_go_to_local_files_by_default() -> None:
    base = Path("/srv/callsite")
    default = recordings_storage_from_env(base_dir=base, environ={})
    assert default == {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": base / "var" / "recordings"},
    }
    elsewhere = recordings_storage_from_env(
        base_dir=base, environ={"CALLSITE_RECORDINGS_DIR": "/mnt/shared/recordings"}
    )
    assert elsewhere["OPTIONS"]["location"] == Path("/mnt/shared/recordings")


def test_recordings_in_azure_blob_or_s3() -> None:
    azure = recordings_storage_from_env(
        base_dir=Path("."),
        environ={
            "CALLSITE_RECORDINGS_STORAGE": "Azure",
            "CALLSITE_RECORDINGS_CONTAINER": "calls",
            "CALLSITE_RECORDINGS_AZURE_CONNECTION_STRING": "AccountName=a;AccountKey=k",
        },
    )
    assert azure["BACKEND"] == "storages.backends.azure_storage.AzureStorage"
    assert azure["OPTIONS"]["azure_container"] == "calls"
    assert azure["OPTIONS"]["connection_string"] == "AccountName=a;AccountKey=k"
    s3 = recordings_storage_from_env(
        base_dir=Path("."),
        environ={
            "CALLSITE_RECORDINGS_STORAGE": "s3",
            "CALLSITE_RECORDINGS_S3_ENDPOINT_URL": "https://minio.internal:9000",
        },
    )
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    assert s3["OPTIONS"] == {
        "bucket_name": "callsite-recordings",
        "file_overwrite": True,
        "endpoint_url": "https://minio.internal:9000",
    }


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"CALLSITE_RECORDINGS_STORAGE": "ftp"}, "must be one of files, azure, s3, got 'ftp'"),
        ({"CALLSITE_RECORDINGS_STORAGE": "azure"}, "needs CALLSITE_RECORDINGS_AZURE_CONNECTION"),
        (
            {"CALLSITE_RECORDINGS_STORAGE": "s3", "CALLSITE_RECORDINGS_CONTAINER": ""},
            "s3 needs CALLSITE_RECORDINGS_CONTAINER",
        ),
    ],
)
def test_a_recordings_storage_that_cannot_work_is_named(
    environ: dict[str, str], problem: str
) -> None:
    with pytest.raises(ImproperlyConfiguredEnv, match=problem):
        recordings_storage_from_env(base_dir=Path("."), environ=environ)
