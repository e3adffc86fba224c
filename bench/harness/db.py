"""Databases for the benchmarks: a migrated SQLite template copied per point, scratch
PostgreSQL databases created and dropped around a run, a supervisor with a logged-in session
for the load's pages, and Django set up in this process on a scratch database."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.harness import ROOT
from bench.harness.servers import base_env


def migrate(workdir: Path, secret: str, root: Path = ROOT) -> Path:
    """A migrated SQLite database of ``root``'s schema, to copy for each point."""
    name = "template" if root == ROOT else f"template-{hashlib.sha1(bytes(root)).hexdigest()[:8]}"
    db = workdir / f"{name}.sqlite3"
    env = base_env(secret, root)
    env["DATABASE_URL"] = f"sqlite:///{db}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
        cwd=root,
        env=env,
        check=True,
    )
    # Fold the WAL into the file so one copy is a complete database.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def copy_database(template: Path, workdir: Path, name: str) -> str:
    """A fresh copy of a migrated SQLite template: its ``DATABASE_URL``."""
    db = workdir / f"bench-{name}.sqlite3"
    shutil.copyfile(template, db)
    return f"sqlite:///{db}"


def fresh_sqlite(path: Path) -> str:
    """``DATABASE_URL`` of a SQLite file that does not exist yet (any old one is removed)."""
    for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        old.unlink(missing_ok=True)
    return f"sqlite:///{path}"


class ScratchDatabase:
    """A database of its own on the PostgreSQL server of ``server_url``: created, dropped after.

    Its URL is the server's with the database's name (and the server URL's query, unless
    ``query`` is false).
    """

    def __init__(self, server_url: str, name: str, *, query: bool = True) -> None:
        self.server_url = server_url
        self.name = name
        parts = urlsplit(server_url)._replace(path="/" + name)
        self.url = urlunsplit(parts if query else parts._replace(query=""))
        self.created = False

    def _admin(self, sql: str) -> None:
        import psycopg

        parts = urlsplit(self.server_url)
        admin = urlunsplit(
            parts._replace(path=parts.path if parts.path.strip("/") else "/postgres")
        )
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.encode())

    def create(self) -> None:
        self._admin(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def drop(self) -> None:
        if self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False

    def run_then_drop(self, run: Callable[[], int], *, keep: bool = False) -> int:
        """``run()``'s exit code (130 when interrupted); then the database is dropped, or kept
        (its URL printed) with ``keep``. Django's connections to it are closed first."""
        code = 1
        try:
            code = run()
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            code = 130
        finally:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            if keep and self.created:
                print(f"kept the database: DATABASE_URL={self.url}")
            elif self.created:
                try:
                    self.drop()
                    print(f"dropped database {self.name}")
                except Exception as error:
                    print(f"could not drop database {self.name}: {error}", file=sys.stderr)
        return code


SEED_SUPERVISOR = """
from importlib import import_module

import django

django.setup()

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command

call_command("migrate", interactive=False, verbosity=0, skip_checks=True)
user = get_user_model().objects.create_user("bench-supervisor")
# Watches calls, and sees all of them (as Staff do), where the code knows that permission.
user.user_permissions.add(
    *Permission.objects.filter(
        content_type__app_label="streaming", codename__in=["view_call", "view_all_calls"]
    )
)
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[SESSION_KEY] = user._meta.pk.value_to_string(user)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
"""


def seed_supervisor(secret: str, server_env: Mapping[str, str], root: Path = ROOT) -> str:
    """Migrate the servers' database, add a supervisor and a logged-in session: the cookie.

    ``server_env`` is what the servers get over the benchmark's environment: it names the
    database, and the session is signed with its secret key. ``root``: the checkout whose
    schema and code the servers run.
    """
    env = base_env(secret, root)
    env.update(server_env)
    done = subprocess.run(
        [sys.executable, "-c", SEED_SUPERVISOR],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def configure_django(database_url: str, **settings: str) -> None:
    """Production settings (``callsite.settings``, ``DEBUG`` off) in this process.

    Every Callsite variable of the calling environment is dropped first, so its defaults
    apply; ``settings`` are set over them.
    """
    for key in list(os.environ):
        if key.startswith(("DJANGO_", "CALLSITE_", "DATABASE_", "REDIS_")):
            del os.environ[key]
    os.environ.update(
        DJANGO_SETTINGS_MODULE="callsite.settings",
        DJANGO_SECRET_KEY="bench-" + secrets.token_urlsafe(32),
        DATABASE_URL=database_url,
        CALLSITE_RECOGNIZER="none",
        CALLSITE_LOG_LEVEL="WARNING",
        **settings,
    )
    import django

    django.setup()
