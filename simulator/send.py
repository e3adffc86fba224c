"""Playing planned packets over a WebSocket the way ACS does, for one call or many."""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from simulator import wire
from simulator.audio import AudioScript
from simulator.plan import CALLBACK, ScheduledPacket, plan_audio_packets, plan_packets, plan_signals
from simulator.scripts import Script
from simulator.wire import (
    AUDIO_DATA,
    AUDIO_METADATA,
    DTMF_DATA,
    TRANSCRIPTION_DATA,
    TRANSCRIPTION_METADATA,
)
from streaming.acs.webhooks import stream_callback_id

AUDIO_PROGRESS_SECONDS = 10.0  # call time between simulate_calls' audio progress lines
_YIELD_EVERY = 50  # packets sent back to back before the sender lets other tasks run
# A worker over capacity refuses new streams with 503 (``callsite/load.py``): try again,
# waiting longer each time, for this long in all.
OVER_CAPACITY_RETRY_SECONDS = 30.0


class SimulatorError(RuntimeError):
    """A simulated call could not connect, was rejected, or was cut off."""


class CallsFailedError(SimulatorError):
    """Raised by :func:`simulate_calls` when at least one call failed; keeps the rest."""

    def __init__(
        self, message: str, results: list[CallResult], failures: list[tuple[str, SimulatorError]]
    ) -> None:
        super().__init__(message)
        self.results = results
        self.failures = failures


@dataclass(frozen=True)
class CallResult:
    """What one simulated call sent; ``elapsed`` is seconds from handshake to close."""

    call_connection_id: str
    packets_sent: int
    finals_sent: int
    intermediates_sent: int
    elapsed: float
    frames_sent: int = 0  # AudioData packets


def _time_scale(speed: float) -> float:
    """Seconds of wall time per second of call time; 0.0 means as fast as possible."""
    if math.isnan(speed):
        raise ValueError("speed must be a number, got NaN")
    return 0.0 if speed <= 0 or math.isinf(speed) else 1.0 / speed


