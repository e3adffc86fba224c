"""The WebSocket endpoint that ACS streams a call to: the socket, and nothing else.

The consumer authenticates the connection, parses each frame with the pure parser and hands
the packet to the stream that owns the call's state (``streaming.ingest.stream``). A frame
that cannot be parsed is counted and logged by the socket's frame policy
(``streaming.ingest.frames``) and the socket stays open.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from streaming.acs.auth import acs_socket_decision, call_connection_id, header
from streaming.acs.packets import AudioData, AudioMetadata, PacketError, parse_packet
from streaming.ingest.frames import FramePolicy
from streaming.ingest.playback import Playback
from streaming.ingest.stream import AcsStream
from streaming.metrics import INGEST
from streaming.retry import RetriesExhausted
from streaming.tasks import spawn

logger = logging.getLogger(__name__)


class AcsIngestConsumer(AsyncWebsocketConsumer):
    """Receives one ACS media or transcription stream for one call."""

    stream: AcsStream | None = None
    playback: Playback | None = None
    policy: FramePolicy

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Read the socket in a plain loop.

        Channels' default runs ``await_many_dispatch`` over the socket and a channel-layer
        inbox, a new task and an ``asyncio.wait`` per message. ACS sockets never receive
        channel-layer messages (events leave through ``group_send``), so the inbox and the
        per-message task are pure cost on a path taken 50 times a second per participant.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every message, a thread hop per
        # frame that caps ingest at a fraction of what the event loop can do. The stream
        # reaches the database through database_sync_to_async, which does that itself.
        # Frames go straight to receive(), one coroutine fewer than websocket_receive().
        if message["type"] == "websocket.receive":
            if self.policy.close_code is None:  # frames after a close is asked are dropped
                await self.receive(message.get("text"), message.get("bytes"))
                if self.policy.close_code is not None:
                    await self.close(code=self.policy.close_code)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        connection_id = call_connection_id(self.scope)
        self.policy = FramePolicy(f"call {connection_id}")
        # Verifying an ACS token may fetch signing keys over the network: off the event loop.
        decision = await sync_to_async(acs_socket_decision, thread_sensitive=False)(self.scope)
        client = self.scope.get("client")
        if not decision.allowed:
            logger.warning("refused ACS socket from %s: %s", client, decision.reason)
            await self.close()
            return
        if connection_id is None:
            logger.warning(
                "refused ACS socket from %s: no usable call connection id "
                "(x-ms-call-connection-id header or ?call=)",
                client,
            )
            await self.close()
            return
        try:
            self.stream = await AcsStream.open(
                connection_id=connection_id,
                correlation_id=(header(self.scope, b"x-ms-call-correlation-id") or "")[:200],
                reject=self.policy.reject,
            )
        except RetriesExhausted:
            await self.close()  # refused before it is accepted: ACS tries the stream again
            return
        await self.accept()
        INGEST.sockets_open += 1
        INGEST.sockets_total += 1
        logger.info("ACS stream opened for call %s (%s)", connection_id, decision.reason)

    async def disconnect(self, code: int) -> None:
        if self.stream is None:
            return
        INGEST.sockets_open -= 1
        self.policy.summary()
        if self.playback is not None:
            await self.playback.close()
        # Flushing recognition can outlast the socket's instance (Daphne cancels an instance
        # 10 s after its client left): the stream is finished by a task of its own, which
        # the instance waits for while it may, and which goes on if the instance is cancelled.
        finishing = spawn(self.stream.finish(code), f"{self.policy.label}: finishing the stream")
        await asyncio.shield(finishing)

    async def _start_playback(self, sample_rate: int) -> None:
        """A media socket of a bidirectional call can play announcements into it."""
        stream = self.stream
        assert stream is not None

        async def send(text: str) -> None:
            await self.send(text_data=text)

        self.playback = Playback(
            call_id=stream.call_id, sample_rate=sample_rate, send=send, label=self.policy.label
        )
        await self.playback.start()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        stream = self.stream
        assert stream is not None
        policy = self.policy
        policy.frames += 1
        INGEST.frames += 1
        if stream.live is not None:
            stream.live.packets += 1
        raw = text_data if text_data is not None else bytes_data
        try:
            packet = parse_packet(raw if raw is not None else b"")
        except PacketError as error:
            policy.reject(error.reason)
            return
        try:
            if type(packet) is AudioData:  # the hot path: 50 frames a second per participant
                INGEST.audio_frames += 1
                if packet.timestamp is not None:
                    INGEST.observe_lag(packet.timestamp)
                pending = stream.audio_frame(packet)
                if pending is not None:
                    await pending
                return
            await stream.packet(packet)
            if type(packet) is AudioMetadata and stream.bidirectional and self.playback is None:
                await self._start_playback(packet.sample_rate)
        except Exception:
            # An exception escaping a consumer closes its socket: the rest of the call would
            # be lost for one packet's sake. Log it and go on with the next frame.
            INGEST.internal_errors += 1
            logger.exception(
                "%s: handling frame %d (%s) failed",
                policy.label,
                policy.frames,
                type(packet).__name__,
            )
