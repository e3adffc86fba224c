"""Redaction as the running service applies it: the rules in force, a phrase masked, and the
one place stored audio is silenced over what was masked.

``streaming.ingest.stream.AcsStream.phrase`` calls :func:`redact_phrase` for every final and
interim result, whichever road it came by, before anything is stored, sent or indexed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings

from streaming.acs.packets import Word
from streaming.models import TranscriptSource
from streaming.recording import store as recordings_store
from streaming.redaction.core import Redaction, TimeSpan, redact
from streaming.redaction.finders import DEFAULT_NATIONAL_IDS, Rules
from streaming.speech import Phrase

BY_CALLSITE = "callsite"
BY_ACS = "acs"


def redaction_enabled() -> bool:
    return bool(settings.CALLSITE_REDACT == "on")


def rules_from_settings() -> Rules:
    """The rules the settings ask for (built once per distinct configuration)."""
    patterns = settings.CALLSITE_REDACT_PATTERNS or {}
    return _rules(
        tuple(settings.CALLSITE_REDACT_ENTITIES),
        tuple(settings.CALLSITE_REDACT_NATIONAL_IDS or DEFAULT_NATIONAL_IDS),
        settings.CALLSITE_REDACT_PHONE_REGION,
        tuple(sorted(patterns.items())),
    )


@lru_cache(maxsize=8)
def _rules(
    kinds: tuple[str, ...],
    national_ids: tuple[str, ...],
    region: str,
    patterns: tuple[tuple[str, str], ...],
) -> Rules:
    return Rules(
        kinds=frozenset(kinds),
        national_ids=national_ids,
        region=region,
        patterns=tuple((name, re.compile(p)) for name, p in patterns),
    )


def acs_redacts(options: Mapping[str, Any] | None) -> bool:
    """Whether ACS transcription was asked to redact PII (its TranscriptionMetadata options)."""
    pii = (options or {}).get("pii_redaction")
    return isinstance(pii, Mapping) and pii.get("enable") is True


def redaction_record(result: Redaction, *, by: str = BY_CALLSITE) -> dict[str, object]:
    """What an utterance stores of its redaction: who, the kinds and the time spans (never
    what was masked)."""
    return {
        "by": by,
        "kinds": list(result.kinds),
        "times": [
            {"kind": t.kind, "start_ticks": t.start_ticks, "end_ticks": t.end_ticks}
            for t in result.times
        ],
    }


def redact_phrase(phrase: Phrase, *, acs_redacted: bool) -> Phrase:
    """The phrase with what the rules find masked, marked redacted; as it was when redaction
    is off. ACS text that ACS itself was asked to redact is marked so and left as ACS sent it.
    """
    if not redaction_enabled():
        return phrase
    if acs_redacted and phrase.source == TranscriptSource.ACS:
        return dataclasses.replace(phrase, redaction={"by": BY_ACS, "kinds": [], "times": []})
    result = redact(
        phrase.text,
        phrase.words,
        rules_from_settings(),
        offset_ticks=phrase.offset_ticks,
        duration_ticks=phrase.duration_ticks,
        interim=not phrase.final,
    )
    return dataclasses.replace(
        phrase, text=result.text, words=result.words, redaction=redaction_record(result)
    )


def words_from_payload(words: Sequence[Mapping[str, Any]]) -> list[Word]:
    """Stored words (``WordPayload``) as the redactor takes them."""
    found = []
    for w in words:
        if not isinstance(w, Mapping):
            continue
        offset, duration = w.get("offset"), w.get("duration")
        confidence = w.get("confidence")
        found.append(
            Word(
                text=str(w.get("text", "")),
                offset=offset if isinstance(offset, int) else None,
                duration=duration if isinstance(duration, int) else None,
                confidence=confidence if isinstance(confidence, int | float) else None,
            )
        )
    return found


def recording_silence(*, call_id: int, times: Sequence[TimeSpan]) -> int:
    """Silence a call's stored recordings over ``times`` (ticks on the call's timeline); how
    many spans touched stored audio.

    The one place redaction reaches stored audio: the live path (a final stored with spans
    masked; it silences what is still in memory itself) and ``manage.py redact_history``
    both call it.
    """
    return recordings_store.silence(call_id=call_id, times=times)
