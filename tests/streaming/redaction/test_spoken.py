"""Spoken digits written as digits, mapped back to the words they came from."""

from __future__ import annotations

import pytest

from streaming.redaction.spoken import normalize


@pytest.mark.parametrize(
    ("said", "written"),
    [
        ("four five three two", "4532"),
        ("four-five, three two", "4532"),
        ("4532 zero one five one", "4532 0151"),
        ("double five triple nine", "55999"),
        ("oh four oh", "040"),
        ("oh I see", "oh I see"),
        ("someone at nine o'clock", "someone at 9 o'clock"),
        ("Four FIVE", "45"),
    ],
)
def test_spoken_digits_are_written_as_digits(said: str, written: str) -> None:
    assert normalize(said).text == written


def test_a_span_of_the_normalized_text_maps_back_to_the_words() -> None:
    said = "card four five three two ok"
    norm = normalize(said)
    start = norm.text.index("4532")
    begin, end = norm.source_span(start, start + 4)
    assert said[begin:end] == "four five three two"
