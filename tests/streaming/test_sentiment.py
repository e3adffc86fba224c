"""The offline sentiment scorer and the choice of whose sentiment is kept."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from streaming import sentiment


def test_the_lexicon_ships_in_the_wheel_and_loads_without_a_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import vaderSentiment.vaderSentiment as vader

    assert (Path(vader.__file__).parent / "vader_lexicon.txt").stat().st_size > 100_000

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the scorer tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    sentiment._analyzer.cache_clear()
    angry = sentiment.lexicon_judgement("This is ridiculous, I am furious and want a refund now!")
    assert (angry.sentiment, angry.source) == ("negative", "lexicon")
    assert angry.score is not None
    assert angry.score <= -0.5
    happy = sentiment.lexicon_judgement("Thank you so much, you have been very helpful.")
    assert happy.sentiment == "positive"
    assert sentiment.lexicon_judgement("The meeting is on Tuesday.").sentiment == "neutral"


@pytest.mark.parametrize(
    ("mode", "acs", "final", "expected"),
    [
        ("lexicon", "mixed", True, ("mixed", "acs")),
        ("lexicon", None, True, ("negative", "lexicon")),
        ("lexicon", None, False, None),  # interims are not scored
        ("acs", None, True, None),
        ("acs", "negative", False, ("negative", "acs")),
        ("none", "negative", True, None),
    ],
)
def test_whose_sentiment_is_kept(
    settings: Any, mode: str, acs: str | None, final: bool, expected: tuple[str, str] | None
) -> None:
    settings.CALLSITE_SENTIMENT = mode
    judged = sentiment.judge("I hate this, it is awful.", acs, final=final)
    assert (None if judged is None else (judged.sentiment, judged.source)) == expected
