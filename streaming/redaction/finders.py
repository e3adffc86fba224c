"""Finders: where in a (normalized) text a card number, IBAN, national id, e-mail address,
phone number or configured pattern is. Each returns ``(start, end, kind)`` spans.

Numbers are found as *windows* of consecutive chunks (letters and digits) joined by one space
or hyphen (or a pause's comma and space): "4532 0151 1283 0366" is four chunks, and a window of
them is a card when its 13 to 19 digits pass the Luhn check. Any other separator (a comma
without a space, a colon, a full stop) ends a number, so amounts ("1,250.00") and times
("10:30") never join into one. Pure: no Django.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import phonenumbers
from stdnum import iban, luhn

Span = tuple[int, int, str]

CARD = "card"
IBAN = "iban"
NATIONAL_ID = "national_id"
EMAIL = "email"
PHONE = "phone"
KINDS = (CARD, IBAN, NATIONAL_ID, EMAIL, PHONE)

# National ids checked by default: python-stdnum module names (``stdnum.<country>.<id>``).
DEFAULT_NATIONAL_IDS = (
    "us.ssn",
    "es.dni",
    "es.nie",
    "fr.nir",
    "it.codicefiscale",
    "de.idnr",
    "br.cpf",
    "in_.aadhaar",
)
# The lengths (letters and digits run together) each default validator can accept: a window
# of another length is not handed to it, which saves most of the validators' work.
ID_LENGTHS: dict[str, frozenset[int]] = {
    "us.ssn": frozenset({9}),
    "es.dni": frozenset({9}),
    "es.nie": frozenset({9}),
    "fr.nir": frozenset({15}),
    "it.codicefiscale": frozenset({11, 16}),
    "de.idnr": frozenset({11}),
    "br.cpf": frozenset({11}),
    "in_.aadhaar": frozenset({12}),
}
MAX_NUMBER = 34  # characters of the longest number found (an IBAN)
MAX_WINDOW = 10  # chunks in one number: an IBAN read in groups of two is the longest
MIN_PARTIAL_DIGITS = 6  # interims: a number this long may be a card still being read out
NUMBER = "number"  # what an interim's unchecked run of digits reads as
MIN_ID_DIGITS = 8  # a national id has at least this many digits: short numbers never are

_CHUNK = re.compile(r"[A-Za-z0-9]+")
_JOIN = re.compile(r"[ \-]|, ")  # between two chunks of one number: one space or hyphen
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+", re.UNICODE)
_TLDS = (
    "com|net|org|edu|gov|mil|int|info|biz|io|co|uk|us|ca|au|de|fr|es|it|nl|be|ch|at|se|no|dk"
    "|fi|ie|pt|pl|cz|in|jp|cn|br|mx|nz|za|eu|me|tv|ly|ai|app|dev"
)
# "john dot smith at example dot com", "john at example.com", "john@example dot co dot uk"
_SPOKEN_EMAIL = re.compile(
    r"\b[\w+\-]+(?:(?:\s+(?:dot|underscore|dash|hyphen)\s+|[._\-])[\w+\-]+)*"
    r"(?:\s+at\s+|\s*@\s*)"
    r"[\w\-]+(?:(?:\s+dot\s+|\.)[\w\-]+)*(?:\s+dot\s+|\.)(?:" + _TLDS + r")\b",
    re.IGNORECASE | re.UNICODE,
)


@dataclass(frozen=True)
class Rules:
    """What redaction finds: the kinds on, national id validators, phone region, patterns."""

    kinds: frozenset[str] = frozenset(KINDS)
    national_ids: tuple[str, ...] = DEFAULT_NATIONAL_IDS
    region: str = "US"
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    _validators: tuple[tuple[ModuleType, frozenset[int] | None], ...] = field(
        default=(), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        unknown = self.kinds - set(KINDS)
        if unknown:
            raise ValueError(f"unknown redaction kinds: {', '.join(sorted(unknown))}")
        modules = []
        for name in self.national_ids:
            try:
                modules.append((importlib.import_module(f"stdnum.{name}"), ID_LENGTHS.get(name)))
            except ImportError as error:
                raise ValueError(f"no national id validator stdnum.{name}") from error
        object.__setattr__(self, "_validators", tuple(modules))

    @property
    def validators(self) -> tuple[tuple[ModuleType, frozenset[int] | None], ...]:
        """Each validator with the lengths it can accept (None: any)."""
        return self._validators


def _windows(text: str) -> Iterator[tuple[int, int, str, int]]:
    """Every run of 1..MAX_WINDOW chunks joined by one separator, starting at a chunk with a
    digit (every number here has one in its first chunk: "4532", "GB82", "12345678Z"):
    (start, end, compact, digits in it). Nothing longer than an IBAN (34) is tried."""
    chunks = list(_CHUNK.finditer(text))
    digits = [sum(ch.isdigit() for ch in c.group()) for c in chunks]
    for i, first in enumerate(chunks):
        if not digits[i]:
            continue
        compact, count = first.group(), digits[i]
        yield first.start(), first.end(), compact, count
        for j in range(i + 1, min(i + MAX_WINDOW, len(chunks))):
            if not _JOIN.fullmatch(text, chunks[j - 1].end(), chunks[j].start()):
                break
            compact += chunks[j].group()
            count += digits[j]
            if len(compact) > MAX_NUMBER:
                break
            yield first.start(), chunks[j].end(), compact, count


def find_numbers(text: str, rules: Rules) -> list[Span]:
    """Cards, IBANs and national ids among the text's chunk windows."""
    found: list[Span] = []
    for start, end, compact, digits in _windows(text):
        kind = _number_kind(compact, digits, rules)
        if kind is not None:
            found.append((start, end, kind))
    return found


