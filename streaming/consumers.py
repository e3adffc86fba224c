"""The WebSocket endpoint that ACS streams a call to.

The consumer is a protocol adapter: it authenticates the connection, parses each frame with the
pure parser, and hands the packet to a service. A frame that cannot be parsed is logged and
counted with its reason and the socket stays open: one bad packet must not cost the rest of
the call. Only a stream of nothing but bad frames is closed (4008, see ``reject``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from streaming import events, services
from streaming.audio_path import CallAudio
from streaming.auth import acs_socket_decision, call_connection_id, header
from streaming.db import db_call
from streaming.events import CaptionPayload, ParticipantPayload
from streaming.heartbeat import WATCH, worker_name
from streaming.live import LIVE, MAX_CALL_SECONDS, LiveCall
from streaming.metrics import INGEST
from streaming.models import TranscriptSource
from streaming.packets import (
    TICKS_PER_SECOND,
    AudioData,
    AudioMetadata,
    DtmfData,
    Packet,
    PacketError,
    TranscriptionData,
    TranscriptionMetadata,
    parse_packet,
)
from streaming.recognizers import RecognizerError, get_recognizer
from streaming.retry import RetriesExhausted, db_write

logger = logging.getLogger(__name__)

MAX_REJECT_CATEGORIES = 50
# Close code for a stream that sends nothing but bad frames: RFC 6455's 1008 (policy
# violation) in the application's range, the only codes an application may send through
# Daphne (its WebSocket library refuses anything but 1000 and 3000-4999).
POLICY_VIOLATION = 4008
# How the parser's reason for a frame of an unknown kind begins; see AcsIngestConsumer.reject.
UNKNOWN_KIND = "unknown packet kind "
# Streams whose sockets closed and whose last results are still being stored.
FINISHING: set[asyncio.Task[None]] = set()


class AcsIngestConsumer(AsyncWebsocketConsumer):
    """Receives one ACS media or transcription stream for one call."""

    call_id: int | None = None
    stream_id = 0
    audio: CallAudio | None = None
    live: LiveCall | None = None
    # The run of rejected frames (see reject()): its length, its last frame, and the close
    # code once the run is long enough to close the socket.
    bad_run = 0
    bad_run_frame = 0
    close_code: int | None = None

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
        # frame that caps ingest at a fraction of what the event loop can do. Services reach
        # the database through database_sync_to_async, which does that housekeeping itself.
        # Frames go straight to receive(), one coroutine fewer than websocket_receive().
        if message["type"] == "websocket.receive":
            if self.close_code is None:  # frames still arriving after reject() closed are dropped
                await self.receive(message.get("text"), message.get("bytes"))
                if self.close_code is not None:
                    await self.close(code=self.close_code)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        self.connection_id = call_connection_id(self.scope)
        self.rejected: Counter[str] = Counter()
        self.frames = 0
        self.participants: dict[str, ParticipantPayload] = {}
        # Verifying an ACS token may fetch signing keys over the network: off the event loop.
        decision = await sync_to_async(acs_socket_decision, thread_sensitive=False)(self.scope)
        client = self.scope.get("client")
        if not decision.allowed:
            logger.warning("refused ACS socket from %s: %s", client, decision.reason)
            await self.close()
            return
        if self.connection_id is None:
            logger.warning(
                "refused ACS socket from %s: no usable call connection id "
                "(x-ms-call-connection-id header or ?call=)",
                client,
            )
            await self.close()
            return
        correlation_id = (header(self.scope, b"x-ms-call-correlation-id") or "")[:200]
        try:
            call, self.stream_id = await db_write(
                f"call {self.connection_id}: stream opened",
                services.stream_opened,
                connection_id=self.connection_id,
                correlation_id=correlation_id,
                worker=worker_name(),
            )
        except RetriesExhausted:
            # Refused before it is accepted: ACS tries the stream again.
            await self.close()
            return
        self.call_id = call["id"]
        self.opened_at = datetime.now(UTC)
        started = datetime.fromisoformat(call["started_at"]) if call["started_at"] else None
        self.live = await LIVE.attach(self.call_id, f"call {self.connection_id}", started)
        WATCH.hold(self.stream_id, self.live)
        await self.accept()
        INGEST.sockets_open += 1
        INGEST.sockets_total += 1
        logger.info("ACS stream opened for call %s (%s)", self.connection_id, decision.reason)

    async def disconnect(self, code: int) -> None:
        if self.call_id is None:
            return
        INGEST.sockets_open -= 1
        if self.rejected:
            logger.warning(
                "call %s: %d of %d frames rejected: %s",
                self.connection_id,
                sum(self.rejected.values()),
                self.frames,
                dict(self.rejected.most_common(10)),
            )
        # Flushing recognition can outlast the socket's instance (Daphne cancels an instance
        # 10 s after its client left): the stream is finished by a task of its own, which
        # the instance waits for while it may, and which goes on if the instance is cancelled.
        finishing = asyncio.create_task(self.finish_stream(code), name=f"finish {self.call_id}")
        FINISHING.add(finishing)
        finishing.add_done_callback(FINISHING.discard)
        await asyncio.shield(finishing)

    async def finish_stream(self, code: int) -> None:
        """Store the last finals and talk time, then record that the stream closed."""
        assert self.call_id is not None
        if self.audio is not None:
            try:
                await self.audio.close()
            except Exception:
                logger.exception("call %s: closing the audio path failed", self.connection_id)
        if self.live is not None and self.audio in self.live.audio_paths:
            self.live.audio_paths.remove(self.audio)
        WATCH.release(self.stream_id)
        # If the database stays away, the failure is logged; the call's state is put right by
        # its next stream or Call Automation callback.
        call = None
        with contextlib.suppress(RetriesExhausted):
            call = await db_write(
                f"call {self.connection_id}: stream closed",
                services.call_stream_closed,
                call_id=self.call_id,
                stream_id=self.stream_id,
            )
        if self.live is not None:
            try:
                await LIVE.detach(self.live, call)
            except Exception:
                logger.exception("call %s: saving the final figures failed", self.connection_id)
        logger.info("ACS stream closed for call %s (code %s)", self.connection_id, code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.frames += 1
        INGEST.frames += 1
        if self.live is not None:
            self.live.packets += 1
        raw = text_data if text_data is not None else bytes_data
        try:
            packet = parse_packet(raw if raw is not None else b"")
        except PacketError as error:
            self.reject(error.reason)
            return
        try:
            if type(packet) is AudioData:  # the hot path: 50 frames a second per participant
                INGEST.audio_frames += 1
                if packet.timestamp is not None:
                    INGEST.observe_lag(packet.timestamp)
                if self.audio is None:
                    self.reject("AudioData before a usable AudioMetadata", hostile=False)
                    return
                pending = self.audio.frame_now(packet)
                if pending is not None:
                    await pending
                return
            await self.handle_packet(packet)
        except Exception:
            # An exception escaping a consumer closes its socket: the rest of the call would
            # be lost for one packet's sake. Log it and go on with the next frame.
            INGEST.internal_errors += 1
            logger.exception(
                "call %s: handling frame %d (%s) failed",
                self.connection_id,
                self.frames,
                type(packet).__name__,
            )

    def reject(self, reason: str, *, hostile: bool = True) -> None:
        """Count a bad frame and log it; past the log limit, only every 100th is logged.

        Counts are kept per kind of reason, without the offending value, and for a bounded
        number of kinds, so a hostile stream cannot grow them without limit.

        A stream whose last ``CALLSITE_BAD_FRAME_CLOSE_LIMIT`` frames were all rejected is
        closed with 4008 (policy violation) by ``dispatch()`` once this frame is handled. A
        valid frame ends the run. A frame of an unknown kind neither counts nor ends it, since
        ACS may add kinds that this version does not know; nor does a well-formed frame that
        is merely unusable (``hostile=False``: audio in a format Callsite does not take, or
        before its AudioMetadata), which must not cost the stream's transcription.
        """
        category = reason.split(", got ", 1)[0][:120]
        if category not in self.rejected and len(self.rejected) >= MAX_REJECT_CATEGORIES - 1:
            category = "other"
        self.rejected[category] += 1
        INGEST.rejected += 1
        total = sum(self.rejected.values())
        limit = settings.CALLSITE_BAD_FRAME_LOG_LIMIT
        if total <= limit or total % 100 == 0:
            logger.warning(
                "call %s: rejected frame %d (%d rejected so far): %s",
                self.connection_id,
                self.frames,
                total,
                reason,
            )
        self.extend_bad_run(reason, hostile=hostile)

    def extend_bad_run(self, reason: str, *, hostile: bool = True) -> None:
        """Add this frame to the run of rejected frames; ask for a close if it is long enough."""
        frame = self.frames
        if frame == self.bad_run_frame:  # one frame is one frame, however often it is rejected
            return
        if frame - 1 != self.bad_run_frame:  # the frame before was not rejected
            self.bad_run = 0
        self.bad_run_frame = frame
        if not hostile or reason.startswith(UNKNOWN_KIND):
            return
        self.bad_run += 1
        limit = settings.CALLSITE_BAD_FRAME_CLOSE_LIMIT
        if limit and self.bad_run >= limit and self.close_code is None:
            self.close_code = POLICY_VIOLATION
            logger.warning(
                "call %s: closing the socket (code %d) after %d bad frames in a row; "
                "%d of %d frames rejected: %s",
                self.connection_id,
                POLICY_VIOLATION,
                self.bad_run,
                sum(self.rejected.values()),
                frame,
                dict(self.rejected.most_common(10)),
            )

    async def handle_packet(self, packet: Packet) -> None:
        assert self.call_id is not None
        if isinstance(packet, TranscriptionData):
            if packet.is_final:
                await self.record_final(packet)
            else:
                await self.relay_interim(packet)
        elif isinstance(packet, TranscriptionMetadata):
            await db_write(
                f"call {self.connection_id}: transcription metadata",
                services.call_transcription_started,
                call_id=self.call_id,
                metadata=packet,
            )
        elif isinstance(packet, AudioMetadata):
            audio = await self.audio_path()
            await audio.metadata(packet)
        elif isinstance(packet, AudioData):  # pragma: no cover - handled in receive()
            raise AssertionError("AudioData reaches handle_packet")
        elif isinstance(packet, DtmfData):
            logger.info("call %s: DTMF %r", self.connection_id, packet.data[:40])
            audio = await self.audio_path()
            await audio.dtmf(packet)

    async def audio_path(self) -> CallAudio:
        """The socket's audio path, built on the first media packet."""
        if self.audio is None:
            assert self.call_id is not None
            try:
                recognizer = get_recognizer()
            except RecognizerError as error:
                logger.error("call %s: no speech recognition: %s", self.connection_id, error.reason)
                recognizer = None
            self.audio = CallAudio(
                call_id=self.call_id,
                label=f"call {self.connection_id}",
                recognizer=recognizer,
                reject=self.reject,
                on_activity=self.live.add_activity if self.live else None,
                on_interim=self.live.add_interim if self.live else None,
                on_final=self.final_stored,
            )
            if self.live is not None:
                self.live.audio_paths.append(self.audio)
        return self.audio

    async def record_final(self, packet: TranscriptionData) -> None:
        assert self.call_id is not None
        try:
            caption, created = await db_write(
                f"call {self.connection_id}: final utterance",
                services.utterance_record,
                call_id=self.call_id,
                participant_raw_id=packet.participant_raw_id,
                text=packet.text,
                confidence=packet.confidence,
                offset_ticks=packet.offset,
                duration_ticks=packet.duration,
                words=packet.words,
                source=TranscriptSource.ACS,
            )
        except RetriesExhausted:
            # The text goes to the log in full, so an operator can still recover it.
            INGEST.finals_lost += 1
            logger.error(
                "call %s: final utterance NOT stored (participant %s, offset %s): %r",
                self.connection_id,
                packet.participant_raw_id,
                packet.offset,
                packet.text,
            )
            return
        if caption["participant"] is not None:
            self.participants[caption["participant"]["raw_id"]] = caption["participant"]
        if created:
            # ACS counts offsets from the start of its transcription stream: this socket.
            speech_end = None
            end = (packet.offset or 0) + (packet.duration or 0)
            if packet.offset is not None and 0 <= end <= MAX_CALL_SECONDS * TICKS_PER_SECOND:
                speech_end = self.opened_at + timedelta(microseconds=end / 10)
            await self.final_stored(caption, speech_end)

    async def final_stored(self, caption: CaptionPayload, speech_end: datetime | None) -> None:
        """A new final is stored: the live analytics count it and check the keyword rules."""
        if self.live is not None:
            try:
                await LIVE.final_stored(self.live, caption, speech_end)
            except Exception:
                logger.exception("call %s: handling a stored final failed", self.connection_id)

    async def relay_interim(self, packet: TranscriptionData) -> None:
        """Broadcast an intermediate result; it is never stored."""
        assert self.call_id is not None
        participant = None
        raw_id = packet.participant_raw_id
        if raw_id:
            participant = self.participants.get(raw_id)
            if participant is None:
                try:
                    found = await db_call(
                        services.participant_ensure, call_id=self.call_id, raw_id=raw_id
                    )
                except Exception as error:
                    # An interim result is replaced by the next one within a second: it is
                    # not worth waiting for the database.
                    logger.warning(
                        "call %s: interim result not relayed: %s", self.connection_id, error
                    )
                    return
                participant = self.participants[raw_id] = found
        caption: CaptionPayload = {
            "call_id": self.call_id,
            "utterance_id": None,
            "participant": participant,
            "text": packet.text,
            "confidence": packet.confidence,
            "offset_ticks": packet.offset,
            "duration_ticks": packet.duration,
            "words": services.words_payload(packet.words),
            "final": False,
            "seq": None,
        }
        if self.live is not None:
            self.live.add_interim(caption)
        await events.asend_event(
            (events.call_group(self.call_id),), events.caption_interim(caption)
        )
