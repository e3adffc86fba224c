"""Redaction of one utterance: its text and its words, masked alike. Pure: no Django.

The finders run twice: over the text (spoken digits normalized) and over the words joined by
spaces, since a recognizer's display text ("4532 0151...") and its words ("four", "five"...)
need not agree. A word is masked when it lies in a span found in either; the masked words'
times are the spans to silence in the audio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from streaming.acs.packets import Word
from streaming.redaction.finders import (
    CARD,
    EMAIL,
    Rules,
    Span,
    find_all,
    find_partial_emails,
    find_partial_numbers,
    merge,
)
from streaming.redaction.spoken import normalize


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """Where on the utterance's timeline something was masked (100-ns ticks)."""

    kind: str
    start_ticks: int
    end_ticks: int


@dataclass(frozen=True, slots=True)
class Redaction:
    """What :func:`redact` made of an utterance.

    ``spans`` are ``(start, end, kind)`` offsets in the *original* text; ``times`` the word-time
    spans masked (merged where they touch); ``kinds`` what was found, sorted.
    """

    text: str
    words: tuple[Word, ...]
    spans: tuple[Span, ...]
    times: tuple[TimeSpan, ...]

    @property
    def redacted(self) -> bool:
        return bool(self.spans)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted({kind for _, _, kind in self.spans}))


def label(kind: str) -> str:
    """What a masked span reads as: ``[card]``, ``[email]``..."""
    return f"[{kind}]"


def find_spans(text: str, rules: Rules, *, interim: bool = False) -> list[Span]:
    """Spans of ``text`` to mask, found on its normalized form and mapped back; an interim's
    long runs of digits and addresses half spoken too (``find_partial_numbers``,
    ``find_partial_emails``)."""
    norm = normalize(text)
    found = find_all(norm.text, rules)
    if interim and CARD in rules.kinds:
        found += find_partial_numbers(norm.text)
    if interim and EMAIL in rules.kinds:
        found += find_partial_emails(norm.text)
    return merge([(*norm.source_span(s, e), kind) for s, e, kind in found])


def mask(text: str, spans: Sequence[Span]) -> str:
    out, cursor = [], 0
    for start, end, kind in spans:
        out.append(text[cursor:start])
        out.append(label(kind))
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _word_positions(text: str, words: Sequence[Word]) -> list[tuple[int, int] | None]:
    """Each word's place in ``text``, found in order (case-insensitive); None if not there."""
    lowered = text.lower()
    cursor = 0
    found: list[tuple[int, int] | None] = []
    for word in words:
        needle = word.text.strip().lower()
        at = lowered.find(needle, cursor) if needle else -1
        if at < 0:
            found.append(None)
            continue
        found.append((at, at + len(needle)))
        cursor = at + len(needle)
    return found


def _overlap(place: tuple[int, int], spans: Sequence[Span]) -> str | None:
    for start, end, kind in spans:
        if place[0] < end and start < place[1]:
            return kind
    return None


def redact(
    text: str,
    words: Sequence[Word],
    rules: Rules,
    *,
    offset_ticks: int | None = None,
    duration_ticks: int | None = None,
    interim: bool = False,
) -> Redaction:
    """Mask what ``rules`` find in an utterance's text and words.

    ``offset_ticks``/``duration_ticks`` are the utterance's own: when the text had something
    masked and no word can say where (no words, or none matched), the whole utterance is the
    time span to silence. An ``interim`` result's text is cut short: runs of digits that may be
    the start of a card number are masked too.
    """
    spans = find_spans(text, rules, interim=interim)
    joined = " ".join(w.text for w in words)
    if not words:
        word_spans: list[Span] = []
    elif joined == text:  # a recognizer's words are often its text: found once
        word_spans = spans
    else:
        word_spans = find_spans(joined, rules, interim=interim)
    kinds: list[str | None] = [None] * len(words)
    for i, place in enumerate(_word_positions(text, words)):
        if place is not None:
            kinds[i] = _overlap(place, spans)
    cursor = 0
    for i, word in enumerate(words):
        place = (cursor, cursor + len(word.text))
        cursor += len(word.text) + 1
        kinds[i] = kinds[i] or _overlap(place, word_spans)
    text_spans = list(spans)
    unseen = {k for _, _, k in word_spans} - {k for _, _, k in spans}
    if unseen and text:
        # The words held what the text did not show (its display form differs): the text is
        # masked wholesale rather than left holding what the words said.
        text_spans = [(0, len(text), sorted(unseen)[0])]
    masked_words = tuple(
        dataclasses.replace(w, text=label(k)) if k else w for w, k in zip(words, kinds, strict=True)
    )
    return Redaction(
        text=mask(text, text_spans),
        words=masked_words,
        spans=tuple(text_spans or word_spans),
        times=_times(words, kinds, bool(text_spans), offset_ticks, duration_ticks),
    )


def _times(
    words: Sequence[Word],
    kinds: Sequence[str | None],
    text_masked: bool,
    offset_ticks: int | None,
    duration_ticks: int | None,
) -> tuple[TimeSpan, ...]:
    times: list[TimeSpan] = []
    previous: str | None = None  # the kind of the word before, masked or not
    for word, kind in zip(words, kinds, strict=True):
        if kind is None or word.offset is None:
            previous = None
            continue
        start, end = word.offset, word.offset + (word.duration or 0)
        if times and previous == kind:  # the next word of the same span: one stretch
            last = times[-1]
            times[-1] = TimeSpan(kind, min(last.start_ticks, start), max(end, last.end_ticks))
        else:
            times.append(TimeSpan(kind, start, end))
        previous = kind
    if text_masked and not times and offset_ticks is not None:
        end = offset_ticks + (duration_ticks or 0)
        times.append(TimeSpan("utterance", offset_ticks, end))
    return tuple(times)
