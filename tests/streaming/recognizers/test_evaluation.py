"""Word error rate and the normalisation that makes recognizers' spellings comparable."""

from __future__ import annotations

import pytest

from streaming.recognizers.evaluation import normalize, word_error_rate, word_errors


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("Yes, it is 4472918.", "yes it is four four seven two nine one eight"),
        ("between 2 and 4", "between two and four"),
        ("25 minutes", "twenty five minutes"),
        ("twenty-five minutes", "twenty five minutes"),
        ("the 2nd and 21st of May", "the second and twenty first of may"),
        ("the 12th, 20th and 3rd", "the twelfth twentieth and third"),
        ("Mr. Smith and Mrs. Jones saw Dr. Lee", "mister smith and missus jones saw doctor lee"),
        ("Mr Smith", "mister smith"),
        ("OK, 50% off", "okay fifty percent off"),
        ("1,250 dollars", "one two five zero dollars"),
        ("Don't stop.", "don't stop"),
    ],
)
def test_written_and_spoken_forms_normalise_alike(written: str, said: str) -> None:
    assert normalize(written) == said.split()


def test_word_errors_count_substitutions_deletions_and_insertions() -> None:
    assert word_errors(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert word_errors(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert word_errors(["a", "b", "c"], ["a", "c"]) == 1
    assert word_errors(["a", "b"], ["a", "b", "c", "d"]) == 2


def test_word_error_rate_is_per_reference_word() -> None:
    assert word_error_rate("Yes, it is four four seven two.", "yes it is 4472") == 0.0
    assert word_error_rate("four words are here", "four words were here") == 0.25
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "noise") == 1.0
