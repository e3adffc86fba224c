"""Who may reach the ACS endpoints: the ingest socket and the Call Automation callbacks.

One rule decides for both. When ACS token verification is configured
(CALLSITE_ACS_RESOURCE_ID), a request carrying an ``Authorization`` header is allowed only if
its JWT verifies. Otherwise a shared secret in the ``token`` query parameter is checked. With
neither configured the endpoints are open only in DEBUG, so a production deployment never
accepts audio, transcripts or events from anyone by accident.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import HttpRequest

from streaming.acs.tokens import (
    TokenError,
    bearer_token,
    get_verifier,
    token_config,
)

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


def acs_request_decision(*, authorization: str | None, token_param: str | None) -> Decision:
    """Decide whether a request claiming to come from ACS is authenticated.

    Synchronous, and it may fetch ACS's signing keys over the network: async callers run it
    in a worker thread.
    """
    verifying = token_config() is not None
    if verifying and authorization:
        token = bearer_token(authorization)
        if token is None:
            return Decision(False, "missing bearer token")
        try:
            verifier = get_verifier()
            # None only if the settings changed since token_config() was read.
            if verifier is None:
                return Decision(False, "token verification is off")
            verifier.verify(token)
        except TokenError as error:
            return Decision(False, error.reason)
        return Decision(True, "ACS token")
    secret = settings.CALLSITE_ACS_SHARED_SECRET
    if secret:
        if not token_param:
            return Decision(False, "missing token")
        if not hmac.compare_digest(token_param.encode(), secret.encode()):
            return Decision(False, "wrong token")
        return Decision(True, "shared secret")
    if verifying:
        return Decision(False, "missing bearer token")
    if settings.DEBUG:
        return Decision(True, "DEBUG is on and no ACS authentication is configured")
    return Decision(
        False,
        "neither CALLSITE_ACS_RESOURCE_ID nor CALLSITE_ACS_SHARED_SECRET is configured "
        "and DEBUG is off",
    )


def acs_socket_decision(scope: dict[str, Any]) -> Decision:
    """Decide whether an ACS ingest connection is authenticated (see acs_request_decision)."""
    return acs_request_decision(
        authorization=header(scope, b"authorization"),
        token_param=query_params(scope).get("token"),
    )


def http_request_decision(request: HttpRequest) -> Decision:
    """Decide whether an HTTP request from ACS (a callback) is authenticated."""
    return acs_request_decision(
        authorization=request.headers.get("Authorization"),
        token_param=request.GET.get("token"),
    )


def call_connection_id(scope: dict[str, Any]) -> str | None:
    """The ACS call connection id: the ``x-ms-call-connection-id`` header, else ``?call=``.

    Returns ``None`` when absent or unusable (too long, or with control characters).
    """
    value = header(scope, b"x-ms-call-connection-id") or query_params(scope).get("call", "")
    value = value.strip()
    if not value or len(value) > CALL_ID_MAX_LENGTH or not value.isprintable():
        return None
    return value
