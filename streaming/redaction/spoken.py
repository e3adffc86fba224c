"""Spoken digits written as digits, with a map back to the text they came from.

A recognizer writes a card number read aloud as "four five three two ..." or "4532 ..." or a
mix; every finder works on one normalized text in which each run of spoken digits is written as
digits ("double five" as "55"), and a finder's span maps back to the original characters.
Pure: no Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "nought": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
REPEATS = {"double": 2, "triple": 3}
# "oh" and "o" are digits only next to another digit: "oh I see" keeps its "oh".
WEAK = {"oh", "o"}
# What may stand between two spoken digits of one run: a space, a hyphen, a pause's comma.
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
_BETWEEN = re.compile(r"[\s,\-]*")


@dataclass(frozen=True, slots=True)
class Normalized:
    """``text`` with spoken digits as digits; ``origin[i]`` is the original span of char i."""

    text: str
    origin: tuple[tuple[int, int], ...]

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The original characters a span of the normalized text came from."""
        spans = self.origin[start:end]
        return min(s for s, _ in spans), max(e for _, e in spans)


def _digit_tokens(text: str) -> list[tuple[int, int, str]]:
    """Each spoken digit (or ``double``/``triple`` + digit) as (start, end, digits)."""
    tokens = list(_TOKEN.finditer(text))
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        word = tokens[i].group().lower()
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        gap_ok = nxt is not None and _BETWEEN.fullmatch(text, tokens[i].end(), nxt.start())
        if word in REPEATS and nxt is not None and gap_ok and nxt.group().lower() in DIGIT_WORDS:
            found.append(
                (tokens[i].start(), nxt.end(), DIGIT_WORDS[nxt.group().lower()] * REPEATS[word])
            )
            i += 2
            continue
        if word in DIGIT_WORDS and not _is_glued(text, tokens[i].start(), tokens[i].end()):
            found.append((tokens[i].start(), tokens[i].end(), DIGIT_WORDS[word]))
        i += 1
    return _drop_lone_weak(text, found)


def _is_glued(text: str, start: int, end: int) -> bool:
    """A digit word inside a longer word ("someone", "o'clock") is no digit."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return before.isalnum() or before == "'" or after.isalnum() or after == "'"


def _drop_lone_weak(text: str, found: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Keep "oh"/"o" only when a neighbouring token is a digit too."""
    kept = []
    for k, (start, end, digits) in enumerate(found):
        word = text[start:end].lower()
        if word in WEAK:
            prev_ok = k > 0 and _joined(text, found[k - 1][1], start)
            next_ok = k + 1 < len(found) and _joined(text, end, found[k + 1][0])
            if not (prev_ok or next_ok):
                continue
        kept.append((start, end, digits))
    return kept


def _joined(text: str, end: int, start: int) -> bool:
    return _BETWEEN.fullmatch(text, end, start) is not None


def normalize(text: str) -> Normalized:
    """``text`` with each run of spoken digits written as one number.

    Consecutive spoken digits join with nothing between them ("four five" -> "45"); a spoken
    digit next to written digits keeps its separator ("4532 zero one" -> "4532 01").
    """
    out: list[str] = []
    origin: list[tuple[int, int]] = []
    cursor = 0
    previous_end: int | None = None
    for start, end, digits in _digit_tokens(text):
        if previous_end is not None and previous_end == cursor and _joined(text, cursor, start):
            cursor = start  # the separator between two spoken digits is dropped
        for i in range(cursor, start):
            out.append(text[i])
            origin.append((i, i + 1))
        for ch in digits:
            out.append(ch)
            origin.append((start, end))
        cursor = previous_end = end
    for i in range(cursor, len(text)):
        out.append(text[i])
        origin.append((i, i + 1))
    return Normalized(text="".join(out), origin=tuple(origin))
