"""A local stand-in for the ACS Call Automation REST API, driven by the real SDK in tests.

It speaks HTTPS, because ``CallAutomationClient.from_connection_string`` always does: the SDK's
connection-string parser keeps only the host and the client then prefixes ``https://``, so an
``endpoint=http://...`` string still produces HTTPS requests. The stand-in therefore serves TLS
with a throwaway CA generated per process, and the ``call_automation_standin`` fixture makes the
SDK trust it through ``REQUESTS_CA_BUNDLE`` (honoured by requests, azure-core's default
transport, because azure-core leaves ``trust_env`` on). The code under test runs unchanged.

Like the service, it checks the HMAC-SHA256 signature of every request against its access key
(401 on a mismatch), requires ``api-version``, and answers every route ``streaming.acs`` uses
with the status and body the SDK expects (``_ROUTES``, ``_STATUS``): answering, connecting to a
room and creating calls (CallConnectionProperties), the streaming and transcription switches,
hanging up, adding / cancelling / removing / muting participants, hold and unhold, transfer,
DTMF, play and cancel, and recordings (start, pause, resume, stop). Anything else is a 404 with
``{"error": {"code", "message"}}``. Each request is recorded with its parsed body.

What ACS reports later comes from ``standin.book`` (``tests/standins/call_events.py``): the
callbacks each accepted request produces (``CallConnected`` and ``ParticipantsUpdated`` for a
call it answered, connected or created, ``AddParticipantSucceeded``, ``HoldFailed``,
``RecordingStateChanged``...), delivered by the test or, with ``book.auto_deliver``, POSTed
to the callback URL at once; ``book.fail_outcome(route)`` makes one outcome a failure.

``fail_next()`` makes the next request(s) fail with a chosen status and error body.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.standins.call_events import CallBook, identifier_model

# (method, path pattern, route name): every route of the REST API the SDK calls here.
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/calling/callConnections:answer$"), "answer"),
    ("POST", re.compile(r"^/calling/callConnections:connect$"), "connect"),
    ("POST", re.compile(r"^/calling/callConnections$"), "createCall"),
    (
        "POST",
        re.compile(
            r"^/calling/callConnections/(?P<id>[^/:]+)"
            r":(?P<action>startTranscription|stopTranscription|startMediaStreaming"
            r"|stopMediaStreaming|terminate|transferToParticipant|play|cancelAllMediaOperations"
            r"|sendDtmfTones|hold|unhold)$"
        ),
        "",
    ),
    (
        "POST",
        re.compile(
            r"^/calling/callConnections/(?P<id>[^/:]+)/participants"
            r":(?P<action>add|remove|mute|cancelAddParticipant)$"
        ),
        "participants",
    ),
    ("DELETE", re.compile(r"^/calling/callConnections/(?P<id>[^/:]+)$"), "hangUp"),
    ("POST", re.compile(r"^/calling/recordings$"), "startRecording"),
    (
        "POST",
        re.compile(r"^/calling/recordings/(?P<recording>[^/:]+):(?P<action>pause|resume)$"),
        "recording",
    ),
    ("DELETE", re.compile(r"^/calling/recordings/(?P<recording>[^/:]+)$"), "stopRecording"),
]
# Participant routes, by the name their callbacks go by.
_PARTICIPANT_ROUTES = {
    "add": "addParticipant",
    "remove": "removeParticipant",
    "mute": "mute",
    "cancelAddParticipant": "cancelAddParticipant",
}
# Status codes the SDK expects for each route (anything else it raises for).
_STATUS = {
    "answer": 200,
    "connect": 200,
    "createCall": 201,
    "terminate": 204,
    "hangUp": 204,
    "mute": 200,
    "hold": 200,
    "unhold": 200,
    "startRecording": 200,
    "stopRecording": 204,
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it.

    ``headers`` keys are lower-cased; ``body`` is the parsed JSON (None for an empty body);
    ``route`` names what the request was recognised as (``answer``, ``startTranscription``,
    ``terminate``, ``hangUp``..., or ``unknown``); ``signature_valid`` says whether the HMAC
    ``Authorization`` header matched the stand-in's key.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    route: str
    call_connection_id: str | None
    signature_valid: bool
    recording_id: str | None = None


@dataclass
class _Failure:
    status: int
    code: str
    message: str
    remaining: int


@dataclass
class _Tls:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


@functools.cache
def _tls_material() -> _Tls:
    """A CA and a 127.0.0.1 server certificate it signed, made once per test process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Call Automation stand-in CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _Tls(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@functools.cache
def _tls_files() -> Path:
    """The TLS material as PEM files, written once per process.

    They outlive every stand-in on purpose: a test that stops its stand-in to see a refused
    connection still has ``REQUESTS_CA_BUNDLE`` pointing here, and requests refuses to send
    anything when that file is missing. The directory goes away when the process exits.
    """
    tls = _tls_material()
    directory = tempfile.TemporaryDirectory(prefix="ca-standin-")
    _keep_alive.append(directory)
    path = Path(directory.name)
    (path / "ca.pem").write_bytes(tls.ca_pem)
    (path / "cert.pem").write_bytes(tls.cert_pem)
    (path / "key.pem").write_bytes(tls.key_pem)
    return path


# Holds the TemporaryDirectory so its finalizer (which deletes the files) runs only at exit.
_keep_alive: list[tempfile.TemporaryDirectory[str]] = []


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: CallAutomationStandIn
    tls: ssl.SSLContext

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        # The handshake runs on the first read, in the handler's thread, so a client that
        # stalls mid-handshake cannot block the accept loop.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean; every request is in ``standin.requests`` instead."""

    def do_POST(self) -> None:
        self.server.standin._handle(self)

    def do_DELETE(self) -> None:
        self.server.standin._handle(self)

    def do_GET(self) -> None:
        self.server.standin._handle(self)

    def do_PUT(self) -> None:
        self.server.standin._handle(self)

    def do_PATCH(self) -> None:
        self.server.standin._handle(self)


@dataclass
class CallAutomationStandIn:
    """The stand-in service. Use as a context manager, or ``start()`` / ``stop()``.

    ``call_connection_id``, ``server_call_id`` and ``correlation_id``, when set, are returned
    by every answer instead of freshly generated ones.
    """

    call_connection_id: str | None = None
    server_call_id: str | None = None
    correlation_id: str | None = None
    access_key: str = field(
        default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    book: CallBook = field(default_factory=CallBook)
    _requests: list[RecordedRequest] = field(default_factory=list, init=False, repr=False)
    _failures: list[_Failure] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: _Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    port: int = field(default=0, init=False)
    ca_path: str = field(default="", init=False)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> CallAutomationStandIn:
        """Listen on a free port of 127.0.0.1 and serve from a background thread."""
        files = _tls_files()
        self.ca_path = str(files / "ca.pem")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files / "cert.pem", files / "key.pem")

        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        server.tls = context
        self._server = server
        self.port = int(server.server_address[1])
        # A short poll keeps stop() (which waits for the loop to notice) fast.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ca-standin-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: later requests get a refused connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> CallAutomationStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what tests use ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The service endpoint, e.g. ``https://127.0.0.1:50123``."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        """An ACS connection string for this stand-in."""
        return f"endpoint={self.url}/;accesskey={self.access_key}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self,
        *,
        status: int = 500,
        code: str = "InternalServerError",
        message: str = "The stand-in was told to fail this request.",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests (any route) with ``status`` and an error body.

        azure-core retries a POST answered 500, 503 or 504 by itself, so such a failure meant
        to reach the caller has to outlast the retries (``times=3`` with the settings of
        ``streaming.acs.client``).
        """
        with self._lock:
            self._failures.append(_Failure(status, code, message, times))

    # --- the service ------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        route, call_connection_id, recording_id = self._route(handler.command, split.path)
        try:
            body: Any = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = raw.decode("utf-8", "replace"), True
        record = RecordedRequest(
            method=handler.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            route=route,
            call_connection_id=call_connection_id,
            signature_valid=self._signature_valid(handler.command, handler.path, headers, raw),
            recording_id=recording_id,
        )
        with self._lock:
            self._requests.append(record)
            failure = self._failures[0] if self._failures else None
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)

        if failure is not None:
            return _send_error(handler, failure.status, failure.code, failure.message)
        if not record.signature_valid:
            return _send_error(
                handler, 401, "Unauthorized", "The HMAC signature does not match the access key."
            )
        if "api-version" not in record.query:
            return _send_error(
                handler,
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter is required.",
            )
        if route == "unknown":
            return _send_error(
                handler,
                404,
                "NotFound",
                f"No HTTP resource was found that matches the request URI '{split.path}'.",
            )
        if bad_json or (handler.command == "POST" and not isinstance(body, dict | None)):
            return _send_error(handler, 400, "BadRequest", "The request body is not a JSON object.")
        return self._respond(handler, record, body or {})

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, str | None, str | None]:
        for route_method, pattern, name in _ROUTES:
            match = pattern.match(path)
            if method != route_method or match is None:
                continue
            found = match.groupdict()
            action = found.get("action")
            if name == "participants":
                name = _PARTICIPANT_ROUTES[str(action)]
            elif name == "recording":
                name = f"{action}Recording"
            elif not name:
                name = str(action)
            return name, found.get("id"), found.get("recording")
        return "unknown", None, None

    def _respond(self, handler: _Handler, record: RecordedRequest, body: dict[str, Any]) -> None:
        route = record.route
        if route in ("answer", "connect", "createCall"):
            return self._connection(handler, route, body)
        if route in ("startRecording", "pauseRecording", "resumeRecording", "stopRecording"):
            return self._recording(handler, record, body)
        # A call the stand-in did not answer gets its answer, and no callbacks.
        connection = self.book.connections.get(record.call_connection_id or "")
        payload: Any = None
        if route == "addParticipant":
            payload = {
                "participant": {
                    "identifier": identifier_model(body["participantToAdd"]["rawId"]),
                    "isMuted": False,
                    "isOnHold": False,
                },
                "operationContext": body.get("operationContext"),
                "invitationId": str(uuid.uuid4()),
            }
        elif route == "cancelAddParticipant":
            payload = {k: body.get(k) for k in ("invitationId", "operationContext")}
        elif route in ("removeParticipant", "mute", "transferToParticipant", "sendDtmfTones"):
            payload = {"operationContext": body.get("operationContext")}
        _send(handler, _STATUS.get(route, 202), payload)
        self.book.outcome(route, body, connection)
        return None

    def _recording(self, handler: _Handler, record: RecordedRequest, body: dict[str, Any]) -> None:
        if record.route == "startRecording":
            recording_id = self.book.recording_started(body)
            return _send(
                handler,
                200,
                {
                    "recordingId": recording_id,
                    "recordingState": "active",
                    "recordingKind": "AzureCommunicationServices",
                },
            )
        recording_id = str(record.recording_id)
        if recording_id not in self.book.recordings:
            return _send_error(handler, 404, "8522", "Recording not found.")
        _send(handler, _STATUS.get(record.route, 202))
        state = "active" if record.route == "resumeRecording" else "inactive"
        self.book.recording_state(recording_id, state)
        if record.route == "stopRecording":
            self.book.recordings.pop(recording_id, None)
        return None

    def _signature_valid(
        self, method: str, path_and_query: str, headers: dict[str, str], raw: bytes
    ) -> bool:
        """Check the ``Authorization: HMAC-SHA256 SignedHeaders=...&Signature=`` header.

        The signed string is ``METHOD\\npath?query\\n<x-ms-date>;<host>;<x-ms-content-sha256>``,
        keyed with the base64-decoded access key, as the SDK's HMACCredentialsPolicy builds it.
        """
        authorization = headers.get("authorization", "")
        prefix = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="
        content_hash = base64.b64encode(hashlib.sha256(raw).digest()).decode()
        if (
            not authorization.startswith(prefix)
            or headers.get("x-ms-content-sha256") != content_hash
        ):
            return False
        to_sign = (
            f"{method}\n{path_and_query}\n"
            f"{headers.get('x-ms-date', '')};{headers.get('host', '')};{content_hash}"
        )
        expected = base64.b64encode(
            hmac.new(base64.b64decode(self.access_key), to_sign.encode(), hashlib.sha256).digest()
        ).decode()
        return hmac.compare_digest(authorization[len(prefix) :], expected)

    def _connection(self, handler: _Handler, route: str, body: dict[str, Any]) -> None:
        required = {
            "answer": ("incomingCallContext", "callbackUri"),
            "connect": ("callLocator", "callbackUri"),
            "createCall": ("targets", "callbackUri"),
        }[route]
        missing = [name for name in required if not body.get(name)]
        if missing:
            return _send_error(
                handler, 400, "BadRequest", f"Missing required field(s): {', '.join(missing)}."
            )
        properties: dict[str, Any] = {
            "callConnectionId": self.call_connection_id or str(uuid.uuid4()),
            # Real server call ids are base64 of a conversation URL; any opaque string will do.
            "serverCallId": self.server_call_id
            or base64.b64encode(f"server-call-{uuid.uuid4()}".encode()).decode(),
            "callbackUri": body["callbackUri"],
            "callConnectionState": "connecting",
            "correlationId": self.correlation_id or str(uuid.uuid4()),
        }
        media = body.get("mediaStreamingOptions")
        if isinstance(media, dict):
            properties["mediaStreamingSubscription"] = {
                "id": str(uuid.uuid4()),
                "state": "inactive",
                "subscribedContentTypes": [media.get("contentType", "audio")],
            }
        transcription = body.get("transcriptionOptions")
        if isinstance(transcription, dict):
            result_types = ["final"]
            if transcription.get("enableIntermediateResults"):
                result_types.append("intermediate")
            properties["transcriptionSubscription"] = {
                "id": str(uuid.uuid4()),
                "state": "inactive",
                "subscribedResultTypes": result_types,
                "locale": transcription.get("locale"),
            }
        targets = [t["rawId"] for t in body.get("targets") or [] if isinstance(t, dict)]
        connection = self.book.connection_opened(
            connection_id=properties["callConnectionId"],
            callback_url=body["callbackUri"],
            route=route,
            targets=targets,
        )
        connection.server_call_id = properties["serverCallId"]
        connection.correlation_id = properties["correlationId"]
        _send(handler, _STATUS[route], properties)
        self.book.outcome(route, body, connection)
        return None


def _send(handler: BaseHTTPRequestHandler, status: int, payload: Any = None) -> None:
    data = b"" if payload is None else json.dumps(payload).encode()
    handler.send_response(status)
    if payload is not None:
        handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("x-ms-client-request-id", handler.headers.get("x-ms-client-request-id", ""))
    handler.end_headers()
    if data:
        handler.wfile.write(data)


def _send_error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    _send(handler, status, {"error": {"code": code, "message": message}})


@pytest.fixture
def call_automation_standin() -> Iterator[CallAutomationStandIn]:
    """A running stand-in that the SDK trusts for the duration of the test.

    Point the code under test at it with ``settings.ACS_CONNECTION_STRING =
    call_automation_standin.connection_string``.
    """
    with CallAutomationStandIn() as standin, pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", standin.ca_path)
        # requests also reads proxy variables from the environment; loopback must bypass them.
        no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
        patch.setenv("no_proxy", ",".join(filter(None, [no_proxy, "127.0.0.1", "localhost"])))
        yield standin
