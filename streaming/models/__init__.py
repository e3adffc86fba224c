"""Calls, their participants and what they said, their figures, alerts and supervisor actions.

One module per subject (``calls``, ``participants``, ``figures``, ``actions``, ``delivery``,
``recordings``);
every model is imported here, as Django and the rest of the code expect them.
"""

from streaming.models.actions import FINAL_STATUSES, ActionStatus, ControlAction
from streaming.models.calls import (
    Call,
    CallEndReason,
    CallEvent,
    CallOrigin,
    CallState,
    RecordingState,
    Stream,
    StreamQuerySet,
    StreamState,
    TranscriptSource,
)
from streaming.models.delivery import (
    AlertDelivery,
    AlertDestination,
    DeliveryAttempt,
    DeliveryState,
    DestinationKind,
    idempotency_key,
)
from streaming.models.figures import (
    Alert,
    AlertKind,
    AlertRule,
    AlertState,
    CallAnalytics,
    TalkSecond,
)
from streaming.models.participants import (
    Invitation,
    Participant,
    ParticipantKind,
    ParticipantRole,
    Sentiment,
    SentimentSource,
    Utterance,
)
from streaming.models.recordings import (
    Recording,
    RecordingAccess,
    RecordingChunk,
    RecordingKind,
)

__all__ = [
    "FINAL_STATUSES",
    "ActionStatus",
    "Alert",
    "AlertDelivery",
    "AlertDestination",
    "AlertKind",
    "AlertRule",
    "AlertState",
    "Call",
    "CallAnalytics",
    "CallEndReason",
    "CallEvent",
    "CallOrigin",
    "CallState",
    "ControlAction",
    "DeliveryAttempt",
    "DeliveryState",
    "DestinationKind",
    "Invitation",
    "Participant",
    "ParticipantKind",
    "ParticipantRole",
    "Recording",
    "RecordingAccess",
    "RecordingChunk",
    "RecordingKind",
    "RecordingState",
    "Sentiment",
    "SentimentSource",
    "Stream",
    "StreamQuerySet",
    "StreamState",
    "TalkSecond",
    "TranscriptSource",
    "Utterance",
    "idempotency_key",
]
