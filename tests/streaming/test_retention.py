"""Retention: each kind purged after its own days, in batches, newer calls left intact; the
daily purge once a day, and run by a real server when CALLSITE_PURGE_DAILY is on."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from streaming import services
from streaming.models import Alert, Call, CallAnalytics, CallEvent, Utterance
from streaming.retention import PURGE_LOCK, purge, purge_daily
from tests.conftest import DaphneServer
from tests.factories import Said, make_call

CUSTOMER = "4:+15555550123"


def seed(connection_id: str, *, days_ago: float) -> int:
    """A call that ended ``days_ago`` days ago, with three finals, alerts, figures, a DTMF
    event."""
    call_id = make_call(
        connection_id,
        said=[Said(CUSTOMER, f"line {n}", float(n)) for n in range(3)],
        alerts=2,
        analytics={"final": True},
        started=timezone.now() - timedelta(days=days_ago, minutes=5),
        length=timedelta(minutes=5),
    )
    services.call_tone_record(
        call_id=call_id, tone="5", participant_raw_id=CUSTOMER, at=timezone.now()
    )
    return call_id


def counts(call_id: int) -> dict[str, int]:
    return {
        "utterances": Utterance.objects.filter(call_id=call_id).count(),
        "alerts": Alert.objects.filter(call_id=call_id).count(),
        "analytics": CallAnalytics.objects.filter(call_id=call_id).count(),
        "events": CallEvent.objects.filter(call_id=call_id).count(),
        "calls": Call.objects.filter(pk=call_id).count(),
    }


@pytest.fixture
def calls(db: Any) -> dict[str, int]:
    return {"old": seed("old-call", days_ago=40), "new": seed("new-call", days_ago=2)}


def test_each_kind_goes_after_its_own_days_and_newer_calls_stay(calls: dict[str, int]) -> None:
    before_new = counts(calls["new"])
    done = purge({"utterances": 30, "analytics": 60, "events": 30}, now=timezone.now())
    assert done == {"utterances": 3, "analytics": 0, "events": 1}
    assert counts(calls["old"]) == {
        "utterances": 0,
        "alerts": 2,
        "analytics": 1,
        "events": 0,
        "calls": 1,
    }
    assert counts(calls["new"]) == before_new


def test_rows_go_in_batches_with_progress(calls: dict[str, int]) -> None:
    lines: list[str] = []
    done = purge({"utterances": 30}, now=timezone.now(), batch_size=2, progress=lines.append)
    assert done == {"utterances": 3}
    assert [line.split(": ")[1].split(" (")[0] for line in lines] == ["deleted 2/3", "deleted 3/3"]


def test_a_dry_run_counts_and_deletes_nothing(calls: dict[str, int]) -> None:
    before = counts(calls["old"])
    done = purge(
        {"utterances": 30, "analytics": 30, "events": 30, "calls": 30},
        now=timezone.now(),
        dry_run=True,
    )
    assert done == {"utterances": 3, "analytics": 3, "events": 1, "calls": 1}
    assert counts(calls["old"]) == before


def test_whole_calls_go_with_everything_left_of_them(calls: dict[str, int]) -> None:
    assert purge({"calls": 30}, now=timezone.now()) == {"calls": 1}
    assert counts(calls["old"]) == dict.fromkeys(counts(calls["old"]), 0)
    assert counts(calls["new"])["calls"] == 1


def test_the_daily_purge_runs_once_a_day(calls: dict[str, int], settings: Any) -> None:
    settings.CALLSITE_RETAIN_UTTERANCES_DAYS = 30
    cache.delete(PURGE_LOCK)
    assert purge_daily(now=timezone.now()) == {"utterances": 3}
    assert purge_daily(now=timezone.now()) is None  # the day's purge already ran
    assert counts(calls["new"])["utterances"] == 3
    cache.delete(PURGE_LOCK)


@pytest.mark.live_server
def test_a_server_with_the_daily_purge_on_purges_at_start(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    old, new = seed("old-call", days_ago=40), seed("new-call", days_ago=2)
    server = daphne_factory(CALLSITE_PURGE_DAILY="1", CALLSITE_RETAIN_UTTERANCES_DAYS="30")
    deadline = time.monotonic() + 30
    while Utterance.objects.filter(call_id=old).exists():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    assert counts(new)["utterances"] == 3
    assert counts(old)["alerts"] == 2
