"""Caption latency: from an ACS packet's arrival at Callsite to the supervisor's socket.

Each run starts one Daphne process pinned to CPU 0 on the Redis channel layer, with a fresh
migrated database (SQLite, or a scratch PostgreSQL database with ``--database-url``) that
holds a supervisor and a logged-in session. This process, pinned to CPU 1, then plays:

* C ACS sockets (``/ws/acs/``), one per call. Each carries two unmixed participants at real
  time (AudioMetadata, then a 640-byte 16 kHz AudioData frame per participant every 20 ms: the
  talking one's speech-like noise, the other's marked silent) and, on the same socket,
  TranscriptionMetadata and TranscriptionData: an Intermediate result every 300 ms while a
  participant talks, a Final every 3 s, speakers taking turns. Each result's text starts with
  a tag naming its call, turn and step, so the caption can be matched to the packet that
  carried it; the send time of every packet is kept (``time.time()``).
* S supervisors, each with the call wall (``/ws/dashboard/``) and K call pages
  (``/ws/dashboard/calls/<id>/``) open, with the session cookie and an allowed Origin; every
  call is watched by S * K / C pages.

Latency is the time a page received a ``caption.interim`` or ``caption.final`` minus the time
its packet was sent, for each caption sent in the measurement window and each page watching
its call. Captions still missing after the drain are reported as lost. Other event types are
counted and otherwise ignored. A run counts only if this process kept to its schedule (p99
send lateness under 20 ms; otherwise it is marked generator-bound) and processes that are not
part of the benchmark used at most 10% of each server core (otherwise it is marked noisy)::

    python -m bench.latency --calls 100 --supervisors 20 --seconds 30 --runs 3 --json out.json

``--workers 1,2`` runs Callsite as 1 and then as 2 identical Daphne processes in each run
(interleaved, so noise affects both alike), sharing the database and Redis: worker i on its
own port, pinned to CPU i % cpu_count; call i's ACS socket on worker i % N; supervisor j's
wall and call pages on worker (j + 1) % N. With 2 workers and the default split (supervisor j
watches calls jK .. jK+K-1) half of the call pages watch a call whose socket is on the other
worker; the run reports how many. (Callsite's Redis layers send every group message through
Redis, to a page on the same worker too.) The metrics of all workers are added up. This
process keeps a core of its own (CPU N) while N < cpu_count and runs unpinned otherwise; CPU
use is reported per worker, for this process, Redis, and other processes on the workers'
cores (``bench.ingest.CpuMeter``).

``--layer redis`` is Callsite's default Redis layer (channels-redis's pub/sub layer);
``--layer redis-list`` (channels-redis's inbox-per-process layer, ``CALLSITE_REDIS_LAYER=list``)
and ``--layer memory`` (the in-process layer, one worker only) run the same load for
comparison, and ``--no-audio`` leaves the audio out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import json
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from bench.ingest import (
    AUDIO_METADATA,
    DEFAULT_REDIS_URL,
    FRAME_TAIL,
    MAX_SEND_LATENESS,
    MIN_SEND_RATE,
    PCM_BYTES,
    PCM_PARTS,
    PERIOD,
    ROOT,
    STAMP_BYTES,
    TICK,
    AcsSocket,
    CpuMeter,
    SendStats,
    Snapshot,
    Stamp,
    Workers,
    base_env,
    client_frame,
    client_frame_header,
    code_version,
    fmt_ms,
    generator_cpu,
    interrupt,
    lag_between,
    log_problems,
    parse_workers,
    pin_generator,
    placement,
    raise_fd_limit,
    redis_cleanup,
    redis_pid,
    redis_problem,
    start_py_spy,
    stop_servers,
    workers_text,
)
from simulator import TRANSCRIPTION_DATA, TRANSCRIPTION_METADATA
from streaming.units import TICKS_PER_SECOND

LATENCY_TARGET = 0.100
INTERIM_EVERY = 0.300  # seconds between a call's transcription packets
TURN_EVENTS = 10  # packets per turn: nine Intermediates, then the Final (a turn is 3 s)
TURN_START = 30.0  # call time of the first turn's start, in seconds (keeps offsets positive)
WORDS = (
    *("thanks", "for", "calling", "how", "can", "I", "help", "you", "today", "my", "order"),
    *("never", "arrived", "and", "I", "would", "like", "a", "refund"),
)
CAPTION_TYPES = ("caption.interim", "caption.final")
CONNECT_LIMIT = 60.0  # seconds a socket may take to open and send its first message
TREND_SLICE = 5.0  # seconds of send time per point of a run's latency trend
MAX_NOISE = 0.10  # share of each worker's core other processes may use in a counted run


T = TypeVar("T")


# --- packets -----------------------------------------------------------------------------------


def _dump(kind: str, body: dict[str, Any]) -> str:
    return json.dumps({"kind": kind, kind[0].lower() + kind[1:]: body}, separators=(",", ":"))


def transcription_metadata(call_id: str) -> str:
    return _dump(
        TRANSCRIPTION_METADATA,
        {
            "subscriptionId": f"bench-{call_id}",
            "locale": "en-US",
            "callConnectionId": call_id,
            "correlationId": "bench",
        },
    )


def transcription_data(raw_id: str, tag: str, step: int, start: float) -> str:
    """Step ``step`` of a turn that started ``start`` seconds into the call.

    Steps 0-8 are Intermediates of 2, 4, ... 18 words, step 9 the Final with every word; the
    text starts with ``tag``.
    """
    final = step == TURN_EVENTS - 1
    words = [tag, *WORDS[: len(WORDS) if final else 2 * (step + 1)]]
    offset = round(start * TICKS_PER_SECOND)
    duration = round((step + 1) * INTERIM_EVERY * TICKS_PER_SECOND)
    body: dict[str, Any] = {
        "text": " ".join(words),
        "format": "display",
        "offset": offset,
        "duration": duration,
        "participantRawID": raw_id,
        "resultStatus": "Final" if final else "Intermediate",
    }
    if final:
        each = duration // len(words)
        body["confidence"] = 0.9
        body["words"] = [
            {"text": w, "offset": offset + i * each, "duration": each} for i, w in enumerate(words)
        ]
    return _dump(TRANSCRIPTION_DATA, body)


SILENT_PART = base64.b64encode(bytes(PCM_BYTES)) + b'","timestamp":"'


class CallSocket(AcsSocket):
    """One call's ACS socket: two unmixed participants' audio, then transcription."""

    def __init__(self, index: int, host: str, port: int, token: str, call_id: str) -> None:
        super().__init__(index, host, port, token, call_id)
        self.raw_ids = (f"8:acs:bench-agent-{index:05d}", f"4:+1555{index:07d}")
        self.speaker = 0  # whose frames carry speech; the other's are marked silent
        self.heads: list[tuple[bytes, bytes]] = []
        for raw_id in self.raw_ids:
            pair = []
            for silent in ("false", "true"):
                head = (
                    '{"kind":"AudioData","audioData":{"participantRawID":"'
                    + raw_id
                    + f'","silent":{silent},"data":"'
                ).encode()
                length = len(head) + len(PCM_PARTS[0]) + STAMP_BYTES + len(FRAME_TAIL)
                pair.append(client_frame_header(length) + head)
            self.heads.append((pair[0], pair[1]))

    def send_frame(self, participant: int, stamp: bytes) -> None:
        n = self.frames
        self.frames = n + 1
        assert self.transport is not None
        if participant == self.speaker:
            part = self.heads[participant][0] + PCM_PARTS[(n + self.offset) % len(PCM_PARTS)]
        else:
            part = self.heads[participant][1] + SILENT_PART
        self.transport.write(part + stamp + FRAME_TAIL)


@dataclass(slots=True)
class Sent:
    """One transcription packet as sent."""

    at: float  # time.time() just before the write
    final: bool
    call: int  # index of the call's socket
    counted: bool  # sent inside the measurement window


class Load:
    """The calls, and one task that sends every socket's audio and transcription on time."""

    def __init__(
        self, ports: Sequence[int], calls: int, token: str, label: str, audio: bool = True
    ) -> None:
        self.ports = ports  # call i's socket goes to worker i % len(ports)
        self.calls = calls
        self.with_audio = audio
        self.token = token
        self.label = label
        self.sockets: list[CallSocket] = []
        self.opening: list[CallSocket] = []  # every socket made, opened or not (to close)
        self.stamp = Stamp()
        self.audio = SendStats()
        self.captions = SendStats()
        self.sent: dict[str, Sent] = {}
        self.measuring = False
        self.captions_from = math.inf  # monotonic time of the first transcription packet
        self.stop_at = math.inf

    async def connect(self, concurrency: int = 32) -> None:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(concurrency)

        workers = len(self.ports)

        async def open_one(index: int) -> CallSocket:
            async with limit:
                call_id = f"{self.label}-{index:05d}"
                port = self.ports[index % workers]
                sock = CallSocket(index, "127.0.0.1", port, self.token, call_id)
                self.opening.append(sock)
                await loop.create_connection(lambda: sock, "127.0.0.1", port)
                try:
                    await asyncio.wait_for(sock.opened, CONNECT_LIMIT)
                except TimeoutError:
                    raise TimeoutError(f"no handshake within {CONNECT_LIMIT:.0f} s") from None
                if self.with_audio:
                    sock.send_text(AUDIO_METADATA)
                sock.send_text(transcription_metadata(call_id))
                return sock

        self.sockets = await gather_open(
            "ACS sockets",
            [open_one(i) for i in range(self.calls)],
            [i % workers for i in range(self.calls)],
            workers,
        )

    async def drive(self, t0: float) -> None:
        """Audio from ``t0``, transcription from ``captions_from``, until ``stop_at``.

        Audio: 2 C streams, one frame each per 20 ms, phases spread evenly over the period.
        Transcription: one packet per call per 300 ms, phases spread evenly; a call's turns
        are offset by its index, so Finals are spread over the 3 s too.
        """
        sockets = self.sockets
        calls = len(sockets)
        slot = PERIOD / (2 * calls)
        caption_slot = INTERIM_EVERY / calls
        monotonic, wall = time.monotonic, time.time
        audio, captions = self.audio, self.captions
        s = g = 0
        if not self.with_audio:
            t0 = math.inf
        while True:
            now = monotonic()
            if now >= self.stop_at:
                return
            due = int((now - t0) / slot) if now >= t0 else -1
            if due >= s:
                stamp = self.stamp.at(wall())
                measuring = self.measuring
                late = audio.late_ms
                while s <= due:
                    sockets[s % calls].send_frame((s // calls) & 1, stamp)
                    if measuring:
                        late[int((now - t0 - s * slot) * 1000)] += 1
                    s += 1
                audio.sent = s
            start = self.captions_from
            next_caption = start
            if now >= start:
                due = int((now - start) / caption_slot)
                while g <= due:
                    self.send_caption(g, now - start - g * caption_slot)
                    g += 1
                captions.sent = g
                next_caption = start + g * caption_slot
            delay = min(t0 + s * slot, next_caption) - monotonic()
            await asyncio.sleep(min(max(delay, TICK), 0.05))

    def send_caption(self, g: int, late: float) -> None:
        index = g % self.calls
        turn, step = divmod(g // self.calls + index % TURN_EVENTS, TURN_EVENTS)
        sock = self.sockets[index]
        speaker = turn & 1
        final = step == TURN_EVENTS - 1
        tag = f"k{index}-{turn}-{step}"
        start = TURN_START + (turn * TURN_EVENTS - index % TURN_EVENTS) * INTERIM_EVERY
        payload = client_frame(transcription_data(sock.raw_ids[speaker], tag, step, start).encode())
        assert sock.transport is not None
        at = time.time()
        sock.transport.write(payload)
        self.sent[tag] = Sent(at, final, index, self.measuring)
        sock.speaker = (turn + 1) & 1 if final else speaker
        if self.measuring:
            self.captions.late_ms[int(late * 1000)] += 1

    def closed(self) -> list[str]:
        return [f"{s.call_id}: {s.closed_by_server}" for s in self.sockets if s.closed_by_server]

    def close(self) -> None:
        for sock in self.opening:
            if sock.transport is not None:
                sock.transport.abort()


class OpenFailed(RuntimeError):
    """Some sockets did not open: how many did, on which worker, and why the others did not."""


def failure_reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return str(error) or f"no answer within {CONNECT_LIMIT:.0f} s"
    return f"{type(error).__name__}: {error}"


async def gather_open(
    what: str, openings: Sequence[Awaitable[T]], where: Sequence[int], workers: int
) -> list[T]:
    """Await every opening; if any failed, raise OpenFailed saying how many of ``what`` opened.

    ``where[i]`` is the worker that opening i went to, for a count per worker when there are
    several. Nothing is retried: a socket that does not open within CONNECT_LIMIT fails the
    run (the server is overloaded, or broken), and the message says how far opening got.
    """
    results = await asyncio.gather(*openings, return_exceptions=True)
    opened = [r for r in results if not isinstance(r, BaseException)]
    if len(opened) == len(results):
        return opened
    text = f"{len(opened)} of {len(results)} {what} opened"
    if workers > 1:
        per = []
        for w in range(workers):
            mine = [r for r, at in zip(results, where, strict=True) if at == w]
            done = sum(1 for r in mine if not isinstance(r, BaseException))
            per.append(f"worker {w}: {done}/{len(mine)}")
        text += f" ({', '.join(per)})"
    reasons = Counter(failure_reason(r) for r in results if isinstance(r, BaseException))
    text += "; failed: " + "; ".join(f"{n} x {why}" for why, n in reasons.most_common(3))
    raise OpenFailed(text)


# --- supervisors -------------------------------------------------------------------------------


class PageSocket(asyncio.Protocol):
    """A supervisor's browser socket: the wall, or one call page. Keeps caption receipts."""

    def __init__(
        self,
        path: str,
        port: int,
        cookie: str,
        *,
        call: int | None = None,
        on_call: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = path
        self.port = port  # the worker's
        self.call = call  # index of the watched call's socket; None for the wall
        self.on_call = on_call
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.first: asyncio.Future[None] = loop.create_future()  # the snapshot arrived
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.fragments: bytearray | None = None
        self.handshaken = False
        self.closed_by_server: str | None = None
        self.receipts: list[tuple[str, float]] = []  # (tag, time.time() at arrival)
        self.events: Counter[str] = Counter()  # every message by type
        self.event_bytes: Counter[str] = Counter()

    @property
    def ready(self) -> bool:
        """Open, and its first message (the snapshot) arrived."""
        first = self.first
        return first.done() and not first.cancelled() and first.exception() is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

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
                self._fail(f"{self.path}: handshake refused: {status.decode(errors='replace')}")
                return
            self.handshaken = True
            if not self.opened.done():
                self.opened.set_result(None)
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
            if opcode in (0x0, 0x1, 0x2):
                if opcode:
                    self.fragments = bytearray()
                if self.fragments is None:
                    continue
                self.fragments += payload
                if fin:
                    self.message(bytes(self.fragments), now)
                    self.fragments = None
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(client_frame(payload, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.closed_by_server = self.closed_by_server or f"close frame {code}"
                self._fail(f"{self.path}: closed by the server ({code})")

    def message(self, raw: bytes, now: float) -> None:
        try:
            content = json.loads(raw)
        except ValueError:
            self.events["(not JSON)"] += 1
            return
        kind = content.get("type") if isinstance(content, dict) else None
        self.events[str(kind)] += 1
        self.event_bytes[str(kind)] += len(raw)
        if kind in CAPTION_TYPES:
            caption = content.get("caption")
            text = caption.get("text") if isinstance(caption, dict) else None
            if isinstance(text, str):
                self.receipts.append((text.split(" ", 1)[0], now))
        elif self.on_call is not None and isinstance(content, dict):
            if kind == "snapshot" and isinstance(content.get("calls"), list):
                for call in content["calls"]:
                    self.on_call(call)
            elif kind == "call.updated" and isinstance(content.get("call"), dict):
                self.on_call(content["call"])
        if not self.first.done():
            self.first.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed_by_server is None:
            self.closed_by_server = f"connection lost ({exc or 'EOF'})"
        self._fail(f"{self.path}: {self.closed_by_server}")

    def _fail(self, reason: str) -> None:
        for future in (self.opened, self.first):
            if not future.done():
                future.set_exception(ConnectionError(reason))
                future.exception()  # retrieved: a socket nobody waits for is not an error
        if self.transport is not None and not self.handshaken:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_page(sock: PageSocket) -> PageSocket:
    """Open the page's socket and wait for its first message (the snapshot)."""
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: sock, "127.0.0.1", sock.port)
    try:
        await asyncio.wait_for(sock.opened, CONNECT_LIMIT)
    except TimeoutError:
        raise TimeoutError(f"no handshake within {CONNECT_LIMIT:.0f} s") from None
    try:
        await asyncio.wait_for(sock.first, CONNECT_LIMIT)
    except TimeoutError:
        raise TimeoutError(f"open, but no first message within {CONNECT_LIMIT:.0f} s") from None
    return sock


def watched_calls(supervisor: int, calls: int, per_supervisor: int) -> list[int]:
    """Supervisor j watches calls j*K .. j*K+K-1, wrapping: each call gets S*K/C watchers."""
    return [(supervisor * per_supervisor + k) % calls for k in range(min(per_supervisor, calls))]


# --- databases and Redis -----------------------------------------------------------------------


PREPARE = """
from importlib import import_module

import django

django.setup()

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command

call_command("migrate", interactive=False, verbosity=0, skip_checks=True)
user = get_user_model().objects.create_user("bench-supervisor")
# Watches calls, and sees all of them (as Staff do), where the code knows that permission.
user.user_permissions.add(
    *Permission.objects.filter(
        content_type__app_label="streaming", codename__in=["view_call", "view_all_calls"]
    )
)
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[SESSION_KEY] = user._meta.pk.value_to_string(user)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
"""


class Database:
    """A fresh database for one run: a SQLite file, or a scratch PostgreSQL database."""

    def __init__(self, workdir: Path, label: str, server_url: str | None) -> None:
        """``label`` names the SQLite file (``latency-<label>.sqlite3``) in ``workdir``."""
        self.server_url = server_url
        self.name: str | None = None
        if server_url is None:
            path = workdir / f"latency-{label}.sqlite3"
            for old in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                old.unlink(missing_ok=True)
            self.url = f"sqlite:///{path}"
            return
        parts = urlsplit(server_url)
        self.name = f"callsite_bench_{secrets.token_hex(4)}"
        self.url = urlunsplit(parts._replace(path="/" + self.name))

    def _admin(self, sql: str) -> None:
        import psycopg

        assert self.server_url is not None
        parts = urlsplit(self.server_url)
        admin = urlunsplit(
            parts._replace(path=parts.path if parts.path.strip("/") else "/postgres")
        )
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.encode())

    def prepare(self, secret: str, extra_env: dict[str, str]) -> str:
        """Create and migrate the database, add a supervisor and a session: the cookie.

        ``extra_env`` must be the server's: the session is signed with its secret key.
        """
        if self.name is not None:
            self._admin(f'CREATE DATABASE "{self.name}"')
        env = base_env(secret)
        env.update(extra_env)
        done = subprocess.run(
            [sys.executable, "-c", PREPARE],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip().splitlines()[-1]

    def drop(self) -> None:
        if self.name is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def redis_inbox(url: str, prefix: str) -> int:
    """Messages waiting in the server's inbox (the list layer's per-process sorted set)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    waiting = 0
    try:
        async for key in client.scan_iter(match=prefix + "specific.*", count=1000):
            if not key.endswith(b"$inflight"):
                waiting += int(await client.zcard(key))
    finally:
        await client.aclose()
    return waiting


# --- one run -----------------------------------------------------------------------------------


@dataclass
class Quantiles:
    count: int = 0
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Quantiles:
        if not seconds:
            return cls()
        values = np.asarray(seconds) * 1000
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(len(values), float(p50), float(p90), float(p99), float(values.max()))


@dataclass
class Run:
    run: int
    calls: int
    supervisors: int
    watchers: int  # call pages per call
    layer: str
    database: str
    workers: int = 1  # Daphne processes sharing the database and Redis
    audio: bool = True
    status: str = "error"  # ok | over | generator-bound | noisy | error
    interim: Quantiles = field(default_factory=Quantiles)
    final: Quantiles = field(default_factory=Quantiles)
    all: Quantiles = field(default_factory=Quantiles)
    expected_interim: int = 0  # deliveries due: packets sent in the window * watchers
    expected_final: int = 0
    lost_interim: int = 0
    lost_final: int = 0
    duplicates: int = 0
    misrouted: int = 0  # a caption on a page of another call
    events: dict[str, int] = field(default_factory=dict)  # page messages by type
    event_bytes: dict[str, int] = field(default_factory=dict)  # and their bytes
    audio_lag_p50_ms: float = math.nan  # server's frame lag histogram, window only
    audio_lag_p99_ms: float = math.nan
    frames_sent: int = 0  # in the window
    frames_handled: int = 0
    unhandled: int = 0  # frames sent in the whole run and never handled by the end
    rejected: int = 0
    audio_send_rate: float = math.nan
    audio_late_p99_ms: float = math.nan
    caption_late_p99_ms: float = math.nan
    server_cpu: float = math.nan  # all workers together, share of one core
    worker_cpu: list[float] = field(default_factory=list)  # each worker's
    core_busy: float = math.nan  # the workers' cores, any process
    others_cpu: float = math.nan  # processes not part of the benchmark on the workers' cores
    generator_cpu: float = math.nan
    redis_cpu: float = math.nan
    connect_s: float = math.nan  # time to open every supervisor page
    pages_opened: int = 0  # supervisor pages (walls and call pages) open, of pages_wanted
    pages_wanted: int = 0
    cross_pages: int = 0  # call pages on another worker than their call's ACS socket
    # --layer redis-list: messages waiting in the server's inbox at the window's end
    inbox: int = -1
    # p50 of the captions sent in each 5 s of the window: flat when the server keeps up
    trend_p50_ms: list[float] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    error: str = ""
    elapsed_s: float = 0.0

    @property
    def lost(self) -> int:
        return self.lost_interim + self.lost_final

    @property
    def name(self) -> str:
        return f"run {self.run} W={self.workers}"

    def line(self) -> str:
        if self.error:
            return f"{self.name}: {self.error} -> {self.status}"

        def q(name: str, stats: Quantiles) -> str:
            return (
                f"{name} p50 {fmt_ms(stats.p50_ms)} p90 {fmt_ms(stats.p90_ms)}"
                f" p99 {fmt_ms(stats.p99_ms)} max {fmt_ms(stats.max_ms)} ms"
            )

        each = (
            " (" + " ".join(f"{c:.0%}" for c in self.worker_cpu) + ")"
            if len(self.worker_cpu) > 1
            else ""
        )
        return (
            f"{self.name}: {q('interim', self.interim)} ({self.interim.count}"
            f"/{self.expected_interim}) | {q('final', self.final)} ({self.final.count}"
            f"/{self.expected_final}) | all p99 {fmt_ms(self.all.p99_ms)} ms"
            f" | audio lag p99 {fmt_ms(self.audio_lag_p99_ms)} ms,"
            f" handled {self.frames_handled}/{self.frames_sent}"
            f" | send late99 audio {self.audio_late_p99_ms:.0f} captions"
            f" {self.caption_late_p99_ms:.0f} ms"
            f" | cpu srv {self.server_cpu:.0%}{each} other {self.others_cpu:.0%}"
            f" gen {self.generator_cpu:.0%} redis {self.redis_cpu:.0%}"
            f" | p50 per {TREND_SLICE:.0f} s: {' '.join(fmt_ms(v) for v in self.trend_p50_ms)} ms"
            f" -> {self.status}"
            + (f" ({self.lost} lost)" if self.lost else "")
            + (f" ({self.duplicates} duplicates)" if self.duplicates else "")
            + (f" ({len(self.closed)} closed)" if self.closed else "")
            + (f" ({len(self.log_problems)} log problems)" if self.log_problems else "")
        )


async def measure(run: int, workers: int, args: argparse.Namespace, workdir: Path) -> Run:
    calls, supervisors, per = args.calls, args.supervisors, args.calls_per_supervisor
    database = "postgresql" if args.database_url else "sqlite"
    result = Run(run, calls, supervisors, supervisors * per // calls, args.layer, database)
    result.workers = workers
    result.audio = not args.no_audio
    started = time.monotonic()
    generator_cpus = pin_generator(generator_cpu(workers))
    prefix = f"callsite-bench-{secrets.token_hex(4)}"
    db = Database(workdir, f"run{run}-w{workers}", args.database_url)
    extra = {
        "DATABASE_URL": db.url,  # the same database for every worker
        "CALLSITE_CHANNEL_PREFIX": prefix,
        "CALLSITE_WORKERS": str(workers),
        # one key for the session made beforehand and the servers that read it
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
    }
    if args.layer != "memory":
        extra["REDIS_URL"] = args.redis_url
    extra["CALLSITE_REDIS_LAYER"] = "list" if args.layer == "redis-list" else "pubsub"
    load = Load([], calls, args.secret, f"r{run}w{workers}-{secrets.token_hex(3)}", result.audio)
    pages: list[PageSocket] = []
    driver: asyncio.Task[None] | None = None
    group: Workers | None = None
    spies: list[subprocess.Popen[bytes]] = []
    phase = "preparing the database"
    try:
        cookie = db.prepare(args.secret, extra)
        phase = "starting the servers"
        group = Workers("callsite", workdir, args.secret, workers, extra)
        await group.ready()
        ports = load.ports = group.ports

        def page_port(supervisor: int) -> int:
            """Supervisor j's pages are on worker j + 1: with 2, the other worker's calls."""
            return ports[(supervisor + 1) % workers]

        # The first wall (supervisor 0's) opens before the calls, so it hears of every call
        # as it connects, whichever worker the call's socket is on.
        call_ids: dict[str, int] = {}

        def on_call(call: dict[str, Any]) -> None:
            if isinstance(call.get("connection_id"), str) and isinstance(call.get("id"), int):
                call_ids[call["connection_id"]] = call["id"]

        phase = "opening the first wall"
        first_wall = PageSocket("/ws/dashboard/", page_port(0), cookie, on_call=on_call)
        pages.append(first_wall)
        await open_page(first_wall)
        phase = "opening the ACS sockets"
        await load.connect()
        t0 = time.monotonic() + 0.2
        driver = asyncio.create_task(load.drive(t0))
        phase = "waiting for the first wall to list every call"
        wanted = {sock.call_id for sock in load.sockets}
        deadline = time.monotonic() + CONNECT_LIMIT
        while not wanted <= call_ids.keys():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the wall saw {len(wanted & call_ids.keys())} of {calls} calls")
            await asyncio.sleep(0.1)

        # Then every supervisor's wall (the first has one already) and call pages.
        phase = "opening supervisor pages"
        connect0 = time.monotonic()
        limit = asyncio.Semaphore(16)
        new: list[PageSocket] = [
            PageSocket("/ws/dashboard/", page_port(j), cookie) for j in range(1, supervisors)
        ]
        for supervisor in range(supervisors):
            for index in watched_calls(supervisor, calls, per):
                call_id = call_ids[load.sockets[index].call_id]
                path = f"/ws/dashboard/calls/{call_id}/"
                new.append(PageSocket(path, page_port(supervisor), cookie, call=index))
        pages += new
        result.pages_wanted = len(pages)
        result.cross_pages = sum(
            1 for sock in new if sock.call is not None and sock.port != ports[sock.call % workers]
        )

        async def open_limited(sock: PageSocket) -> PageSocket:
            async with limit:
                return await open_page(sock)

        try:
            await gather_open(
                "supervisor pages (besides the first wall)",
                [open_limited(sock) for sock in new],
                [ports.index(sock.port) for sock in new],
                workers,
            )
        finally:
            result.pages_opened = 1 + sum(1 for sock in new if sock.ready)
        result.connect_s = time.monotonic() - connect0

        phase = "warming up"
        load.captions_from = time.monotonic() + 0.1
        await asyncio.sleep(args.warmup + 0.1)

        phase = "measuring"
        redis = await redis_pid(args.redis_url) if args.layer != "memory" else None
        before: Snapshot = await group.metrics()
        meter = CpuMeter(group.pids, group.cores, generator_cpus, redis)
        w0 = time.monotonic()
        frames0 = load.audio.sent
        if args.py_spy is not None:
            args.py_spy.mkdir(parents=True, exist_ok=True)
            stem = f"latency-{args.layer}-C{calls}-run{run}"
            for i, pid in enumerate(group.pids):
                name = f"{stem}.txt" if workers == 1 else f"{stem}-W{workers}-worker{i}.txt"
                spies.append(start_py_spy(pid, args.seconds, args.py_spy / name))
        load.measuring = True
        await asyncio.sleep(args.seconds)
        load.measuring = False
        frames1 = load.audio.sent
        w1 = time.monotonic()
        cpu = meter.stop()
        after = await group.metrics()
        if args.layer == "redis-list":
            result.inbox = await redis_inbox(args.redis_url, prefix)

        # The load goes on while the window's last captions arrive.
        phase = "draining"
        await asyncio.sleep(args.drain)
        load.stop_at = time.monotonic()
        await driver
        for spy in spies:
            spy.wait(timeout=30)
        await asyncio.sleep(1.0)
        final = await group.metrics()
        result.closed = load.closed() + [
            f"{p.path}: {p.closed_by_server}" for p in pages if p.closed_by_server
        ]
    except Exception as error:  # a failed run is reported; the next one goes on
        result.error = f"{phase}: {type(error).__name__}: {error}"
        if isinstance(error, subprocess.CalledProcessError):
            result.error += f" {error.stderr.strip()[-2000:]}"
        result.closed = load.closed()[:5]
        if group is not None:
            result.log_problems = log_problems(group.logs())
        result.elapsed_s = time.monotonic() - started
        return result
    finally:
        load.stop_at = 0
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        if driver is not None and not driver.done():
            driver.cancel()
            with contextlib.suppress(BaseException):
                await driver
        for page in pages:
            page.close()
        load.close()
        if group is not None:
            group.stop()
        with contextlib.suppress(Exception):
            db.drop()
        if args.layer != "memory":
            with contextlib.suppress(Exception):
                await redis_cleanup(args.redis_url, prefix)

    assert group is not None
    window = w1 - w0
    lag = lag_between(before, after)
    result.audio_lag_p50_ms, result.audio_lag_p99_ms = lag.p50 * 1000, lag.p99 * 1000
    result.frames_handled, result.frames_sent = lag.count, frames1 - frames0
    if load.with_audio:
        result.audio_send_rate = result.frames_sent / (2 * calls * window / PERIOD)
    result.unhandled = int(load.audio.sent - final.value("callsite_ingest_audio_frames_total"))
    result.rejected = int(final.value("callsite_ingest_rejected_total"))
    result.audio_late_p99_ms = load.audio.lateness_quantile(0.99) * 1000
    result.caption_late_p99_ms = load.captions.lateness_quantile(0.99) * 1000
    result.server_cpu = cpu.total
    result.worker_cpu = cpu.workers
    result.core_busy = cpu.cores_busy
    result.others_cpu = cpu.others
    result.generator_cpu = cpu.generator
    result.redis_cpu = cpu.redis
    result.log_problems = log_problems(group.logs())
    tally(result, load, pages)
    late = max(result.audio_late_p99_ms, result.caption_late_p99_ms)
    if result.audio_send_rate < MIN_SEND_RATE or late > MAX_SEND_LATENESS * 1000:
        result.status = "generator-bound"
    elif result.others_cpu > MAX_NOISE * len(group.cores):
        result.status = "noisy"
    elif result.all.p99_ms < LATENCY_TARGET * 1000 and not result.lost and not result.closed:
        result.status = "ok"
    else:
        result.status = "over"
    result.elapsed_s = time.monotonic() - started
    return result


def tally(result: Run, load: Load, pages: Sequence[PageSocket]) -> None:
    """Match every page's receipts to the packets sent; latencies and losses of the window."""
    watchers: Counter[int] = Counter(p.call for p in pages if p.call is not None)
    for sent in load.sent.values():
        if sent.counted:
            if sent.final:
                result.expected_final += watchers[sent.call]
            else:
                result.expected_interim += watchers[sent.call]
    interim: list[float] = []
    final: list[float] = []
    by_slice: dict[int, list[float]] = {}
    first = min((sent.at for sent in load.sent.values() if sent.counted), default=0.0)
    events: Counter[str] = Counter()
    event_bytes: Counter[str] = Counter()
    for page in pages:
        events.update(page.events)
        event_bytes.update(page.event_bytes)
        seen: set[str] = set()
        for tag, at in page.receipts:
            packet = load.sent.get(tag)
            if packet is None or packet.call != page.call:
                result.misrouted += 1
                continue
            if tag in seen:
                result.duplicates += 1
                continue
            seen.add(tag)
            if packet.counted:
                (final if packet.final else interim).append(at - packet.at)
                by_slice.setdefault(int((packet.at - first) // TREND_SLICE), []).append(
                    at - packet.at
                )
    result.interim, result.final = Quantiles.of(interim), Quantiles.of(final)
    result.all = Quantiles.of(interim + final)
    result.lost_interim = result.expected_interim - len(interim)
    result.lost_final = result.expected_final - len(final)
    result.events = dict(events.most_common())
    result.event_bytes = dict(event_bytes.most_common())
    result.trend_p50_ms = [
        statistics.median(by_slice[k]) * 1000 for k in sorted(by_slice) if by_slice[k]
    ]


# --- report ------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def counted_runs(runs: Sequence[Run], workers: int) -> list[Run]:
    return [r for r in runs if r.workers == workers and r.status in ("ok", "over")]


def markdown(runs: Sequence[Run], workers: Sequence[int] = (1,)) -> str:
    """The caption table (a row group per worker count when there are several), each run's
    CPU, lag and losses, the target, and N workers' figures over the smallest count's."""
    single = list(workers) == [1]
    lines = [
        "| captions | delivered / expected | p50 ms | p90 ms | p99 ms: median (runs) | max ms |",
        "|---|---:|---:|---:|---|---:|",
    ]
    if not single:
        lines = ["| workers " + lines[0], "|---:" + lines[1]]
    for n in workers:
        counted = counted_runs(runs, n)
        for name in ("interim", "final", "all"):
            stats: list[Quantiles] = [getattr(r, name) for r in counted]
            if name == "all":
                expected = sum(r.expected_interim + r.expected_final for r in counted)
            else:
                expected = sum(getattr(r, f"expected_{name}") for r in counted)
            delivered = sum(s.count for s in stats)
            p99s = " / ".join(fmt_ms(s.p99_ms) for s in stats)
            lines.append(
                ("" if single else f"| {n} ") + f"| {name} | {delivered} / {expected}"
                f" | {fmt_ms(median([s.p50_ms for s in stats]))}"
                f" | {fmt_ms(median([s.p90_ms for s in stats]))}"
                f" | **{fmt_ms(median([s.p99_ms for s in stats]))}** ({p99s})"
                f" | {fmt_ms(max((s.max_ms for s in stats), default=math.nan))} |"
            )
    lines.append("")
    for r in runs:
        name = f"run {r.run}" if single else f"run {r.run}, {workers_text(r.workers)}"
        if r.error:
            lines.append(f"* {name}: {r.status}: {r.error}")
            continue
        if len(r.worker_cpu) > 1:
            cpu = (
                f"server CPU {r.server_cpu:.0%} ({' + '.join(f'{c:.0%}' for c in r.worker_cpu)}),"
                f" others on the workers' cores {r.others_cpu:.0%}"
            )
        else:
            cpu = f"server CPU {r.server_cpu:.0%}, others on its core {r.others_cpu:.0%}"
        lines.append(
            f"* {name}: {r.status}; {cpu}, Redis {r.redis_cpu:.0%}, load generator"
            f" {r.generator_cpu:.0%}; audio lag p50/p99 {fmt_ms(r.audio_lag_p50_ms)}"
            f"/{fmt_ms(r.audio_lag_p99_ms)} ms, frames {r.frames_handled}/{r.frames_sent}"
            f" handled; send lateness p99 {r.audio_late_p99_ms:.0f} ms (audio),"
            f" {r.caption_late_p99_ms:.0f} ms (captions); lost {r.lost}, duplicates"
            f" {r.duplicates}; pages opened in {r.connect_s:.1f} s"
            + (
                f" ({r.cross_pages} of {r.pages_wanted - r.supervisors} call pages on another"
                " worker than their call's socket);"
                if r.workers > 1
                else ";"
            )
            + (f" inbox at the window's end {r.inbox};" if r.inbox >= 0 else "")
            + " messages received:"
            f" {', '.join(f'{k} {v}' for k, v in r.events.items())}"
        )
    for n in workers:
        counted = counted_runs(runs, n)
        p99 = median([r.all.p99_ms for r in counted])
        met = counted and p99 < LATENCY_TARGET * 1000 and not any(r.lost for r in counted)
        lines.append(
            f"* target p99 < {LATENCY_TARGET * 1000:.0f} ms, nothing lost"
            + ("" if single else f", {workers_text(n)}")
            + ": "
            + ("met" if met else "not met")
        )
    base = counted_runs(runs, workers[0])
    for n in workers[1:]:
        counted = counted_runs(runs, n)
        text = f"* {workers_text(n)} / {workers_text(workers[0])}, medians of counted runs: "
        if not base or not counted:
            lines.append(text + "- (no counted runs to compare)")
            continue

        def ratio(of: Callable[[Run], float], runs_n: list[Run] = counted) -> str:
            old, new = median([of(r) for r in base]), median([of(r) for r in runs_n])
            good = math.isfinite(old) and math.isfinite(new) and old > 0
            return f"{new / old:.2f}" if good else "-"

        lines.append(
            text
            + f"p50 {ratio(lambda r: r.all.p50_ms)}, p99 {ratio(lambda r: r.all.p99_ms)}"
            + " (all captions; under 1 is faster), server CPU"
            + f" {ratio(lambda r: r.server_cpu)} ({median([r.server_cpu for r in base]):.0%}"
            + f" -> {median([r.server_cpu for r in counted]):.0%}), lost"
            + f" {sum(r.lost for r in base)} -> {sum(r.lost for r in counted)}"
        )
    return "\n".join(lines)


def write_json(path: Path, runs: Sequence[Run], args: argparse.Namespace) -> None:
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "code": args.code_version,
        "cpus": os.cpu_count(),
        "loop": args.loop_name,
        "settings": {
            k: getattr(args, k)
            for k in (
                "calls",
                "supervisors",
                "calls_per_supervisor",
                "seconds",
                "warmup",
                "drain",
                "runs",
                "layer",
                "no_audio",
                "workers",
            )
        },
        "placement": placement(args.workers, "load"),
        "runs": [asdict(r) for r in runs],
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


async def bench(args: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        for run in range(1, args.runs + 1):
            # each worker count in turn, so that noise falls on all of them alike
            for workers in args.workers:
                result = await measure(run, workers, args, workdir)
                runs.append(result)
                print(result.line(), flush=True)
                for problem in result.log_problems[:3]:
                    print(f"    server log: {problem[:200]}", flush=True)
                if args.json is not None:
                    write_json(args.json, runs, args)
                await asyncio.sleep(args.pause)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=100, help="concurrent calls (C)")
    parser.add_argument("--supervisors", type=int, default=20, help="supervisors (S)")
    parser.add_argument(
        "--calls-per-supervisor", type=int, default=10, help="call pages each supervisor opens"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of captions first")
    parser.add_argument("--drain", type=float, default=5.0, help="load after the window")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgres://user@host:5432/postgres) to create a scratch"
        " database on for each run; default: a fresh SQLite file",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the layer")
    parser.add_argument(
        "--layer",
        choices=["redis", "redis-list", "memory"],
        default="redis",
        help="channel layer: Callsite's Redis layer (pub/sub), or for comparison channels-redis's"
        " inbox-per-process layer (CALLSITE_REDIS_LAYER=list) or the in-process layer (one"
        " worker only)",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="Daphne processes sharing the database and Redis, or a list (1,2) to run each in"
        " turn in every run (default 1)",
    )
    parser.add_argument(
        "--no-audio", action="store_true", help="send transcription only (to compare)"
    )
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument("--workdir", type=Path, help="keep databases and server logs here")
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="record a py-spy profile of the server during each window into this folder"
        " (summarise with python -m bench.ingest --summarize FILE)",
    )
    args = parser.parse_args(argv)
    if args.database_url and urlsplit(args.database_url).scheme not in ("postgres", "postgresql"):
        parser.error("--database-url must be a postgres:// URL")
    if min(args.calls, args.supervisors, args.calls_per_supervisor) < 1:
        parser.error("--calls, --supervisors and --calls-per-supervisor must be at least 1")
    try:
        args.workers = parse_workers(args.workers)
    except ValueError as error:
        parser.error(f"--workers: {error}")
    if args.layer == "memory" and max(args.workers) > 1:
        parser.error(
            "--layer memory cannot serve more than one worker: the in-memory channel layer"
            " lives inside one process, so captions would never reach pages on another worker;"
            " use --layer redis (or redis-list)"
        )
    args.secret = secrets.token_urlsafe(16)
    args.code_version = code_version()
    signal.signal(signal.SIGTERM, interrupt)  # stop the servers and clean up, as on Ctrl-C
    raise_fd_limit()
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        uvloop = None
    args.loop_name = "uvloop" if uvloop is not None else "asyncio"
    runner = uvloop.run if uvloop is not None else asyncio.run
    if args.layer != "memory":
        problem = redis_problem(runner, args.redis_url)
        if problem:
            parser.error(problem)
    started = time.monotonic()
    print(
        f"# caption latency, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, code {args.code_version},"
        f" {os.cpu_count()} CPUs, {args.calls} calls, {args.supervisors} supervisors x"
        f" {args.calls_per_supervisor} call pages, {args.layer} layer,"
        f" {'no audio' if args.no_audio else 'audio'},"
        f" {'postgresql' if args.database_url else 'sqlite'}; "
        + placement(args.workers, f"load ({args.loop_name})"),
        flush=True,
    )
    try:
        runs = runner(bench(args))
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        return 130
    finally:
        stop_servers()
    print()
    print(markdown(runs, args.workers))
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
