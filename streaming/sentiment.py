"""The sentiment of what was said: ACS's, or Callsite's own offline lexicon scorer's.

``CALLSITE_SENTIMENT`` chooses (docs/analytics.md#sentiment):

* ``lexicon`` (default): ACS's sentiment where ACS gives one; every other final (calls
  Callsite transcribes itself, ACS finals without one) is scored offline by VADER
  (``vaderSentiment``, whose lexicon ships in its wheel: nothing is downloaded);
* ``acs``: only what ACS gives;
* ``none``: no sentiment is kept, not even ACS's.

Each judgement says whose it is (``SentimentSource``), so a page or an export never passes
the lexicon's guess off as ACS's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from streaming.models import Sentiment, SentimentSource

MODES = ("lexicon", "acs", "none")
# VADER's own thresholds on its compound score (its README: positive >= 0.05, negative <= -0.05).
POSITIVE_FROM = 0.05
NEGATIVE_TO = -0.05


@dataclass(frozen=True, slots=True)
class Judgement:
    """An utterance's sentiment, its lexicon score (None from ACS) and who judged it."""

    sentiment: str
    score: float | None
    source: str


@functools.cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def lexicon_judgement(text: str) -> Judgement:
    """The offline scorer's sentiment of ``text`` (about 0.1 ms for a sentence)."""
    score = round(float(_analyzer().polarity_scores(text)["compound"]), 4)
    if score >= POSITIVE_FROM:
        sentiment = Sentiment.POSITIVE
    elif score <= NEGATIVE_TO:
        sentiment = Sentiment.NEGATIVE
    else:
        sentiment = Sentiment.NEUTRAL
    return Judgement(sentiment.value, score, SentimentSource.LEXICON.value)


def judge(text: str, acs_sentiment: str | None, *, final: bool) -> Judgement | None:
    """The sentiment to keep for a result: ACS's, else (finals only) the lexicon's."""
    mode = settings.CALLSITE_SENTIMENT
    if mode == "none":
        return None
    if acs_sentiment is not None:
        return Judgement(acs_sentiment, None, SentimentSource.ACS.value)
    if mode == "lexicon" and final and text.strip():
        return lexicon_judgement(text)
    return None


def sentiment_value(sentiment: str | None, score: float | None) -> float | None:
    """A number for a trend: the lexicon's score, else +1 / 0 / -1 (mixed: 0)."""
    if score is not None:
        return score
    return {"positive": 1.0, "negative": -1.0, "neutral": 0.0, "mixed": 0.0}.get(sentiment or "")
