"""Word error rate, for judging recognizers against a reference transcript.

Both texts are normalised first, so that writing the same words differently is not an error:

* lower case, punctuation dropped, hyphens split words ("twenty-five" is "twenty five");
* numbers are spelled out as they are read: one or two digits as a number ("4" is "four",
  "25" is "twenty five", "2nd" is "second"), longer runs digit by digit ("4472918" is "four
  four seven two nine one eight": account and phone numbers), a thousands comma ignored;
* titles and a few signs as they are said: "Mr." is "mister", "Mrs." "missus", "Dr."
  "doctor", "%" "percent", "&" "and"; "OK" is "okay".

Whisper writes numbers and titles the way a person would; pocketsphinx spells every word. The
normalisation is what makes their error rates comparable (docs/benchmarks.md).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9']+")
_ABBREVIATIONS = {
    r"\bmr\.?(?=\s|$)": "mister",
    r"\bmrs\.?(?=\s|$)": "missus",
    r"\bdr\.?(?=\s|$)": "doctor",
    r"%": " percent",
    r"&": " and ",
    r"\bok\b": "okay",
}
_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_NUMBER = re.compile(r"^(\d+)(st|nd|rd|th)?$")


def _spoken(number: str, ordinal: bool) -> list[str]:
    if len(number) > 2:
        return [_ONES[int(digit)] for digit in number]
    value = int(number)
    words = [_ONES[value]] if value < 20 else [_TENS[value // 10]]
    if value >= 20 and value % 10:
        words.append(_ONES[value % 10])
    if ordinal:
        last = words[-1]
        if last in _ORDINALS:
            words[-1] = _ORDINALS[last]
        elif last.endswith("y"):
            words[-1] = last[:-1] + "ieth"
        else:
            words[-1] = last + "th"
    return words


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers and titles spelled out (see above)."""
    text = text.lower()
    for pattern, spoken in _ABBREVIATIONS.items():
        text = re.sub(pattern, spoken, text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    words: list[str] = []
    for token in _TOKEN.findall(text.replace("-", " ")):
        match = _NUMBER.match(token)
        if match is None:
            words.append(token)
        else:
            words.extend(_spoken(match.group(1), ordinal=match.group(2) is not None))
    return words


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions turning ``reference`` into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word errors divided by the reference's word count (0.0 for two empty texts)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else float(len(hyp))
    return word_errors(ref, hyp) / len(ref)
