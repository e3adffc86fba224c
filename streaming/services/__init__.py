"""Write-side operations on calls, their streams, what was said in them and their figures.

Services are synchronous and transactional; the event loop calls them through
``streaming.db.db_call``. Each one broadcasts what it changed with ``transaction.on_commit``,
so a browser never sees an event for data that was rolled back. One module per subject:
``calls``, ``streams``, ``utterances``, ``figures``, ``alerts``.
"""

from streaming.services.alerts import TriageError, alert_triage
from streaming.services.calls import (
    call_audio_started,
    call_broadcast_on_commit,
    call_event_record,
    call_recognizer_attached,
    call_stream_opened,
    call_tone_record,
    call_transcription_started,
)
from streaming.services.figures import (
    alert_record,
    call_analytics_store,
    stream_resume_point,
    talk_seconds_store,
    talk_seconds_store_each,
)
from streaming.services.streams import (
    call_stream_closed,
    stream_lost,
    stream_opened,
    streams_heartbeat,
    streams_replaced,
)
from streaming.services.utterances import (
    MAX_PARTICIPANTS,
    participant_ensure,
    participant_get_or_create,
    participant_presence_apply,
    redacted_of,
    utterance_dedupe_key,
    utterance_record,
    words_payload,
)

__all__ = [
    "MAX_PARTICIPANTS",
    "TriageError",
    "alert_record",
    "alert_triage",
    "call_analytics_store",
    "call_audio_started",
    "call_broadcast_on_commit",
    "call_event_record",
    "call_recognizer_attached",
    "call_stream_closed",
    "call_stream_opened",
    "call_tone_record",
    "call_transcription_started",
    "participant_ensure",
    "participant_get_or_create",
    "participant_presence_apply",
    "redacted_of",
    "stream_lost",
    "stream_opened",
    "stream_resume_point",
    "streams_heartbeat",
    "streams_replaced",
    "talk_seconds_store",
    "talk_seconds_store_each",
    "utterance_dedupe_key",
    "utterance_record",
    "words_payload",
]