def _with_query(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def callback_url(url: str, call_connection_id: str, token: str | None) -> str:
    """Where the call's Call Automation callbacks go, beside the WebSocket ``url``:
    ``ws://host/ws/acs/`` -> ``http://host/acs/callbacks/<the call's callback id>/``."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    base = parts.path.rstrip("/").removesuffix("/ws/acs")
    path = f"{base}/acs/callbacks/{stream_callback_id(call_connection_id)}/"
    query = urlencode({"token": token}) if token else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def _post_callback(url: str, body: str) -> None:
    request = urllib.request.Request(
        url, data=body.encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        where = url.split("?")[0]
        raise SimulatorError(f"callback to {where} failed: {exc}") from exc


def _stamped(packet: ScheduledPacket, start: datetime) -> str:
    """A callback or DTMF packet with its time: the call's start plus the packet's ``at``."""
    moment = start + timedelta(seconds=packet.at)
    body = json.loads(packet.payload)
    if packet.kind == CALLBACK:
        for event in body:
            event["time"] = moment.isoformat()
    else:
        body["dtmfData"]["timestamp"] = wire.timestamp(moment)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


async def send_packets(
    url: str,
    packets: Sequence[ScheduledPacket],
    *,
    call_connection_id: str,
    correlation_id: str,
    token: str | None,
    speed: float = 1.0,
    on_packet: Callable[[ScheduledPacket], None] | None = None,
    on_message: Callable[[str | bytes], None] | None = None,
    side: Sequence[ScheduledPacket] = (),
    callbacks_to: str | None = None,
) -> CallResult:
    """Open a WebSocket the way ACS does and send ``packets`` on schedule, then close (1000).

    ``on_message`` gets every message the server sends back, as it arrives: the outbound
    audio of a bidirectional stream (read it with :func:`simulator.wire.read_outbound`).

    Each packet goes out at ``packet.at / speed`` seconds after the socket opened, measured
    from one monotonic start, so a long call never drifts. ``packets`` may be any sequence,
    such as a lazy :class:`AudioPlan`; ``side`` packets (an audio call's signals) are merged
    in by time. Callback packets are POSTed to ``callbacks_to`` (by default the call's
    callback URL beside ``url``: ``callback_url``); they and DTMF packets are stamped with
    the call's start plus their ``at``. Error messages name ``url`` as given, never the
    query with the token.
    """
    scale = _time_scale(speed)
    target = _with_query(url, token=token, call=call_connection_id)
    headers = {
        "x-ms-call-connection-id": call_connection_id,
        "x-ms-call-correlation-id": correlation_id,
    }
    loop = asyncio.get_running_loop()
    give_up, wait = loop.time() + OVER_CAPACITY_RETRY_SECONDS, 0.25
    while True:
        try:
            # proxy=None: ACS connects straight to the endpoint; an env proxy would skew
            # timing. compression=None: deflating every 20 ms frame costs CPU, gains little.
            ws = await connect(target, additional_headers=headers, proxy=None, compression=None)
            break
        except InvalidStatus as exc:
            status, reason = exc.response.status_code, exc.response.reason_phrase
            if status == 503 and loop.time() + wait < give_up:
                await asyncio.sleep(wait)  # over capacity: it says so, and may not be for long
                wait = min(wait * 2, 4.0)
                continue
            raise SimulatorError(
                f"{url} rejected the WebSocket handshake: HTTP {status} {reason}".rstrip()
            ) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise SimulatorError(f"cannot connect to {url}: {exc}") from exc
    started = loop.time()
    reader = None
    if on_message is not None:
        reader = asyncio.create_task(_read_messages(ws, on_message))
    call_start = datetime.now(UTC)
    callbacks = callbacks_to or callback_url(url, call_connection_id, token)
    # One poster, in order: ParticipantsUpdated carries a sequence number, and a callback
    # that overtook the one before it would make that one stale.
    outbox: asyncio.Queue[str | None] = asyncio.Queue()

    async def post_in_order() -> None:
        while (body := await outbox.get()) is not None:
            await asyncio.to_thread(_post_callback, callbacks, body)

    poster = asyncio.create_task(post_in_order())
    sent = finals = intermediates = frames = 0
    unbroken = 0  # packets sent since this task last let others run
    playing: Iterable[ScheduledPacket] = (
        heapq.merge(packets, side, key=lambda p: p.at) if side else packets
    )
    try:
        for packet in playing:
            if scale:
                # Absolute deadlines from one monotonic start, so sleep overshoot never adds up.
                delay = started + packet.at * scale - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    unbroken = 0
            if unbroken >= _YIELD_EVERY:
                # send() rarely waits, so a call that is behind (or at speed 0) would otherwise
                # starve the other calls of this event loop.
                await asyncio.sleep(0)
                unbroken = 0
            if packet.kind == CALLBACK:
                outbox.put_nowait(_stamped(packet, call_start))
                continue
            payload = _stamped(packet, call_start) if packet.kind == DTMF_DATA else packet.payload
            await ws.send(payload)
            sent += 1
            unbroken += 1
            if packet.kind == AUDIO_DATA:
                frames += 1
            elif packet.final:
                finals += 1
            elif packet.kind == TRANSCRIPTION_DATA:
                intermediates += 1
            if on_packet is not None:
                on_packet(packet)
        outbox.put_nowait(None)
        await poster
        await ws.close(code=1000, reason="call ended")
    except ConnectionClosed as exc:
        close = exc.rcvd
        why = f"code {close.code} {close.reason!r}" if close else "no close frame"
        raise SimulatorError(
            f"{url} closed call {call_connection_id} after {sent} of {len(packets)} packets ({why})"
        ) from exc
    finally:
        if not poster.done():
            poster.cancel()
        await ws.close()
        if reader is not None:
            reader.cancel()
    elapsed = loop.time() - started
    return CallResult(call_connection_id, sent, finals, intermediates, elapsed, frames)


async def _read_messages(ws: Any, on_message: Callable[[str | bytes], None]) -> None:
    """Hand each message the server sends to ``on_message`` until the socket closes."""
    try:
        async for message in ws:
            on_message(message)
    except ConnectionClosed:
        pass


async def stream_call(
    url: str,
    *,
    call_connection_id: str,
    script: Script | AudioScript,
    token: str | None,
    speed: float = 1.0,
    correlation_id: str | None = None,
    on_packet: Callable[[ScheduledPacket], None] | None = None,
    on_message: Callable[[str | bytes], None] | None = None,
    callbacks_to: str | None = None,
) -> CallResult:
    """Play one scripted or audio call to ``url`` (query gets ``token`` and ``call`` added);
    its hold and mute callbacks go to ``callbacks_to`` (by default beside ``url``).

    Audio timestamps start at the moment of the call.
    """
    correlation_id = correlation_id or str(uuid.uuid4())
    packets: Sequence[ScheduledPacket]
    side: Sequence[ScheduledPacket] = ()
    if isinstance(script, AudioScript):
        packets = plan_audio_packets(script, call_connection_id=call_connection_id)
        raw_ids = [t.raw_id for t in script.tracks if t.raw_id]
        side = plan_signals(script.signals, call_connection_id=call_connection_id, raw_ids=raw_ids)
    else:
        packets = plan_packets(
            script, call_connection_id=call_connection_id, correlation_id=correlation_id
        )
    return await send_packets(
        url,
        packets,
        call_connection_id=call_connection_id,
        correlation_id=correlation_id,
        token=token,
        speed=speed,
        on_packet=on_packet,
        on_message=on_message,
        side=side,
        callbacks_to=callbacks_to,
    )


async def simulate_calls(
    url: str,
    *,
    script: Script | AudioScript,
    calls: int = 1,
    token: str | None,
    speed: float = 1.0,
    stagger: float = 0.5,
    call_prefix: str = "sim",
    progress: Callable[[str], None] | None = None,
) -> list[CallResult]:
    """Run ``calls`` concurrent calls, started ``stagger / speed`` seconds apart.

    Calls get fresh ids (``<call_prefix>-<12 hex>``) so reruns never collide. A failed call
    does not stop the others; at the end :class:`CallsFailedError` reports every failure.
    ``progress`` gets a line per connect, Final (transcription) or 10 s of audio, and end.
    """
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    scale = _time_scale(speed)
    report = progress or (lambda line: None)
    if isinstance(script, AudioScript):
        total_finals, total = 0, f"{script.duration:.1f} s"
        script._encoded  # noqa: B018 -- encode before any call starts its clock
    else:
        total_finals, total = len(script.turns), ""
    call_ids = [f"{call_prefix}-{uuid.uuid4().hex[:12]}" for _ in range(calls)]
    results: dict[str, CallResult] = {}
    failures: list[tuple[str, SimulatorError]] = []

    async def run(index: int, call_id: str) -> None:
        await asyncio.sleep(index * stagger * scale)
        finals = 0
        reported = 0.0  # call time of the last audio progress line

        def on_packet(packet: ScheduledPacket) -> None:
            nonlocal finals, reported
            if packet.kind in (TRANSCRIPTION_METADATA, AUDIO_METADATA):
                report(f"call {call_id} connected")
            elif packet.final:
                finals += 1
                report(f"call {call_id}: {finals}/{total_finals} finals")
            elif packet.kind == AUDIO_DATA and packet.at - reported >= AUDIO_PROGRESS_SECONDS:
                reported = packet.at
                report(f"call {call_id}: {packet.at:.0f}/{total} of audio")

        try:
            result = await stream_call(
                url,
                call_connection_id=call_id,
                script=script,
                token=token,
                speed=speed,
                on_packet=on_packet,
            )
        except SimulatorError as exc:
            failures.append((call_id, exc))
            report(f"call {call_id} failed: {exc}")
            return
        results[call_id] = result
        sent = (
            f"{result.frames_sent} frames" if result.frames_sent else f"{result.finals_sent} finals"
        )
        report(f"call {call_id} done: {sent} in {result.elapsed:.1f} s")

    async with asyncio.TaskGroup() as group:
        for index, call_id in enumerate(call_ids):
            group.create_task(run(index, call_id))
    ordered = [results[c] for c in call_ids if c in results]
    if failures:
        first = failures[0][1]
        raise CallsFailedError(
            f"{len(failures)} of {calls} calls failed (first: {first})", ordered, failures
        )
    return ordered
