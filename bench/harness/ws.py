"""A raw asyncio WebSocket client: the one the load generators use for every socket.

It is an ``asyncio.Protocol`` with no library in between, so one process can drive hundreds
of sockets: frames are written with masking key zero (masking is then a no-op, and a frame can
be built once and written many times), and what the server sends is read as whole messages,
handed to :meth:`WebSocketClient.message`. Pings are answered; a close frame or a lost
connection is noted in ``closed_by_server``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import struct
import time
from collections.abc import Mapping
from typing import cast

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CLOSE_LIMIT = 10.0  # seconds a closing socket may take before it is aborted


def client_frame_header(length: int, opcode: int = OP_TEXT) -> bytes:
    """Header of one masked client frame with masking key zero (masking is then a no-op)."""
    first = bytes([0x80 | opcode])
    if length < 126:
        return first + bytes([0x80 | length]) + b"\0\0\0\0"
    if length < 65536:
        return first + bytes([0x80 | 126]) + length.to_bytes(2, "big") + b"\0\0\0\0"
    return first + bytes([0x80 | 127]) + length.to_bytes(8, "big") + b"\0\0\0\0"


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    return client_frame_header(len(payload), opcode) + payload


class WebSocketClient(asyncio.Protocol):
    """One client socket to ``path`` on 127.0.0.1:``port``, with extra request headers.

    ``opened`` resolves with the handshake (or fails with the reason it did not happen), and
    ``gone`` when the connection is lost, whoever closed it.
    """

    def __init__(self, path: str, port: int, headers: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.port = port
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.fragments: bytearray | None = None
        self.handshaken = False
        self.closed_by_server: str | None = None

    @property
    def where(self) -> str:
        """The path without its query (which may hold a token), for messages."""
        return self.path.split("?", 1)[0]

    @property
    def live(self) -> bool:
        return self.handshaken and not self.gone.done()

    @property
    def writable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, though it is one in kind.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self._fail(f"{self.where}: handshake refused: {status.decode(errors='replace')}")
                return
            self.handshaken = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._read_frames(now)

    def _read_frames(self, now: float) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
            masked, length = buf[1] & 0x80, buf[1] & 0x7F
            start = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = int.from_bytes(buf[2:10], "big"), 10
            mask = bytes(buf[start : start + 4]) if masked else b""
            start += len(mask)
            if len(buf) < start + length:
                return
            payload = bytes(buf[start : start + length])
            del buf[: start + length]
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                if opcode:
                    self.fragments = bytearray()
                if self.fragments is None:
                    continue
                self.fragments += payload
                if fin:
                    self.message(bytes(self.fragments), now)
                    self.fragments = None
            elif opcode == OP_PING and self.transport is not None:
                self.transport.write(client_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.closed_by_server = self.closed_by_server or f"close frame {code}"
                self._fail(f"{self.where}: closed by the server ({code})")

    def message(self, raw: bytes, now: float) -> None:
        """One whole message from the server; ``now`` is ``time.time()`` at its arrival."""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed_by_server is None:
            self.closed_by_server = f"connection lost ({exc or 'EOF'})"
        self._fail(f"{self.where}: {self.closed_by_server}")
        if not self.gone.done():
            self.gone.set_result(None)

    def waiting(self) -> tuple[asyncio.Future[None], ...]:
        """The futures that fail with the reason when the socket fails."""
        return (self.opened,)

    def _fail(self, reason: str) -> None:
        for future in self.waiting():
            if not future.done():
                future.set_exception(ConnectionError(reason))
                future.exception()  # retrieved: a socket nobody waits for is not an error
        if self.transport is not None and not self.handshaken:
            self.transport.close()

    # sending and closing
    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(text.encode()))

    def close(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None:
            self.transport.abort()

    async def close_cleanly(self, limit: float = CLOSE_LIMIT) -> None:
        """A WebSocket close (1000) and the server's answer; aborted after ``limit`` seconds."""
        if self.writable:
            assert self.transport is not None
            self.transport.write(client_frame(struct.pack("!H", 1000), OP_CLOSE))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.gone), limit)
        if self.transport is not None and not self.gone.done():
            self.transport.abort()
