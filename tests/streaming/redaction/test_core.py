"""Redaction of one utterance: what is masked, what is left alone, words and times alike."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from streaming.acs.packets import Word
from streaming.redaction import Rules, redact

RULES = Rules()
SPOKEN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def masked(text: str, **kwargs: object) -> str:
    return redact(text, [], RULES, **kwargs).text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("my card is 4532 0151 1283 0366 thanks", "my card is [card] thanks"),
        ("card 4532015112830366.", "card [card]."),
        ("it's 4532-0151-1283-0366", "it's [card]"),
        ("it's 4532, 0151, 1283, 0366 ok", "it's [card] ok"),
        ("amex 3782 822463 10005", "amex [card]"),
        ("5555 5555 5555 4444", "[card]"),
        (
            "four five three two zero one five one one two eight three zero three six six",
            "[card]",
        ),
        ("four five three two 0151 1283 zero three six six", "[card]"),
        ("double five double five 5555 5555 4444", "[card]"),
        ("iban GB82 WEST 1234 5698 7654 32 please", "iban [iban] please"),
        ("DE89370400440532013000", "[iban]"),
        ("de89 3704 0044 0532 0130 00", "[iban]"),
        ("my ssn is 536-90-4399", "my ssn is [national_id]"),
        ("dni 12345678Z", "dni [national_id]"),
        ("write to jane.doe+calls@example.co.uk now", "write to [email] now"),
        ("it is john dot smith at example dot com", "it is [email]"),
        ("jane at example.org", "[email]"),
        ("call me on +1 650-253-0000", "call me on [phone]"),
        ("or (650) 253-0000 after six", "or [phone] after six"),
        ("six five zero two five three zero zero zero zero", "[phone]"),
        ("London is +44 20 7946 0958", "London is [phone]"),
    ],
)
def test_what_is_found_is_masked(said: str, expected: str) -> None:
    assert masked(said) == expected


@pytest.mark.parametrize(
    "said",
    [
        "meet at 10:30, or at 5 pm",
        "it costs $1,250.00 and I have 3 kids",
        "oh I see, one moment please",
        "someone will call at nine o'clock",
        "order 12345 from 2024",
        "room 1205 on floor 12",
        "4532 0151 1283 0367",  # Luhn fails
        "GB82 WEST 1234 5698 7654 33",  # IBAN check digits fail
        "the total is 19.99 and 7 items",
        "I'll be at home at 6",
        "call 555 0100",
        "reference ABC-123",
    ],
)
def test_ordinary_text_and_numbers_are_left_alone(said: str) -> None:
    assert masked(said) == said


def test_words_are_masked_with_the_text_and_their_times_are_the_span() -> None:
    """The display text and the words agree: the words inside the span are masked, and the
    time span runs from the first masked word's start to the last one's end."""
    said = "card is 4532 0151 1283 0366 ok"
    words = [Word(w, i * 1000, 800) for i, w in enumerate(said.split())]
    result = redact(said, words, RULES, offset_ticks=0, duration_ticks=7000)
    assert result.text == "card is [card] ok"
    assert [w.text for w in result.words] == ["card", "is", *["[card]"] * 4, "ok"]
    assert [(t.kind, t.start_ticks, t.end_ticks) for t in result.times] == [("card", 2000, 5800)]
    assert result.kinds == ("card",)
    assert result.spans == ((8, 27, "card"),)


def test_spoken_words_masked_where_the_display_text_has_digits() -> None:
    """Azure-style: display text with digits, lexical words spoken: both are masked."""
    words = [
        Word(w, i * 1000, 900)
        for i, w in enumerate(
            ["my", "card", "is", *(SPOKEN[int(d)] for d in "4532015112830366")]
        )
    ]
    result = redact("My card is 4532 0151 1283 0366.", words, RULES)
    assert result.text == "My card is [card]."
    assert [w.text for w in result.words[:3]] == ["my", "card", "is"]
    assert {w.text for w in result.words[3:]} == {"[card]"}
    assert [(t.start_ticks, t.end_ticks) for t in result.times] == [(3000, 18900)]


def test_what_only_the_words_show_masks_the_whole_text() -> None:
    """Words that hold a number the display text does not show leave nothing of the text."""
    spoken = "five five five five five five five five five five five five four four four four"
    words = [Word(w, i, 1) for i, w in enumerate(spoken.split())]
    result = redact("my card number", words, RULES)
    assert result.text == "[card]"
    assert all(w.text == "[card]" for w in result.words)


def test_no_words_means_the_whole_utterance_is_the_time_span() -> None:
    result = redact("4532015112830366", [], RULES, offset_ticks=100, duration_ticks=50)
    assert [(t.kind, t.start_ticks, t.end_ticks) for t in result.times] == [
        ("utterance", 100, 150)
    ]


def test_nothing_found_changes_nothing() -> None:
    words = [Word("hello", 0, 10), Word("there", 10, 10)]
    result = redact("hello there", words, RULES, offset_ticks=0, duration_ticks=20)
    assert (result.text, result.words, result.spans, result.times) == (
        "hello there",
        tuple(words),
        (),
        (),
    )
    assert not result.redacted


def test_only_the_kinds_asked_for_are_masked() -> None:
    rules = Rules(kinds=frozenset({"email"}))
    said = "4532 0151 1283 0366 or jane@example.com"
    assert redact(said, [], rules).text == "4532 0151 1283 0366 or [email]"


def test_configured_patterns_read_as_their_name() -> None:
    rules = Rules(patterns=(("policy", re.compile(r"POL-\d{6}")),))
    assert redact("policy POL-123456 ok", [], rules).text == "policy [policy] ok"


def test_an_unknown_kind_or_validator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown redaction kinds"):
        Rules(kinds=frozenset({"cards"}))
    with pytest.raises(ValueError, match=r"stdnum\.xx\.nothing"):
        Rules(national_ids=("xx.nothing",))


def test_an_interim_masks_a_number_still_being_read() -> None:
    """An interim's digits cannot be Luhn-checked yet: six or more in a row are masked."""
    assert masked("my card is four five three two zero one", interim=True) == "my card is [number]"
    said = "my card is four five three two zero one"
    assert masked(said) == said  # a final is checked: six digits are no card
    assert masked("order 12345", interim=True) == "order 12345"


