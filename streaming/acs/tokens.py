"""Verification of the signed JWTs ACS puts on Call Automation callbacks and WebSockets.

ACS signs each callback and each WebSocket connection request with an RS256 JWT in
``Authorization: Bearer <jwt>``. Its issuer is fixed, its audience is the ACS resource's
immutable resource id, and its keys are published as a JWKS. PyJWT does the cryptography;
this module only chooses the keys, pins the algorithm and turns failures into short reasons.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from django.conf import settings

# RS256 only: accepting the algorithm named in the token would let "none" or an HMAC keyed
# with the public key through.
ALGORITHM = "RS256"
# Fetching keys blocks a worker thread; a slow endpoint must not hold a connection for long.
JWKS_TIMEOUT = 5.0
# An unknown ``kid`` refetches at once, so the cache can live long; a removed key stays
# trusted until it expires.
JWKS_LIFESPAN = 900.0
# At most one forced refetch per this many seconds, so tokens with made-up key ids cannot
# make every request a round trip to the JWKS endpoint.
JWKS_REFRESH_COOLDOWN = 5.0
# Real ACS tokens are a few kilobytes; anything far larger is not worth parsing.
MAX_TOKEN_LENGTH = 16_384


class TokenError(Exception):
    """A token was refused; ``reason`` says why, without echoing the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenConfig:
    """What a valid ACS token must match, and where its keys come from."""

    audience: str
    issuer: str
    jwks_url: str
    jwks_file: str
    leeway: int = 30


def token_config() -> TokenConfig | None:
    """The verification settings, or ``None`` when CALLSITE_ACS_RESOURCE_ID is empty (off)."""
    audience = settings.CALLSITE_ACS_RESOURCE_ID.strip()
    if not audience:
        return None
    return TokenConfig(
        audience=audience,
        issuer=settings.CALLSITE_ACS_TOKEN_ISSUER.strip(),
        jwks_url=settings.CALLSITE_ACS_JWKS_URL.strip(),
        jwks_file=settings.CALLSITE_ACS_JWKS_FILE.strip(),
    )


def load_jwks_file(path: str) -> jwt.PyJWKSet:
    """Read a JWKS file; raise TokenError naming the file if it is unreadable or not a JWKS."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TokenError(f"keys unavailable: cannot read JWKS file {path}: {error}") from error
    try:
        return jwt.PyJWKSet.from_json(text)
    except (ValueError, AttributeError, jwt.PyJWTError) as error:
        # AttributeError: valid JSON that is not an object (from_dict calls .get on it).
        raise TokenError(f"keys unavailable: {path} is not a JWKS: {error}") from error


class _KeyClient(jwt.PyJWKClient):
    """A PyJWKClient whose key-set failures are told apart from an unknown key id.

    PyJWKClient reports both as PyJWKClientError; raising TokenError here lets the error
    escape ``get_signing_key`` unchanged, so any PyJWKClientError left means "no such kid".
    """

    def get_signing_keys(self, refresh: bool = False) -> list[jwt.PyJWK]:
        try:
            return super().get_signing_keys(refresh)
        except (jwt.PyJWTError, OSError, ValueError) as error:
            # ValueError: a body that is not JSON; OSError: a connection lost mid-read.
            raise TokenError(f"keys unavailable: {str(error)[:200]}") from error


_CLAIM_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    # Subclasses before their bases.
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm"),
    (jwt.InvalidIssuedAtError, "bad issued-at time"),
    (jwt.DecodeError, "not a JWT"),
)


class AcsTokenVerifier:
    """Checks ACS tokens against one configuration; safe to share between threads."""

    def __init__(self, config: TokenConfig) -> None:
        self.config = config
        self._client: _KeyClient | None = None
        self._key_set: jwt.PyJWKSet | None = None
        if config.jwks_file:
            self._key_set = load_jwks_file(config.jwks_file)
        elif config.jwks_url:
            try:
                self._client = _KeyClient(
                    config.jwks_url,
                    lifespan=JWKS_LIFESPAN,
                    timeout=JWKS_TIMEOUT,
                    cooldown_duration=JWKS_REFRESH_COOLDOWN,
                )
            except jwt.PyJWKClientError as error:
                raise TokenError(f"keys unavailable: {error}") from error
        else:
            raise TokenError("keys unavailable: neither a JWKS file nor a JWKS URL is set")

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if it is a valid ACS token; TokenError otherwise."""
        if not token:
            raise TokenError("missing bearer token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenError("not a JWT") from error
        # Refused before any key lookup, so a forged algorithm never costs a fetch.
        if header.get("alg") != ALGORITHM:
            raise TokenError("unsupported algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("token names no signing key")
        key = self._signing_key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.MissingRequiredClaimError as error:
            raise TokenError(f"missing claim: {error.claim}") from error
        except jwt.PyJWTError as error:
            raise TokenError(_reason(error)) from error
        return claims

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        """The public key for ``kid``; a URL's key set is refetched once for an unknown id."""
        if self._client is not None:
            try:
                return self._client.get_signing_key(kid)
            except jwt.PyJWKClientError as error:
                raise TokenError("unknown signing key") from error
        assert self._key_set is not None
        for key in self._key_set.keys:
            if key.key_id == kid and key.public_key_use in ("sig", None):
                return key
        raise TokenError("unknown signing key")


def _reason(error: jwt.PyJWTError) -> str:
    for kind, reason in _CLAIM_ERRORS:
        if isinstance(error, kind):
            return reason
    return "invalid token"


@functools.lru_cache(maxsize=8)
def _verifier_for(config: TokenConfig) -> AcsTokenVerifier:
    return AcsTokenVerifier(config)


def get_verifier() -> AcsTokenVerifier | None:
    """The shared verifier for the current settings, or ``None`` when verification is off.

    One verifier per distinct configuration, so its key cache outlives a request. Raises
    TokenError when the configured keys cannot be loaded (that is not cached: a fixed file
    is picked up on the next request).
    """
    config = token_config()
    if config is None:
        return None
    return _verifier_for(config)


def bearer_token(value: str | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` value; ``None`` for any other value."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
