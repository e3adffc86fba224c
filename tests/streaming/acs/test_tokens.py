"""ACS token verification: the verifier, the shared decision rule, the socket and the checks."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from django.core.checks import run_checks
from django.test import RequestFactory

from callsite.asgi import application
from streaming.acs import tokens
from streaming.acs.auth import acs_request_decision, http_request_decision
from streaming.acs.tokens import (
    AcsTokenVerifier,
    TokenConfig,
    TokenError,
    bearer_token,
    get_verifier,
    load_jwks_file,
    token_config,
)
from streaming.models import Call
from tests.standins.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey, jwks

SECRET = "a-shared-secret-of-some-length"


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> SigningKey:
    """The key ACS signs with (RSA generation is slow: one per module)."""
    return SigningKey(kid="acs-key-1")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    """A second key pair: an attacker's, or ACS's next key."""
    return SigningKey(kid="acs-key-2")


@pytest.fixture(autouse=True)
def _fresh_verifiers() -> Iterator[None]:
    """Forget shared verifiers so a test's key cache never leaks into the next test."""
    tokens._verifier_for.cache_clear()
    yield
    tokens._verifier_for.cache_clear()


@pytest.fixture
def jwks_server(key: SigningKey) -> Iterator[JwksServer]:
    """A running JWKS stand-in that publishes ``key``."""
    server = JwksServer()
    server.publish(key)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def no_cooldown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let an unknown key id refetch at once, as it does once the cooldown has passed."""
    monkeypatch.setattr(tokens, "JWKS_REFRESH_COOLDOWN", 0.0)


@pytest.fixture
def verifier(jwks_server: JwksServer) -> AcsTokenVerifier:
    return AcsTokenVerifier(TokenConfig(AUDIENCE, ISSUER, jwks_server.url, ""))


@pytest.fixture
def acs_settings(settings: Any, jwks_server: JwksServer) -> Any:
    """Token verification on, against the stand-in, with a shared secret too."""
    settings.CALLSITE_ACS_RESOURCE_ID = AUDIENCE
    settings.CALLSITE_ACS_TOKEN_ISSUER = ISSUER
    settings.CALLSITE_ACS_JWKS_URL = jwks_server.url
    settings.CALLSITE_ACS_JWKS_FILE = ""
    settings.CALLSITE_ACS_SHARED_SECRET = SECRET
    settings.DEBUG = False
    return settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tamper(token: str, **changes: Any) -> str:
    """``token`` with claims changed in its payload and its original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def refusal(verifier: AcsTokenVerifier, token: str) -> str:
    """The reason ``verifier`` refuses ``token`` (fails the test if it is accepted)."""
    with pytest.raises(TokenError) as info:
        verifier.verify(token)
    return info.value.reason


# --- the verifier -------------------------------------------------------------------------------


def test_valid_token_gives_its_claims_and_keys_are_cached(
    verifier: AcsTokenVerifier, key: SigningKey, jwks_server: JwksServer
) -> None:
    """A token signed by a published key with ACS's issuer and audience verifies; the key set
    is fetched once and reused."""
    claims = verifier.verify(key.sign({"sub": "call-1"}))
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "call-1"
    verifier.verify(key.sign())
    assert jwks_server.requests == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iat": -600, "nbf": -600, "exp": -120}, "token expired"),
        ({"nbf": 120}, "token not yet valid"),
        ({"aud": "another-resource"}, "wrong audience"),
        ({"iss": "https://login.example.com"}, "wrong issuer"),
        ({"exp": None}, "missing claim: exp"),
        ({"iss": None}, "missing claim: iss"),
        ({"aud": None}, "missing claim: aud"),
    ],
)
def test_claims_are_checked(
    verifier: AcsTokenVerifier, key: SigningKey, claims: dict[str, Any], reason: str
) -> None:
    """Expired, not-yet-valid, wrong-audience, wrong-issuer tokens and tokens without exp, iss
    or aud are refused with a reason naming the problem (times are relative to now, beyond the
    30 s leeway)."""
    now = int(time.time())
    relative = {
        name: now + value if name in ("iat", "nbf", "exp") and value is not None else value
        for name, value in claims.items()
    }
    assert refusal(verifier, key.sign(relative)) == reason


