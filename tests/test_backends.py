"""Each pass of the test matrix really runs on the engines it claims to."""

from __future__ import annotations

import os
import uuid

import pytest
from channels.layers import get_channel_layer
from django.db import connection

from tests.services import IN_CI

EXPECTED = set(filter(None, os.environ.get("CALLSITE_EXPECT_BACKENDS", "").split(",")))


@pytest.mark.django_db
def test_database_engine_matches_the_pass() -> None:
    """PostgreSQL in the production pass, SQLite in WAL mode otherwise."""
    if "postgresql" in EXPECTED:
        assert connection.vendor == "postgresql"
        with connection.cursor() as cursor:
            cursor.execute("select version()")
            assert "PostgreSQL" in cursor.fetchone()[0]
    else:
        assert connection.vendor == "sqlite"
        with connection.cursor() as cursor:
            cursor.execute("pragma journal_mode")
            assert cursor.fetchone()[0] == "wal"


async def test_channel_layer_matches_the_pass() -> None:
    """Redis in the production pass, in-memory otherwise; a group message makes the trip."""
    layer = get_channel_layer()
    expected = "RedisPubSubChannelLayer" if "redis" in EXPECTED else "InMemoryChannelLayer"
    assert type(layer).__name__ == expected
    channel = await layer.new_channel()
    group = f"probe.{uuid.uuid4().hex}"
    await layer.group_add(group, channel)
    await layer.group_send(group, {"type": "probe.message", "n": 1})
    assert (await layer.receive(channel))["n"] == 1


def test_ci_runs_the_production_pass() -> None:
    """Under CI=true the PostgreSQL + Redis pass must run, so this pass must know it."""
    backend = os.environ.get("CALLSITE_TEST_BACKEND")
    if IN_CI and backend == "postgresql-redis":
        assert {"postgresql", "redis"} == EXPECTED
    assert backend in {None, "sqlite-memory", "postgresql-redis"}
