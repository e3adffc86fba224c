"""Small builders of ACS packets and sockets shared by the consumer tests."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings

from callsite.asgi import application


def transcription_metadata(call: str = "call-1", locale: str = "en-US") -> str:
    return json.dumps(
        {
            "kind": "TranscriptionMetadata",
            "transcriptionMetadata": {
                "subscriptionId": "sub-1",
                "locale": locale,
                "callConnectionId": call,
                "correlationId": "corr-1",
            },
        }
    )


def transcription_data(
    text: str,
    *,
    status: str = "Final",
    offset: int | None = 10_000_000,
    duration: int = 12_000_000,
    speaker: str = "4:+15555550123",
    confidence: float | None = 0.91,
    words: list[dict[str, Any]] | None = None,
) -> str:
    data: dict[str, Any] = {
        "text": text,
        "format": "display",
        "duration": duration,
        "participantRawID": speaker,
        "resultStatus": status,
    }
    if offset is not None:
        data["offset"] = offset
    if confidence is not None:
        data["confidence"] = confidence
    if words is not None:
        data["words"] = words
    return json.dumps({"kind": "TranscriptionData", "transcriptionData": data})


def acs_socket(
    call: str = "call-1",
    *,
    token: str | None = None,
    via_header: bool = True,
    extra_query: str = "",
) -> WebsocketCommunicator:
    """A communicator to /ws/acs/ as ACS would open it (call id in the header by default)."""
    secret = settings.CALLSITE_ACS_SHARED_SECRET if token is None else token
    query = f"token={secret}" if secret else ""
    headers = []
    if via_header:
        headers.append((b"x-ms-call-connection-id", call.encode()))
        headers.append((b"x-ms-call-correlation-id", b"corr-1"))
    else:
        query += f"&call={call}"
    if extra_query:
        query += f"&{extra_query}"
    return WebsocketCommunicator(application, f"/ws/acs/?{query}", headers=headers)