def test_leeway_tolerates_small_clock_skew(verifier: AcsTokenVerifier, key: SigningKey) -> None:
    """A token that expired a few seconds ago (clock skew) still verifies."""
    assert verifier.verify(key.sign({"exp": int(time.time()) - 5}))


def test_unknown_key_is_refused_after_one_refetch(
    no_cooldown: None, verifier: AcsTokenVerifier, key: SigningKey, jwks_server: JwksServer
) -> None:
    """A key id absent from the JWKS, even after refetching it once, is refused."""
    verifier.verify(key.sign())
    stranger = SigningKey(kid="not-published", private_key=key.private_key)
    assert refusal(verifier, stranger.sign()) == "unknown signing key"
    assert jwks_server.requests == 2


def test_rotated_key_is_accepted_after_exactly_one_refetch(
    no_cooldown: None,
    verifier: AcsTokenVerifier,
    key: SigningKey,
    other_key: SigningKey,
    jwks_server: JwksServer,
) -> None:
    """When ACS starts signing with a key published after the set was cached, the unknown key
    id triggers one refetch and the token verifies; later tokens use the refreshed cache."""
    verifier.verify(key.sign())
    assert jwks_server.requests == 1
    jwks_server.publish(key, other_key)
    verifier.verify(other_key.sign())
    assert jwks_server.requests == 2
    verifier.verify(other_key.sign())
    verifier.verify(key.sign())
    assert jwks_server.requests == 2


def test_made_up_key_ids_do_not_cause_a_refetch_storm(
    verifier: AcsTokenVerifier, key: SigningKey, jwks_server: JwksServer
) -> None:
    """Within the refresh cooldown, tokens with unknown key ids are refused without fetching."""
    verifier.verify(key.sign())
    for n in range(5):
        forged = SigningKey(kid=f"made-up-{n}", private_key=key.private_key)
        assert refusal(verifier, forged.sign()) == "unknown signing key"
    assert jwks_server.requests == 1


def test_tampered_payload_is_refused(verifier: AcsTokenVerifier, key: SigningKey) -> None:
    """Changing a claim after signing breaks the signature."""
    token = tamper(key.sign(), sub="someone-else")
    assert refusal(verifier, token) == "bad signature"


def test_signature_by_another_key_is_refused(
    verifier: AcsTokenVerifier, key: SigningKey, other_key: SigningKey
) -> None:
    """A token signed with another private key but naming the published key id is refused."""
    assert refusal(verifier, other_key.sign(kid=key.kid)) == "bad signature"


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}


def test_unsigned_and_hmac_tokens_are_refused_without_fetching_keys(
    verifier: AcsTokenVerifier, key: SigningKey, jwks_server: JwksServer
) -> None:
    """``alg: none``, HS256 (even keyed with the public key's modulus) and RS512 are refused
    before any key lookup: only RS256 is accepted."""
    unsigned = jwt.encode(_claims(), "", algorithm="none", headers={"kid": key.kid})
    hmac_key = key.jwk()["n"].encode()
    hmac = jwt.encode(_claims(), hmac_key, algorithm="HS256", headers={"kid": key.kid})
    rs512 = jwt.encode(_claims(), key.private_key, algorithm="RS512", headers={"kid": key.kid})
    for token in (unsigned, hmac, rs512):
        assert refusal(verifier, token) == "unsupported algorithm"
    assert jwks_server.requests == 0


def test_hmac_signature_under_an_rs256_header_is_refused(
    verifier: AcsTokenVerifier, key: SigningKey
) -> None:
    """A token claiming RS256 but carrying an HMAC signature does not verify."""
    real = key.sign()
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = real.split(".")[1]
    forged = jwt.encode(_claims(), key.jwk()["n"].encode(), algorithm="HS256").split(".")[2]
    assert refusal(verifier, f"{header}.{payload}.{forged}") == "bad signature"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "missing bearer token"),
        ("garbage", "not a JWT"),
        ("a.b.c", "not a JWT"),
        ("x" * 20_000, "token too long"),
    ],
)
def test_missing_and_garbage_tokens_are_refused(
    verifier: AcsTokenVerifier, token: str, reason: str, jwks_server: JwksServer
) -> None:
    """An empty, malformed or oversized token is refused without fetching keys."""
    assert refusal(verifier, token) == reason
    assert jwks_server.requests == 0


