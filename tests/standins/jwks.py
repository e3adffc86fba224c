"""A stand-in for ACS's token signer and its JWKS endpoint.

``SigningKey`` mints RS256 tokens as ACS would; ``JwksServer`` serves a mutable key set over
HTTP on a loopback port and counts the requests it answers, so tests can see when a verifier
fetches keys.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://acscallautomation.communication.azure.com"
AUDIENCE = "11111111-2222-3333-4444-555555555555"


@dataclass
class SigningKey:
    """An RSA key pair with a key id, as ACS holds it."""

    kid: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:12]}")
    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        """The public half as a JWKS entry."""
        entry: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**entry, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, claims: dict[str, Any] | None = None, *, kid: str | None = None) -> str:
        """An RS256 token with ACS's claims, overridden by ``claims`` (None values removed)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        payload.update(claims or {})
        payload = {key: value for key, value in payload.items() if value is not None}
        return jwt.encode(
            payload, self.private_key, algorithm="RS256", headers={"kid": kid or self.kid}
        )


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A JWKS document publishing ``keys``."""
    return {"keys": [key.jwk() for key in keys]}


class JwksServer:
    """Serves ``document`` as JSON (or ``raw`` when set) at any path; counts answered GETs."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.raw: bytes | None = None
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                    body = server.raw or json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/calling/keys"
        # A short poll interval: shutdown() waits for it, and every test stops a server.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def publish(self, *keys: SigningKey) -> None:
        """Serve exactly ``keys`` from now on."""
        with self._lock:
            self.document = jwks(*keys)

    def stop(self) -> None:
        """Stop serving; connections to ``url`` are then refused. Safe to call twice."""
        if not self._thread.is_alive():
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
