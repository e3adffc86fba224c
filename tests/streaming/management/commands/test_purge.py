"""``manage.py purge``: a dry run counts, the real run deletes in batches, bad input is a
clear error."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from streaming.models import Utterance
from tests.streaming.test_retention import counts, seed

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("purge", *args, stdout=out)
    return out.getvalue()


def test_dry_run_then_purge_older_than() -> None:
    old, new = seed("old-call", days_ago=40), seed("new-call", days_ago=2)
    dry = run("--older-than", "30", "--dry-run")
    assert "utterances older than 30 days: 3 (dry run)" in dry
    assert "dry run, would delete: utterances 3, analytics 3, events 1, recordings 0" in dry
    assert Utterance.objects.count() == 6
    out = run("--older-than", "30", "--batch-size", "2")
    assert "deleted 2/3" in out
    assert "deleted 3/3" in out
    assert "deleted: utterances 3, analytics 3, events 1, recordings 0" in out
    assert counts(old) == {"utterances": 0, "alerts": 0, "analytics": 0, "events": 0, "calls": 1}
    assert counts(new) == {"utterances": 3, "alerts": 2, "analytics": 1, "events": 1, "calls": 1}


def test_only_the_kinds_chosen() -> None:
    old = seed("old-call", days_ago=40)
    run("--older-than", "30", "--only", "events")
    assert counts(old) == {"utterances": 3, "alerts": 2, "analytics": 1, "events": 0, "calls": 1}


def test_without_older_than_each_kind_keeps_its_setting(settings: Any) -> None:
    settings.CALLSITE_RETAIN_ANALYTICS_DAYS = 30
    old = seed("old-call", days_ago=40)
    assert "deleted: analytics 3" in run()
    assert counts(old)["utterances"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "30", "--only", "utterance"), "unknown kinds utterance"),
        (("--older-than", "0",), "at least 1 day"),
        (("--older-than", "3", "--batch-size", "0"), "--batch-size must be at least 1"),
        ((), "nothing to purge"),
    ],
)
def test_bad_input_is_a_clear_error(args: tuple[str, ...], message: str) -> None:
    seed("old-call", days_ago=40)
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert Utterance.objects.count() == 3