def test_token_without_key_id_is_refused(verifier: AcsTokenVerifier, key: SigningKey) -> None:
    """A token whose header names no key cannot be checked and is refused."""
    token = jwt.encode(_claims(), key.private_key, algorithm="RS256")
    assert refusal(verifier, token) == "token names no signing key"


def test_jwks_file_works_without_any_server(tmp_path: Path, key: SigningKey) -> None:
    """With a local JWKS file the URL is never used: tokens verify with no server at all."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(jwks(key)))
    verifier = AcsTokenVerifier(TokenConfig(AUDIENCE, ISSUER, "http://127.0.0.1:9/keys", str(path)))
    assert verifier.verify(key.sign())["iss"] == ISSUER
    stranger = SigningKey(kid="not-in-file", private_key=key.private_key)
    assert refusal(verifier, stranger.sign()) == "unknown signing key"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read JWKS file"),
        ("{not json", "is not a JWKS"),
        ("[1, 2]", "is not a JWKS"),
        ('{"keys": []}', "is not a JWKS"),
        ('{"keys": [{"kty": "nope"}]}', "is not a JWKS"),
    ],
)
def test_bad_jwks_file_is_named_in_the_error(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    """A missing or invalid JWKS file raises TokenError naming the file."""
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TokenError) as info:
        AcsTokenVerifier(TokenConfig(AUDIENCE, ISSUER, "", str(path)))
    assert fragment in info.value.reason
    assert str(path) in info.value.reason
    assert info.value.reason.startswith("keys unavailable: ")


def test_server_down_means_keys_unavailable(
    verifier: AcsTokenVerifier, key: SigningKey, jwks_server: JwksServer
) -> None:
    """When the JWKS endpoint cannot be reached the token is refused as "keys unavailable"."""
    jwks_server.stop()
    assert refusal(verifier, key.sign()).startswith("keys unavailable: ")


@pytest.mark.parametrize("body", [b"<html>busy</html>", b"[]", b'{"keys": []}'])
def test_unusable_key_set_means_keys_unavailable(
    verifier: AcsTokenVerifier, key: SigningKey, jwks_server: JwksServer, body: bytes
) -> None:
    """A JWKS response that is not JSON, not an object or has no keys refuses the token as
    "keys unavailable", not as an unknown key."""
    jwks_server.raw = body
    assert refusal(verifier, key.sign()).startswith("keys unavailable: ")


def test_reasons_never_echo_the_token(verifier: AcsTokenVerifier, key: SigningKey) -> None:
    """No refusal reason contains any part of the token."""
    token = key.sign({"aud": "another-resource"})
    reason = refusal(verifier, token)
    assert all(part not in reason for part in token.split("."))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer a b", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(value: str | None, expected: str | None) -> None:
    """The token is taken from ``Bearer <token>`` (scheme in any case); anything else is None."""
    assert bearer_token(value) == expected


def test_config_is_read_from_settings_lazily(settings: Any, jwks_server: JwksServer) -> None:
    """No resource id means no verifier; each distinct configuration gets its own verifier,
    and the same one is shared while the settings stay the same."""
    settings.CALLSITE_ACS_RESOURCE_ID = ""
    assert token_config() is None
    assert get_verifier() is None

    settings.CALLSITE_ACS_RESOURCE_ID = AUDIENCE
    settings.CALLSITE_ACS_JWKS_URL = jwks_server.url
    settings.CALLSITE_ACS_JWKS_FILE = ""
    first = get_verifier()
    assert first is not None
    assert first.config == TokenConfig(
        AUDIENCE, settings.CALLSITE_ACS_TOKEN_ISSUER, jwks_server.url, ""
    )
    assert get_verifier() is first

    settings.CALLSITE_ACS_RESOURCE_ID = "another-resource"
    second = get_verifier()
    assert second is not None
    assert second is not first
    assert second.config.audience == "another-resource"


# --- the decision rule --------------------------------------------------------------------------

VALID, EXPIRED, BASIC = "valid", "expired", "basic"

DECISIONS = [
    # verify, secret, debug, authorization, ?token=, allowed, reason
    (True, SECRET, False, VALID, None, True, "ACS token"),
    (True, "", False, VALID, None, True, "ACS token"),
    (True, SECRET, False, EXPIRED, SECRET, False, "token expired"),
    (True, SECRET, False, BASIC, SECRET, False, "missing bearer token"),
    (True, SECRET, False, None, SECRET, True, "shared secret"),
    (True, SECRET, False, None, "wrong", False, "wrong token"),
    (True, SECRET, False, None, None, False, "missing token"),
    (True, "", True, None, None, False, "missing bearer token"),
    (True, "", False, None, SECRET, False, "missing bearer token"),
    (False, SECRET, False, VALID, SECRET, True, "shared secret"),
    (False, SECRET, False, VALID, None, False, "missing token"),
    (False, "", True, VALID, None, True, "DEBUG is on and no ACS authentication is configured"),
    (False, "", False, VALID, None, False, None),
]


@pytest.mark.parametrize(
    ("verify", "secret", "debug", "authorization", "token_param", "allowed", "reason"),
    DECISIONS,
)
def test_acs_request_decision(
    acs_settings: Any,
    key: SigningKey,
    verify: bool,
    secret: str,
    debug: bool,
    authorization: str | None,
    token_param: str | None,
    allowed: bool,
    reason: str | None,
) -> None:
    """With verification on, an Authorization header decides alone; without one the shared
    secret decides; with verification on and no secret a missing bearer token is refused; with
    neither configured only DEBUG lets requests in."""
    acs_settings.CALLSITE_ACS_RESOURCE_ID = AUDIENCE if verify else ""
    acs_settings.CALLSITE_ACS_SHARED_SECRET = secret
    acs_settings.DEBUG = debug
    header = {
        VALID: f"Bearer {key.sign()}",
        EXPIRED: f"Bearer {key.sign({'exp': int(time.time()) - 120})}",
        BASIC: "Basic dXNlcjpwYXNz",
        None: None,
    }[authorization]
    decision = acs_request_decision(authorization=header, token_param=token_param)
    assert decision.allowed is allowed
    if reason is not None:
        assert decision.reason == reason


def test_broken_key_file_refuses_tokens_but_not_the_secret(
    acs_settings: Any, key: SigningKey, tmp_path: Path
) -> None:
    """An unusable JWKS file refuses every bearer token (naming the file) and leaves the
    shared secret working for requests without one."""
    missing = tmp_path / "missing.json"
    acs_settings.CALLSITE_ACS_JWKS_FILE = str(missing)
    refused = acs_request_decision(authorization=f"Bearer {key.sign()}", token_param=SECRET)
    assert not refused.allowed
    assert str(missing) in refused.reason
    assert acs_request_decision(authorization=None, token_param=SECRET).allowed


def test_http_request_decision_reads_header_and_query(acs_settings: Any, key: SigningKey) -> None:
    """Django views get the same rule: ``Authorization`` header, else ``?token=``."""
    factory = RequestFactory()
    signed = factory.post("/acs/events", HTTP_AUTHORIZATION=f"Bearer {key.sign()}")
    assert http_request_decision(signed).reason == "ACS token"
    by_secret = factory.post(f"/acs/events?token={SECRET}")
    assert http_request_decision(by_secret).reason == "shared secret"
    forged = factory.post("/acs/events", HTTP_AUTHORIZATION=f"Bearer {tamper(key.sign(), a=1)}")
    assert not http_request_decision(forged).allowed


# --- the ingest socket --------------------------------------------------------------------------


def _socket(authorization: str | None, call: str = "call-jwt") -> WebsocketCommunicator:
    """A connection to /ws/acs/ as ACS opens it: call id and token in headers, no ?token=."""
    headers = [(b"x-ms-call-connection-id", call.encode())]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return WebsocketCommunicator(application, "/ws/acs/", headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_socket_with_a_valid_acs_token_connects(acs_settings: Any, key: SigningKey) -> None:
    """A valid ACS token opens the socket with no ``?token=`` and the call is created."""
    communicator = _socket(f"Bearer {key.sign()}")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()
    assert await Call.objects.filter(connection_id="call-jwt").aexists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "token expired"),
        ("wrong audience", "wrong audience"),
        ("wrong issuer", "wrong issuer"),
        ("unknown key", "unknown signing key"),
        ("tampered", "bad signature"),
        ("missing", "missing token"),
    ],
)
async def test_socket_with_a_bad_acs_token_is_refused(
    acs_settings: Any, key: SigningKey, caplog: pytest.LogCaptureFixture, case: str, reason: str
) -> None:
    """Expired, wrong-audience, wrong-issuer, unknown-key, tampered and missing tokens are
    refused, the reason is logged, and no call is created."""
    now = int(time.time())
    authorization = {
        "expired": key.sign({"iat": now - 600, "nbf": now - 600, "exp": now - 120}),
        "wrong audience": key.sign({"aud": "another-resource"}),
        "wrong issuer": key.sign({"iss": "https://login.example.com"}),
        "unknown key": SigningKey(kid="unknown", private_key=key.private_key).sign(),
        "tampered": tamper(key.sign(), exp=now + 86_400),
        "missing": None,
    }[case]
    caplog.set_level(logging.WARNING, logger="streaming.ingest")
    communicator = _socket(None if authorization is None else f"Bearer {authorization}")
    connected, _ = await communicator.connect()
    assert not connected
    assert not await Call.objects.aexists()
    assert any(record.getMessage().endswith(f": {reason}") for record in caplog.records)


# --- system checks ------------------------------------------------------------------------------


def _check_ids() -> set[str]:
    return {message.id for message in run_checks(tags=["callsite"]) if message.id}


@pytest.mark.parametrize("content", [None, "{not json", '{"keys": []}'])
def test_unusable_jwks_file_is_error_e002(
    settings: Any, tmp_path: Path, content: str | None
) -> None:
    """A configured JWKS file that is missing or not a JWKS is an error naming the file."""
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    settings.CALLSITE_ACS_JWKS_FILE = str(path)
    errors = [m for m in run_checks(tags=["callsite"]) if m.id == "callsite.E002"]
    assert len(errors) == 1
    assert str(path) in (errors[0].hint or "")


def test_valid_jwks_file_passes(settings: Any, tmp_path: Path, key: SigningKey) -> None:
    """A readable JWKS file raises no E002, and load_jwks_file returns its keys."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(jwks(key)))
    settings.CALLSITE_ACS_JWKS_FILE = str(path)
    assert "callsite.E002" not in _check_ids()
    assert [k.key_id for k in load_jwks_file(str(path)).keys] == [key.kid]


