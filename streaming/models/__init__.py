"""Calls, their participants and what they said, their figures and alerts.

One module per subject (``calls``, ``participants``, ``figures``); every model is imported
here, as Django and the rest of the code expect them.
"""

from streaming.models.calls import (
    Call,
    CallEndReason,
    CallEvent,
    CallState,
    Stream,
    StreamQuerySet,
    StreamState,
    TranscriptSource,
)
from streaming.models.figures import (
    Alert,
    AlertKind,
    AlertRule,
    CallAnalytics,
    TalkSecond,
)
from streaming.models.participants import (
    Participant,
    ParticipantKind,
    ParticipantRole,
    Sentiment,
    SentimentSource,
    Utterance,
)

__all__ = [
    "Alert",
    "AlertKind",
    "AlertRule",
    "Call",
    "CallAnalytics",
    "CallEndReason",
    "CallEvent",
    "CallState",
    "Participant",
    "ParticipantKind",
    "ParticipantRole",
    "Sentiment",
    "SentimentSource",
    "Stream",
    "StreamQuerySet",
    "StreamState",
    "TalkSecond",
    "TranscriptSource",
    "Utterance",
]
