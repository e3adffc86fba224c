"""What was said, as it reaches a stream: a final or interim phrase on the call's timeline.

ACS transcription (a ``TranscriptionData`` packet) and Callsite's own recognizers (a session's
results, mapped onto the call's timeline) both become a :class:`Phrase`; the stream that owns
the call stores finals and relays interims the same way whichever road they came by.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from streaming.acs.packets import TranscriptionData, Word
from streaming.events import ParticipantPayload
from streaming.models import TranscriptSource
from streaming.units import MAX_CALL_SECONDS, TICKS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Phrase:
    """One result: who said what, when, how sure the recognizer is.

    ``speaker`` is the participant's raw id (``speaker:Guest-1`` for a diarized speaker of
    mixed audio, None when unknown); ``participant`` is its payload when the caller already
    has it. Offsets are ticks from ``origin``, the wall-clock time of tick 0 of the results'
    timeline (the socket's opening for ACS transcription, the first audio frame for a
    recognizer), which times the end of speech.
    """

    text: str
    final: bool
    speaker: str | None
    offset_ticks: int | None
    duration_ticks: int | None
    confidence: float | None
    words: Sequence[Word]
    source: str
    origin: datetime | None
    participant: ParticipantPayload | None = None
    sentiment: str | None = None  # ACS's, when it gave one
    language: str | None = None  # the language ACS identified
    # streaming.redaction.applied.redaction_record once redacted; None: redaction off
    redaction: dict[str, object] | None = None

    @classmethod
    def from_transcription(cls, packet: TranscriptionData, origin: datetime) -> Phrase:
        """An ACS transcription result: ACS counts its offsets from the start of its stream."""
        return cls(
            text=packet.text,
            final=packet.is_final,
            speaker=packet.participant_raw_id,
            offset_ticks=packet.offset,
            duration_ticks=packet.duration,
            confidence=packet.confidence,
            words=packet.words,
            source=TranscriptSource.ACS,
            origin=origin,
            sentiment=packet.sentiment,
            language=packet.language,
        )

    @property
    def speech_end(self) -> datetime | None:
        """When the speech ended, by the wall clock; None when the timings do not say."""
        if self.origin is None or self.offset_ticks is None:
            return None
        end = self.offset_ticks + (self.duration_ticks or 0)
        if not 0 <= end <= MAX_CALL_SECONDS * TICKS_PER_SECOND:
            return None
        with contextlib.suppress(OverflowError):  # a wild origin
            return self.origin + timedelta(microseconds=end / 10)
        return None
