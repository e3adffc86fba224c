"""``manage.py redact_history``: history stored before the rules (or redaction) came is
redacted in batches, with progress; a dry run counts; a second run changes nothing."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from streaming.models import Utterance
from tests.factories import Said, make_call

pytestmark = pytest.mark.django_db

CUSTOMER = "4:+15555550123"
SAID = [
    "my card is 4532 0151 1283 0366",
    "hello there",
    "policy POL-123456 please",
    "mail jane@example.com",
]


def run(*args: str) -> str:
    out = StringIO()
    call_command("redact_history", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def history(settings: Any) -> int:
    call_id = make_call("old", said=[Said(CUSTOMER, t, float(n)) for n, t in enumerate(SAID)])
    settings.CALLSITE_REDACT = "on"
    return call_id


def texts() -> list[str]:
    return list(Utterance.objects.order_by("offset_ticks").values_list("text", flat=True))


def test_a_dry_run_counts_and_changes_nothing(history: int) -> None:
    out = run("--dry-run", "--batch-size", "3")
    assert "checked 3/4 utterances, would change 3" in out
    assert "dry run: 4 of 4 utterances would change" in out  # "hello there": now checked
    assert texts() == SAID


def test_history_is_redacted_and_a_second_run_changes_nothing(
    history: int, settings: Any
) -> None:
    out = run("--batch-size", "2")
    assert "checked 2/4 utterances, changed 2" in out
    assert "done: 4 of 4 utterances re-redacted" in out
    assert texts() == [
        "my card is [card]",
        "hello there",
        "policy POL-123456 please",
        "mail [email]",
    ]
    card = Utterance.objects.get(text="my card is [card]")
    assert card.redacted is True
    assert card.redaction["kinds"] == ["card"]
    assert all(w["text"] == "[card]" for w in card.words[3:])
    assert Utterance.objects.get(text="hello there").redacted is False
    assert "done: 0 of 4" in run()

    # The rules change: a pattern added, the run masks what it finds and no more.
    settings.CALLSITE_REDACT_PATTERNS = {"policy": r"POL-\d{6}"}
    assert "done: 1 of 4" in run()
    assert texts()[2] == "policy [policy] please"
    assert "done: 0 of 4" in run()


def test_refused_while_redaction_is_off(history: int, settings: Any) -> None:
    settings.CALLSITE_REDACT = "off"
    with pytest.raises(CommandError, match="CALLSITE_REDACT is off"):
        run()
    assert texts() == SAID


def test_dtmf_digits_kept_before_redaction_are_masked(settings: Any) -> None:
    from django.utils import timezone

    from streaming import services
    from streaming.models import CallEvent

    settings.CALLSITE_DTMF_DIGITS = "keep"
    call_id = make_call("tones")
    services.call_tone_record(
        call_id=call_id, tone="7", participant_raw_id=CUSTOMER, at=timezone.now()
    )
    settings.CALLSITE_REDACT = "on"
    assert "1 DTMF tones kept as pressed would be masked" in run("--dry-run")
    assert CallEvent.objects.get(type="DtmfData").data["tone"] == "7"
    assert "1 DTMF tones kept as pressed masked" in run()
    data = CallEvent.objects.get(type="DtmfData").data
    assert (data["tone"], data["masked"]) == ("•", True)
    assert "0 DTMF tones kept as pressed masked" in run()
