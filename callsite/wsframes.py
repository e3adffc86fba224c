"""Reading WebSocket frames on Daphne without Autobahn's per-frame machinery, for the common frame.

An ACS media socket sends 50 small text messages a second per participant, each one masked,
unfragmented frame. Autobahn reads every frame through a general state machine: a frame
header object, a new native XOR unmasker (a CFFI object created and freed per frame),
incremental UTF-8 validation, message assembly from a list, an observer event per message,
and one slice of the receive buffer per step. Measured on a saturated worker that was about
40 % of its time (docs/benchmarks.md, "Ingest capacity").

:class:`FastFrameReader` takes the frames that are complete in the receive buffer and need
nothing of that machinery, and hands everything else to Autobahn unchanged. A frame takes
the fast path only when all of these hold:

* the connection is open, no message is being assembled, and no frame is half read;
* FIN set, no RSV bits (no extension negotiated, so no compression), opcode text or binary;
* masked (RFC 6455 requires it of clients) with a length in the minimal encoding of at most
  65535 bytes, and the whole frame is in the buffer;
* within the frame and message size limits (``--websocket-max-*-size``; over them, Autobahn
  fails the connection with 1009 as before);
* a text frame is valid UTF-8 (otherwise Autobahn fails the connection with 1007, as before);
* frames are not being logged and nothing listens for Autobahn's ``message`` event.

What the application sees is the same: one ``websocket.receive`` event per message, with
``text`` or ``bytes``, in order. Unmasking uses ``websockets``' C helper (a dependency
already; its pure-Python fallback otherwise) and a text frame is decoded once, which is
also its UTF-8 validation. Pings, pongs, close frames, fragmented messages and anything
malformed take Autobahn's path.
"""

from __future__ import annotations

import time
from typing import Any

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the wheel ships the C extension
    from websockets.utils import apply_mask

OPCODE_TEXT = 1
OPCODE_BINARY = 2
STATE_OPEN = 3  # autobahn.websocket.protocol.WebSocketProtocol.STATE_OPEN


class FastFrameReader:
    """A mixin for Daphne's ``WebSocketProtocol``: complete common frames skip Autobahn.

    It overrides Autobahn's ``processData`` (called in a loop while buffered data is left)
    and delivers each message as Daphne's ``onMessage`` does.
    """

    # Attributes of Autobahn's and Daphne's protocol, declared for the type checker.
    data: bytes
    state: int
    current_frame: Any
    inside_message: bool
    failedByMe: bool
    logFrames: bool
    maxFramePayloadSize: int
    maxMessagePayloadSize: int
    trafficStats: Any
    autoPingTimeoutCall: Any
    autoPingRestartOnAnyTraffic: bool
    _perMessageCompress: Any
    _listeners: Any
    muted: bool
    last_ping: float
    application_queue: Any
    _cancelAutoPingTimeoutCall: Any

    def processData(self) -> bool:
        data = self.data
        end = len(data)
        at = 0
        while (
            end - at >= 6
            and self.state == STATE_OPEN
            and self.current_frame is None
            and not self.inside_message
            and not self.failedByMe
        ):
            first = data[at]
            opcode = first & 0x0F
            second = data[at + 1]
            length = second & 0x7F
            # FIN, no RSV bits, a data opcode; masked; not the 8-byte length form.
            if (first & 0xF0) != 0x80 or opcode not in (OPCODE_TEXT, OPCODE_BINARY):
                break
            if not second & 0x80 or length == 127:
                break
            header = 6
            if length == 126:
                header = 8
                if end - at < header:
                    break
                length = (data[at + 2] << 8) | data[at + 3]
                if length < 126:  # not the minimal encoding: Autobahn fails the connection
                    break
            if end - at < header + length:
                break  # the rest of the frame has not arrived: Autobahn waits for it
            if 0 < self.maxFramePayloadSize < length or 0 < self.maxMessagePayloadSize < length:
                break
            if self.logFrames or self._perMessageCompress is not None or self._listeners:
                break
            start = at + header
            payload = apply_mask(data[start : start + length], data[start - 4 : start])
            if opcode == OPCODE_TEXT:
                try:
                    text: str | None = payload.decode("utf-8")
                except UnicodeDecodeError:
                    break  # Autobahn's validator fails the connection with 1007
            else:
                text = None
            at = start + length
            stats = self.trafficStats
            stats.incomingOctetsWebSocketLevel += length
            stats.incomingOctetsAppLevel += length
            stats.incomingWebSocketFrames += 1
            stats.incomingWebSocketMessages += 1
            if self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
                self._cancelAutoPingTimeoutCall()
            self._deliver(text, payload)
        if at:
            self.data = data = data[at:]
        if not data and self.current_frame is None:
            return False
        # Autobahn also finishes a frame whose header it has read with nothing left to read:
        # a frame with no payload (a close without a code, an empty ping) ends that way.
        return bool(super().processData())  # type: ignore[misc]

    def _deliver(self, text: str | None, payload: bytes) -> None:
        """Daphne's ``onMessage``, with the text already decoded."""
        if self.muted:
            return
        self.last_ping = time.time()
        if text is None:
            self.application_queue.put_nowait({"type": "websocket.receive", "bytes": payload})
        else:
            self.application_queue.put_nowait({"type": "websocket.receive", "text": text})