@pytest.mark.parametrize(
    ("resource_id", "debug", "warned"),
    [("", False, True), ("", True, False), (AUDIENCE, False, False)],
)
def test_unverified_tokens_warn_w003_outside_debug(
    settings: Any, resource_id: str, debug: bool, warned: bool
) -> None:
    """Without a resource id, a non-DEBUG server warns that ACS tokens are not verified."""
    settings.CALLSITE_ACS_RESOURCE_ID = resource_id
    settings.DEBUG = debug
    assert ("callsite.W003" in _check_ids()) is warned


@pytest.mark.parametrize(("debug", "warning"), [(True, "callsite.W001"), (False, "callsite.W002")])
def test_no_secret_warnings_only_without_token_verification(
    settings: Any, debug: bool, warning: str
) -> None:
    """With no shared secret, W001 (DEBUG) / W002 (production) fire only when token
    verification is off too: with it on, ACS's tokens authenticate it."""
    settings.CALLSITE_ACS_SHARED_SECRET = ""
    settings.DEBUG = debug
    settings.CALLSITE_ACS_RESOURCE_ID = ""
    assert warning in _check_ids()
    settings.CALLSITE_ACS_RESOURCE_ID = AUDIENCE
    assert not {"callsite.W001", "callsite.W002"} & _check_ids()
