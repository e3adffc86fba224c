"""A plain ``websockets`` server doing Callsite's per-frame ingest work, without Django or Channels.

The reference point of ``bench/ingest.py``: it parses each frame with Callsite's own parser and
runs the same pure per-frame steps as ``CallAudio.frame`` with the recognizer off (base64
decode, frame level, stream clock, per-second talk buckets), and records frame lag in the same
``IngestMetrics`` histogram. What it leaves out is what the framework adds: the ASGI server,
Channels' dispatch, and the database (completed talk seconds are handed to a list that is
emptied once a second instead of being written).

Metrics are served in the same text format at ``GET /metrics`` on the WebSocket port, so one
reader works for both servers::

    CALLSITE_ACS_SHARED_SECRET=s python -m bench.bare_server --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streaming.acs.packets import (
    MAX_PACKET_BYTES,
    AudioData,
    AudioMetadata,
    PacketError,
    parse_packet,
)
from streaming.audio.timeline import (
    SUPPORTED_RATES,
    ActivitySecond,
    ActivityTracker,
    FrameVerdict,
    StreamClock,
    pcm_ticks,
    ticks_between,
)
from streaming.levels import SILENCE_DBFS, frame_level_dbfs
from streaming.metrics import IngestMetrics

METRICS = IngestMetrics()
VOICE_THRESHOLD_DBFS = -50.0  # Callsite's default CALLSITE_VOICE_THRESHOLD_DBFS
ACS_PATH = "/ws/acs/"

# Completed talk seconds of all calls; Callsite's batching writer stores these once a second.
completed: list[ActivitySecond] = []


@dataclass
class BareStream:
    activity: ActivityTracker
    clock: StreamClock = field(default_factory=StreamClock)


class BareCall:
    """One socket's state: the per-frame part of ``AcsIngestConsumer`` and ``CallAudio``."""

    def __init__(self) -> None:
        self.format: AudioMetadata | None = None
        self.origin: datetime | None = None
        self.streams: dict[str, BareStream] = {}
        self.late = 0
        self.gaps = 0

    def receive(self, raw: str | bytes) -> None:
        METRICS.frames += 1
        try:
            packet = parse_packet(raw)
        except PacketError:
            METRICS.rejected += 1
            return
        if type(packet) is AudioData:
            METRICS.audio_frames += 1
            if packet.timestamp is not None:
                METRICS.observe_lag(packet.timestamp)
            self.frame(packet)
        elif isinstance(packet, AudioMetadata):
            usable = (
                packet.encoding.lower() == "pcm"
                and packet.channels == 1
                and packet.sample_rate in SUPPORTED_RATES
            )
            self.format = packet if usable else None
            if not usable:
                METRICS.rejected += 1

    def frame(self, packet: AudioData) -> None:
        meta = self.format
        if meta is None:
            METRICS.rejected += 1
            return
        try:
            pcm = packet.pcm()
        except PacketError:
            METRICS.rejected += 1
            return
        size = len(pcm)
        if size == 0 or size & 1:
            METRICS.rejected += 1
            return
        stamp = packet.timestamp
        if self.origin is None:
            # Callsite stores this on the call (one database write per call).
            self.origin = stamp or datetime.now(UTC)
        key = packet.participant_raw_id or ""
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = BareStream(ActivityTracker(VOICE_THRESHOLD_DBFS))
        duration = pcm_ticks(size, meta.sample_rate)
        placement = stream.clock.place(
            ticks_between(self.origin, stamp) if stamp is not None else None, duration
        )
        if placement.verdict is FrameVerdict.LATE:
            self.late += 1
            return
        silent = packet.silent
        level = SILENCE_DBFS if silent else frame_level_dbfs(pcm)
        done = stream.activity.add(placement.start, level, silent)
        if done:
            completed.extend(done)
        if placement.verdict is FrameVerdict.GAP:
            self.gaps += 1


RequestHook = Callable[[ServerConnection, Request], Response | None]


def make_request_hook(secret: str) -> RequestHook:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/metrics":
            return connection.respond(200, METRICS.render())
        if url.path != ACS_PATH:
            return connection.respond(404, "not found\n")
        token = parse_qs(url.query).get("token", [""])[0]
        if secret and not hmac.compare_digest(token.encode(), secret.encode()):
            return connection.respond(403, "wrong or missing token\n")
        if not request.headers.get("x-ms-call-connection-id"):
            return connection.respond(403, "no x-ms-call-connection-id header\n")
        return None

    return process_request


async def handler(connection: ServerConnection) -> None:
    call = BareCall()
    METRICS.sockets_open += 1
    METRICS.sockets_total += 1
    try:
        async for message in connection:
            call.receive(message)
    except ConnectionClosed:
        pass
    finally:
        METRICS.sockets_open -= 1


async def hand_off_talk_seconds() -> None:
    while True:
        await asyncio.sleep(1.0)
        completed.clear()


async def main(host: str, port: int) -> None:
    secret = os.environ.get("CALLSITE_ACS_SHARED_SECRET", "")
    async with serve(
        handler,
        host,
        port,
        process_request=make_request_hook(secret),
        compression=None,
        max_size=MAX_PACKET_BYTES,
    ) as server:
        writer = asyncio.create_task(hand_off_talk_seconds())
        try:
            await server.serve_forever()
        finally:
            writer.cancel()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="event loop: uvloop if installed (auto), or force one",
    )
    args = parser.parse_args()
    uvloop = None
    if args.loop != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if args.loop == "uvloop":
                raise
    if uvloop is not None:
        uvloop.run(main(args.host, args.port))
    else:
        asyncio.run(main(args.host, args.port))


if __name__ == "__main__":
    run()
