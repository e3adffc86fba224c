"""Who may open the ACS ingest socket.

Until ACS's signed tokens are verified, the socket takes a shared secret in the ``token``
query parameter. With no secret configured it is open only in DEBUG, so a production
deployment never accepts audio or transcripts from anyone by accident.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings

CALL_ID_MAX_LENGTH = 200


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    """The first value of each query parameter in an ASGI scope."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {key: values[0] for key, values in parse_qs(raw).items() if values}


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """A request header from an ASGI scope (names there are lower-case bytes)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def acs_socket_decision(scope: dict[str, Any]) -> Decision:
    """Decide whether an ACS ingest connection is authenticated."""
    secret = settings.CALLSITE_ACS_SHARED_SECRET
    if not secret:
        if settings.DEBUG:
            return Decision(True, "DEBUG is on and no shared secret is configured")
        return Decision(False, "no CALLSITE_ACS_SHARED_SECRET is configured and DEBUG is off")
    token = query_params(scope).get("token", "")
    if not token:
        return Decision(False, "missing token")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        return Decision(False, "wrong token")
    return Decision(True, "shared secret")


def call_connection_id(scope: dict[str, Any]) -> str | None:
    """The ACS call connection id: the ``x-ms-call-connection-id`` header, else ``?call=``.

    Returns ``None`` when absent or unusable (too long, or with control characters).
    """
    value = header(scope, b"x-ms-call-connection-id") or query_params(scope).get("call", "")
    value = value.strip()
    if not value or len(value) > CALL_ID_MAX_LENGTH or not value.isprintable():
        return None
    return value
