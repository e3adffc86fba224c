"""Services store once and broadcast only after commit."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from django.db import transaction

from streaming import services
from streaming.acs.packets import Word
from streaming.models import Call, CallState, Participant, ParticipantRole, Utterance

pytestmark = pytest.mark.django_db


def _record(call_id: int, **overrides: Any) -> tuple[dict, bool]:
    arguments: dict[str, Any] = {
        "call_id": call_id,
        "participant_raw_id": "4:+15555550123",
        "text": "Hello.",
        "confidence": 0.9,
        "offset_ticks": 100,
        "duration_ticks": 200,
        "words": [Word("hello", 100, 200)],
        "source": "acs",
        **overrides,
    }
    caption, created = services.utterance_record(**arguments)
    return dict(caption), created


def test_stream_opened_creates_then_reuses_the_call() -> None:
    """The first stream creates the call; the next one for the same id reuses it."""
    first = services.call_stream_opened(connection_id="c1", correlation_id="corr")
    second = services.call_stream_opened(connection_id="c1")
    assert first["id"] == second["id"]
    call = Call.objects.get()
    assert call.state == CallState.CONNECTED
    assert call.correlation_id == "corr"


def test_utterance_record_is_idempotent(django_capture_on_commit_callbacks: Any) -> None:
    """A second record of the same result returns the stored one and broadcasts nothing."""
    call = services.call_stream_opened(connection_id="c2")
    with django_capture_on_commit_callbacks() as callbacks:
        caption, created = _record(call["id"])
    assert created
    assert len(callbacks) == 2  # the new participant's call update, then the caption
    with django_capture_on_commit_callbacks() as callbacks:
        again, created_again = _record(call["id"], text="Hello!")  # same offset and speaker
    assert not created_again
    assert callbacks == []
    assert again["utterance_id"] == caption["utterance_id"]
    assert Utterance.objects.get().text == "Hello."


def test_same_offset_different_speakers_are_different_utterances() -> None:
    """Two people can start talking at the same tick."""
    call = services.call_stream_opened(connection_id="c3")
    _record(call["id"])
    _record(call["id"], participant_raw_id="8:acs:agent")
    assert Utterance.objects.count() == 2
    roles = set(Participant.objects.values_list("role", flat=True))
    assert roles == {ParticipantRole.CUSTOMER, ParticipantRole.AGENT}


def test_results_without_offset_dedupe_on_text() -> None:
    """A packet without an offset is keyed by its text, so an exact replay is still one row."""
    call = services.call_stream_opened(connection_id="c4")
    _record(call["id"], offset_ticks=None)
    _record(call["id"], offset_ticks=None)
    _record(call["id"], offset_ticks=None, text="Something else.")
    assert Utterance.objects.count() == 2


def test_broadcast_waits_for_commit_and_is_dropped_on_rollback(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Nothing is sent for an utterance whose transaction rolls back."""
    call = services.call_stream_opened(connection_id="c5")
    def record_then_fail() -> None:
        with transaction.atomic():
            _record(call["id"])
            raise RuntimeError("roll back")

    with patch("streaming.events.send_event") as send, pytest.raises(RuntimeError):
        record_then_fail()
    send.assert_not_called()
    assert not Utterance.objects.exists()

    with (
        django_capture_on_commit_callbacks(execute=True),
        patch("streaming.events.send_event") as send,
    ):
        _record(call["id"])
    sent_types = [c.args[1]["type"] for c in send.call_args_list]
    assert sent_types == ["call.participant", "caption.final"]


def test_stream_closed_ends_the_call_once() -> None:
    """Closing twice keeps the first end time."""
    call = services.call_stream_opened(connection_id="c6")
    services.call_stream_closed(call_id=call["id"])
    ended_at = Call.objects.get().ended_at
    services.call_stream_closed(call_id=call["id"])
    assert Call.objects.get().ended_at == ended_at
    assert Call.objects.get().state == CallState.ENDED