def _with_check_digit(body: str) -> str:
    return body + luhn.calc_check_digit(body)


card_bodies = st.text(alphabet="0123456789", min_size=15, max_size=15).filter(
    lambda s: s[0] != "0"
)


@settings(max_examples=150, deadline=None)
@given(card_bodies, st.sampled_from(["groups", "spoken", "plain", "hyphens"]))
def test_every_luhn_valid_card_is_masked_however_it_is_written(body: str, style: str) -> None:
    number = _with_check_digit(body)
    if style == "groups":
        said = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    elif style == "hyphens":
        said = "-".join(number[i : i + 4] for i in range(0, 16, 4))
    elif style == "spoken":
        said = " ".join(SPOKEN[int(d)] for d in number)
    else:
        said = number
    result = redact(f"my card is {said} thanks", [], RULES)
    assert result.text == "my card is [card] thanks"
    assert not re.search(r"\d", result.text)


@settings(max_examples=150, deadline=None)
@given(card_bodies)
def test_a_luhn_invalid_number_is_not_a_card(body: str) -> None:
    good = _with_check_digit(body)
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert "card" not in redact(f"number {bad} ok", [], RULES).kinds


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=99_999),
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=999_999),
    st.integers(min_value=0, max_value=99),
)
def test_ordinary_numbers_times_and_amounts_are_never_masked(
    count: int, hour: int, minute: int, dollars: int, cents: int
) -> None:
    said = (
        f"I have {count} items, see you at {hour}:{minute:02d}, "
        f"the bill is ${dollars:,}.{cents:02d}"
    )
    assert masked(said) == said


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_redaction_is_idempotent_and_never_fails(said: str) -> None:
    once = masked(said)
    assert masked(once) == once


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("email jane dot doe", "email [email]"),
        ("meet me at noon", "meet me at noon"),
        ("I looked at it", "I looked at it"),
    ],
)
def test_an_interim_masks_an_address_half_spoken(said: str, expected: str) -> None:
    assert masked(said, interim=True) == expected

