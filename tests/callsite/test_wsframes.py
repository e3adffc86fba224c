"""Frames read on the fast path (``callsite.wsframes``) and those left to Autobahn, over a real
socket to ``python -m callsite.server``: what the consumer receives is the same either way."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
import urllib.request
from collections.abc import Callable

import pytest
from django.conf import settings

from simulator.wire import transcription_data, transcription_metadata
from streaming.models import Call, Utterance
from tests.conftest import DaphneServer

pytestmark = pytest.mark.live_server

SECOND = 10_000_000


def frame(payload: bytes, opcode: int = 1, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One client frame, masked with a random key unless ``mask`` is given (b"" = unmasked)."""
    key = os.urandom(4) if mask is None else mask
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if key else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not key:
        return head + payload
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def final(n: int, words: int = 1) -> bytes:
    text = f"final number {n}" + " padding" * (words - 1)
    return transcription_data(
        text, offset=n * 2 * SECOND, duration=SECOND, speaker="4:+15551230000"
    ).encode()


def open_acs(server: DaphneServer, call: str) -> socket.socket:
    """A raw ACS socket, handshake done."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/acs/?token={settings.CALLSITE_ACS_SHARED_SECRET} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"x-ms-call-connection-id: {call}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed during the handshake: {response!r}"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    sock.sendall(frame(transcription_metadata(call_connection_id=call).encode()))
    return sock


def read_frames(
    sock: socket.socket, until_opcode: int, within: float = 10
) -> list[tuple[int, bytes]]:
    """Server frames (opcode, payload) up to and including the first with ``until_opcode``."""
    deadline = time.monotonic() + within
    buffer, frames = b"", []
    while time.monotonic() < deadline:
        while len(buffer) >= 2:
            size, at = buffer[1] & 0x7F, 2
            if size == 126:
                size, at = struct.unpack("!H", buffer[2:4])[0], 4
            if len(buffer) < at + size:
                break
            frames.append((buffer[0] & 0x0F, buffer[at : at + size]))
            buffer = buffer[at + size :]
            if frames[-1][0] == until_opcode:
                return frames
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
    raise AssertionError(f"no frame with opcode {until_opcode}: got {frames}")


def close_code(sock: socket.socket) -> int:
    """The code of the close frame the server sends."""
    _opcode, payload = read_frames(sock, 8)[-1]
    return int(struct.unpack("!H", payload[:2])[0])


def texts_stored(call: str, count: int, within: float = 15) -> list[str]:
    deadline = time.monotonic() + within
    texts: list[str] = []
    while time.monotonic() < deadline:
        texts = list(
            Utterance.objects.filter(call__connection_id=call)
            .order_by("offset_ticks")
            .values_list("text", flat=True)
        )
        if len(texts) >= count:
            return texts
        time.sleep(0.05)
    return texts


def frames_total(server: DaphneServer) -> int:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as response:
        body = response.read().decode()
    for line in body.splitlines():
        if line.startswith("callsite_ingest_frames_total "):
            return int(line.split()[1])
    raise AssertionError("no callsite_ingest_frames_total in /metrics")


def test_frames_of_every_shape_reach_the_consumer_in_order(daphne_server: DaphneServer) -> None:
    """Short and 16-bit-length text frames, a binary frame, a fragmented message and a ping,
    all in one write, then a frame split across writes: every final stored, in order."""
    sock = open_acs(daphne_server, "shapes")
    short = b'{"kind":"SomethingNew"}'  # a frame under 126 bytes: counted, not stored
    assert len(short) < 126
    first, rest = final(4)[:40], final(4)[40:]
    burst = b"".join(
        [
            frame(final(1)),
            frame(short),
            frame(b"are you there", opcode=9),  # a ping between data frames
            frame(final(2, words=20), opcode=2),  # binary frame of UTF-8 JSON
            frame(first, fin=False),  # a fragmented message: Autobahn assembles it
            frame(rest, opcode=0),
            frame(final(5, words=300)),  # 16-bit length
        ]
    )
    sock.sendall(burst)
    whole = frame(final(6))
    sock.sendall(whole[:3])  # a header cut short
    time.sleep(0.05)
    sock.sendall(whole[3:20])
    time.sleep(0.05)
    sock.sendall(whole[20:] + frame(final(7)))
    pong = read_frames(sock, 10)[-1]
    assert pong == (10, b"are you there")
    texts = texts_stored("shapes", 6)
    assert [t.split(" padding")[0] for t in texts] == [
        f"final number {n}" for n in (1, 2, 4, 5, 6, 7)
    ]
    assert frames_total(daphne_server) == 8  # metadata, 6 finals, the unknown kind
    sock.sendall(frame(struct.pack("!H", 1000), opcode=8))
    assert close_code(sock) == 1000
    sock.close()
    assert Call.objects.filter(connection_id="shapes").exists()


def test_invalid_utf8_in_a_text_frame_fails_with_1007(daphne_server: DaphneServer) -> None:
    sock = open_acs(daphne_server, "bad-utf8")
    sock.sendall(frame(final(1)) + frame(b'{"kind": "\xff\xfe"}'))
    assert close_code(sock) == 1007
    sock.close()
    assert texts_stored("bad-utf8", 1) == ["final number 1"]


def test_an_unmasked_frame_fails_with_1002(daphne_server: DaphneServer) -> None:
    sock = open_acs(daphne_server, "unmasked")
    sock.sendall(frame(final(1)) + frame(final(2), mask=b""))
    assert close_code(sock) == 1002
    sock.close()
    assert texts_stored("unmasked", 1) == ["final number 1"]


def test_a_frame_over_the_limit_fails_with_1009(
    daphne_factory: Callable[..., DaphneServer],
) -> None:
    server = daphne_factory(CALLSITE_WS_MAX_MESSAGE_BYTES="1024")
    sock = open_acs(server, "too-big")
    sock.sendall(frame(final(1)) + frame(final(2, words=200)))
    assert close_code(sock) == 1009
    sock.close()
    assert texts_stored("too-big", 1) == ["final number 1"]


@pytest.mark.parametrize("ping", [False, True], ids=["close", "empty-ping-then-close"])
def test_a_frame_with_no_payload_is_answered(daphne_server: DaphneServer, ping: bool) -> None:
    """A close without a code (what a browser's ``close()`` sends) and an empty ping have no
    payload: the server still finishes them, answering the close with its own (1005: no
    code given), after the data frames before it were delivered."""
    sock = open_acs(daphne_server, f"empty-frames-{ping}")
    pings = frame(b"", opcode=9) if ping else b""
    sock.sendall(frame(final(1)) + pings + frame(b"", opcode=8))
    assert close_code(sock) in (1000, 1005)
    sock.close()
    assert texts_stored(f"empty-frames-{ping}", 1) == ["final number 1"]