def _number_kind(compact: str, digits: int, rules: Rules) -> str | None:
    """What a window's letters and digits are, run together, if anything."""
    all_digits = digits == len(compact)
    is_card = all_digits and 13 <= digits <= 19 and luhn.is_valid(compact)
    if is_card and CARD in rules.kinds:
        return CARD
    iban_like = 15 <= len(compact) <= 34 and compact[:2].isalpha() and compact[2:4].isdigit()
    if iban_like and IBAN in rules.kinds and iban.is_valid(compact.upper()):
        return IBAN
    id_like = digits >= MIN_ID_DIGITS and len(compact) <= 20
    if id_like and NATIONAL_ID in rules.kinds:
        size = len(compact)
        valid = any(
            _valid(module, compact)
            for module, lengths in rules.validators
            if lengths is None or size in lengths
        )
        return NATIONAL_ID if valid else None
    return None


def _valid(module: ModuleType, compact: str) -> bool:
    try:
        return bool(module.is_valid(compact.upper()))
    except Exception:  # a validator's own trouble with odd input is "not valid"
        return False


def find_partial_numbers(text: str) -> list[Span]:
    """Interims: any run of at least ``MIN_PARTIAL_DIGITS`` digits, which may be the first
    part of a card number or id whose rest is not yet spoken, and so cannot be checked."""
    return [
        (start, end, NUMBER)
        for start, end, compact, digits in _windows(text)
        if digits == len(compact) and digits >= MIN_PARTIAL_DIGITS
    ]


# Interims: an address still being spoken, its words joined by "dot" ("jane dot doe"), before
# the "at" and top-level domain that would make it certain. A bare "<word> at <word>" is not
# taken: it is ordinary speech ("meet me at noon") far more often than an address.
_PARTIAL_EMAIL = re.compile(r"\b[\w+\-]+(?:\s+dot\s+[\w+\-]+)+\b", re.IGNORECASE)


def find_partial_emails(text: str) -> list[Span]:
    """Interims: an e-mail address whose end is not yet spoken."""
    return [(m.start(), m.end(), EMAIL) for m in _PARTIAL_EMAIL.finditer(text)]


def find_emails(text: str, rules: Rules) -> list[Span]:
    if EMAIL not in rules.kinds:
        return []
    spans = [(m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(text)]
    spans += [(m.start(), m.end(), EMAIL) for m in _SPOKEN_EMAIL.finditer(text)]
    return spans


def find_phones(text: str, rules: Rules) -> list[Span]:
    if PHONE not in rules.kinds:
        return []
    matcher = phonenumbers.PhoneNumberMatcher(
        text, rules.region, leniency=phonenumbers.Leniency.VALID
    )
    return [(m.start, m.end, PHONE) for m in matcher]


def find_patterns(text: str, rules: Rules) -> list[Span]:
    return [
        (m.start(), m.end(), name)
        for name, pattern in rules.patterns
        for m in pattern.finditer(text)
        if m.end() > m.start()
    ]


def find_all(text: str, rules: Rules) -> list[Span]:
    return [
        *find_numbers(text, rules),
        *find_emails(text, rules),
        *find_phones(text, rules),
        *find_patterns(text, rules),
    ]


def merge(spans: Sequence[Span]) -> list[Span]:
    """Overlapping spans as one, named by the longest among them."""
    merged: list[tuple[int, int, str, int]] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            s, e, k, length = merged[-1]
            if end - start > length:
                k, length = kind, end - start
            merged[-1] = (s, max(e, end), k, length)
        else:
            merged.append((start, end, kind, end - start))
    return [(s, e, k) for s, e, k, _ in merged]
