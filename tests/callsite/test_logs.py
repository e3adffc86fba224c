"""No worker log line, at any level, carries the ACS shared secret or a token.

A real worker at DEBUG, with its access log on, takes what carries secrets: Event Grid
deliveries and callbacks with ``?token=``, ACS sockets with the secret (right, wrong, and
as a bearer token), ACS's signed JWTs (valid and forged), API tokens and the metrics token;
then its whole output is searched for each of them.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import FIXTURES, DaphneServer
from tests.factories import user_in
from tests.standins.jwks import AUDIENCE, SigningKey, jwks

pytestmark = pytest.mark.live_server

METRICS_TOKEN = "metrics-token-" + uuid.uuid4().hex


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def _socket(url: str, headers: dict[str, str]) -> str:
    try:
        async with connect(url, additional_headers=headers, proxy=None) as ws:
            await ws.send("not json")
            return "open"
    except InvalidStatus as error:
        return str(error.response.status_code)


def test_no_secret_or_token_reaches_the_log(
    daphne_factory: Callable[..., DaphneServer], tmp_path: Path
) -> None:
    key = SigningKey()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(key)))
    server = daphne_factory(
        CALLSITE_LOG_LEVEL="DEBUG",
        CALLSITE_ACS_RESOURCE_ID=AUDIENCE,
        CALLSITE_ACS_JWKS_FILE=str(jwks_file),
        CALLSITE_METRICS_TOKEN=METRICS_TOKEN,
    )
    secret = settings.CALLSITE_ACS_SHARED_SECRET
    good_jwt, forged_jwt = key.sign(), SigningKey(kid=key.kid).sign()
    api_token = Token.objects.create(user=user_in("apiuser")).key
    validation = FIXTURES / "acs-packets" / "eventgrid_subscription_validation_event.json"
    body = validation.read_bytes()
    base, ws = server.http_url, server.ws_url

    assert _post(f"{base}/acs/events/?token={secret}", body) == 200
    assert _post(f"{base}/acs/events/?token={secret}x", body) == 401
    callback = f"{base}/acs/callbacks/{uuid.uuid4()}/"
    statuses = [
        _post(f"{callback}?token={secret}", b"[]"),
        _post(callback, b"[]", {"Authorization": f"Bearer {good_jwt}"}),
        _post(callback, b"[]", {"Authorization": f"Bearer {forged_jwt}"}),
    ]
    assert statuses[2] == 401
    assert all(status < 500 for status in statuses), statuses
    assert _get(f"{base}/api/calls/", {"Authorization": f"Token {api_token}"}) == 403
    assert _get(f"{base}/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}) == 200
    assert _get(f"{base}/readyz?token={secret}", {}) in {200, 503}

    async def sockets() -> list[str]:
        return [
            await _socket(f"{ws}/ws/acs/?token={secret}&call=log-call", {}),
            await _socket(f"{ws}/ws/acs/?token=wrong-{secret}&call=log-call", {}),
            await _socket(f"{ws}/ws/acs/?call=log-call", {"Authorization": f"Bearer {good_jwt}"}),
            await _socket(f"{ws}/ws/acs/?call=log-call", {"Authorization": f"Bearer {forged_jwt}"}),
            await _socket(f"{ws}/ws/acs/?call=log-call", {"Authorization": f"Bearer {secret}"}),
        ]

    outcomes = asyncio.run(sockets())
    assert outcomes == ["open", "403", "open", "403", "403"]
    server.stop()
    output = server.output()
    assert "Event Grid" in output or "/acs/events/" in output  # the log did see the requests
    for name, value in {
        "the shared secret": secret,
        "a valid ACS token": good_jwt,
        "a forged ACS token": forged_jwt,
        "an API token": api_token,
        "the metrics token": METRICS_TOKEN,
    }.items():
        assert value not in output, f"{name} is in the log"
        assert value[:24] not in output, f"the start of {name} is in the log"
