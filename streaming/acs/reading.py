"""Reading the fields of an ACS packet: types checked, and a reason for every refusal.

The field readers of ``streaming.acs.packets``: each takes a lower-cased JSON object, the
path so far (for the reason) and a field name, and returns the value or raises the one error
type, ``PacketError``, saying what was expected and what came. Pure stdlib, no Django.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TypeAlias

MAX_INT = 2**63 - 1  # ticks and rates are stored in a BigIntegerField
SHOW_CHARS = 40

JsonMap: TypeAlias = dict[str, object]


class PacketError(ValueError):
    """A frame that is not a valid ACS streaming packet; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: object) -> str:
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(value[: SHOW_CHARS + 1] if isinstance(value, str) else value)
    return text if len(text) <= SHOW_CHARS else text[: SHOW_CHARS - 3] + "..."


def refusal(name: str, expected: str, value: object) -> PacketError:
    return PacketError(f"{name} must be {expected}, got {show(value)}")


def lowered(obj: JsonMap) -> JsonMap:
    # Of keys that differ only in case the last wins, as json.loads does for exact duplicates.
    return {key.lower(): value for key, value in obj.items()}


def opt_str(m: JsonMap, p: str, field: str) -> str | None:
    value = m.get(field.lower())
    if value is None or isinstance(value, str):
        return value
    raise refusal(p + field, "a string", value)


# Text a database can store: PostgreSQL refuses NUL in text, and no UTF-8 (so neither
# database) can hold a lone surrogate, which JSON's \ud800 escapes can produce.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_PARTICIPANT_ID = 300  # Participant.raw_id


def stored_str(m: JsonMap, p: str, field: str) -> str | None:
    """A string that is stored: one with NUL or a lone surrogate is rejected here, as a bad
    packet with its reason, instead of failing later in the database."""
    value = opt_str(m, p, field)
    if value is not None and UNSTORABLE.search(value):
        raise refusal(p + field, "text without NUL characters or lone surrogates", value)
    return value


def participant_id(m: JsonMap, p: str, field: str = "participantRawID") -> str | None:
    value = stored_str(m, p, field)
    if value is not None and len(value) > MAX_PARTICIPANT_ID:
        raise refusal(p + field, f"at most {MAX_PARTICIPANT_ID} characters", value)
    return value


def req_str(m: JsonMap, p: str, field: str) -> str:
    value = opt_str(m, p, field)
    if value is None:
        raise PacketError(f"{p}{field} is missing")
    return value


def opt_int(m: JsonMap, p: str, field: str, minimum: int = 0) -> int | None:
    value = m.get(field.lower())
    if value is None:
        return None
    # An integral float is accepted; bool is rejected because it is not exactly int.
    number = int(value) if type(value) is float and value.is_integer() else value
    if type(number) is not int or number < minimum:
        expected = "a non-negative integer" if minimum == 0 else "a positive integer"
        raise refusal(p + field, expected, value)
    if number > MAX_INT:
        raise refusal(p + field, "at most 2**63-1", value)
    return number


def opt_bool(m: JsonMap, p: str, field: str) -> bool:
    value = m.get(field.lower())
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise refusal(p + field, "true or false", value)


def opt_confidence(m: JsonMap, p: str) -> float | None:
    value = m.get("confidence")
    if value is None:
        return None
    # NaN fails both comparisons; bool is excluded by the exact type checks.
    if (type(value) is float or type(value) is int) and 0.0 <= value <= 1.0:
        return float(value)
    raise refusal(p + "confidence", "a number between 0 and 1", value)


def opt_time(m: JsonMap, p: str) -> datetime | None:
    value = m.get("timestamp")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            # Python 3.11+ accepts "Z" and truncates fractions past microseconds (ACS sends 7).
            stamp = datetime.fromisoformat(value)
            if stamp.tzinfo is None:
                return stamp.replace(tzinfo=UTC)
            return stamp if stamp.tzinfo is UTC else stamp.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise refusal(p + "timestamp", "an ISO 8601 timestamp", value)
