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
send lateness under 20 ms; otherwise it is marked generator-bound) and other processes used
at most 10% of the server's core (otherwise it is marked noisy)::

    python -m bench.latency --calls 100 --supervisors 20 --seconds 30 --runs 3 --json out.json

``--layer redis`` is Callsite's default Redis layer (channels-redis's pub/sub layer);
``--layer redis-list`` (channels-redis's inbox-per-process layer, ``CALLSITE_REDIS_LAYER=list``)
and ``--layer memory`` (the in-process layer) run the same load for comparison, and
``--no-audio`` leaves the audio out.
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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from bench.ingest import (
    AUDIO_METADATA,
    FRAME_TAIL,
    GENERATOR_CPU,
    MAX_SEND_LATENESS,
    MIN_SEND_RATE,
    PCM_BYTES,
    PCM_PARTS,
    PERIOD,
    ROOT,
    SERVER_CPU,
    STAMP_BYTES,
    TICK,
    AcsSocket,
    SendStats,
    Server,
    Snapshot,
    Stamp,
    base_env,
    client_frame,
    client_frame_header,
    code_version,
    core_busy_seconds,
    cpu_seconds,
    fmt_ms,
    lag_between,
    pin_self,
    read_metrics,
    start_py_spy,
)
from streaming.simulator import DATA_KIND, METADATA_KIND, TICKS_PER_SECOND

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
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
TREND_SLICE = 5.0  # seconds of send time per point of a run's latency trend
MAX_NOISE = 0.10  # share of the server's core other processes may use in a counted run


# --- packets -----------------------------------------------------------------------------------


def _dump(kind: str, body: dict[str, Any]) -> str:
    return json.dumps({"kind": kind, kind[0].lower() + kind[1:]: body}, separators=(",", ":"))


def transcription_metadata(call_id: str) -> str:
    return _dump(
        METADATA_KIND,
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
    return _dump(DATA_KIND, body)


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

    def __init__(self, port: int, calls: int, token: str, label: str, audio: bool = True) -> None:
        self.port = port
        self.calls = calls
        self.with_audio = audio
        self.token = token
        self.label = label
        self.sockets: list[CallSocket] = []
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

        async def open_one(index: int) -> CallSocket:
            async with limit:
                call_id = f"{self.label}-{index:05d}"
                sock = CallSocket(index, "127.0.0.1", self.port, self.token, call_id)
                await loop.create_connection(lambda: sock, "127.0.0.1", self.port)
                await asyncio.wait_for(sock.opened, CONNECT_LIMIT)
                if self.with_audio:
                    sock.send_text(AUDIO_METADATA)
                sock.send_text(transcription_metadata(call_id))
                return sock

        self.sockets = list(await asyncio.gather(*(open_one(i) for i in range(self.calls))))

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
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.abort()


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


async def open_page(sock: PageSocket, port: int) -> PageSocket:
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: sock, "127.0.0.1", port)
    await asyncio.wait_for(sock.opened, CONNECT_LIMIT)
    await asyncio.wait_for(sock.first, CONNECT_LIMIT)
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

    def __init__(self, workdir: Path, run: int, server_url: str | None) -> None:
        self.server_url = server_url
        self.name: str | None = None
        if server_url is None:
            path = workdir / f"latency-run{run}.sqlite3"
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


async def redis_pid(url: str) -> int | None:
    """Redis's process id when it runs on this machine (its CPU use is then reported)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        server = await client.info("server")
    finally:
        await client.aclose()
    local = (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")
    return int(server["process_id"]) if local else None


def process_cpu(pid: int | None) -> float:
    """CPU seconds of a process, or NaN when it is unknown or unreadable."""
    if pid is None:
        return math.nan
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return math.nan


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


async def redis_cleanup(url: str, prefix: str) -> int:
    """Delete the run's keys (its channel prefix) from Redis; returns how many there were."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    deleted = 0
    try:
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            deleted += int(await client.delete(key))
    finally:
        await client.aclose()
    return deleted


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
    server_cpu: float = math.nan
    core_busy: float = math.nan
    generator_cpu: float = math.nan
    redis_cpu: float = math.nan
    connect_s: float = math.nan  # time to open every supervisor page
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

    def line(self) -> str:
        if self.error:
            return f"run {self.run}: {self.error} -> {self.status}"

        def q(name: str, stats: Quantiles) -> str:
            return (
                f"{name} p50 {fmt_ms(stats.p50_ms)} p90 {fmt_ms(stats.p90_ms)}"
                f" p99 {fmt_ms(stats.p99_ms)} max {fmt_ms(stats.max_ms)} ms"
            )

        return (
            f"run {self.run}: {q('interim', self.interim)} ({self.interim.count}"
            f"/{self.expected_interim}) | {q('final', self.final)} ({self.final.count}"
            f"/{self.expected_final}) | all p99 {fmt_ms(self.all.p99_ms)} ms"
            f" | audio lag p99 {fmt_ms(self.audio_lag_p99_ms)} ms,"
            f" handled {self.frames_handled}/{self.frames_sent}"
            f" | send late99 audio {self.audio_late_p99_ms:.0f} captions"
            f" {self.caption_late_p99_ms:.0f} ms"
            f" | cpu srv {self.server_cpu:.0%} other {self.core_busy - self.server_cpu:.0%}"
            f" gen {self.generator_cpu:.0%} redis {self.redis_cpu:.0%}"
            f" | p50 per {TREND_SLICE:.0f} s: {' '.join(fmt_ms(v) for v in self.trend_p50_ms)} ms"
            f" -> {self.status}"
            + (f" ({self.lost} lost)" if self.lost else "")
            + (f" ({self.duplicates} duplicates)" if self.duplicates else "")
            + (f" ({len(self.closed)} closed)" if self.closed else "")
            + (f" ({len(self.log_problems)} log problems)" if self.log_problems else "")
        )


def log_problems(path: Path, limit: int = 20) -> list[str]:
    """Warnings, errors and tracebacks in the server's log."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = [
        line
        for line in lines
        if any(word in line for word in ("WARNING", "ERROR", "CRITICAL", "Traceback"))
    ]
    return found[:limit]


async def measure(run: int, args: argparse.Namespace, workdir: Path) -> Run:
    calls, supervisors, per = args.calls, args.supervisors, args.calls_per_supervisor
    database = "postgresql" if args.database_url else "sqlite"
    result = Run(run, calls, supervisors, supervisors * per // calls, args.layer, database)
    result.audio = not args.no_audio
    started = time.monotonic()
    prefix = f"callsite-bench-{secrets.token_hex(4)}"
    db = Database(workdir, run, args.database_url)
    extra = {
        "DATABASE_URL": db.url,
        "CALLSITE_CHANNEL_PREFIX": prefix,
        # one key for the session made beforehand and the server that reads it
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
    }
    if args.layer != "memory":
        extra["REDIS_URL"] = args.redis_url
    extra["CALLSITE_REDIS_LAYER"] = "list" if args.layer == "redis-list" else "pubsub"
    load = Load(0, calls, args.secret, f"r{run}-{secrets.token_hex(3)}", not args.no_audio)
    pages: list[PageSocket] = []
    driver: asyncio.Task[None] | None = None
    server: Server | None = None
    spy: subprocess.Popen[bytes] | None = None
    phase = "preparing the database"
    try:
        cookie = db.prepare(args.secret, extra)
        server = Server("callsite", workdir, None, args.secret, extra)
        phase = "starting the server"
        await server.ready()
        port = load.port = server.port

        # The first wall opens before the calls, so it hears of every call as it connects.
        call_ids: dict[str, int] = {}

        def on_call(call: dict[str, Any]) -> None:
            if isinstance(call.get("connection_id"), str) and isinstance(call.get("id"), int):
                call_ids[call["connection_id"]] = call["id"]

        phase = "connecting"
        pages.append(
            await open_page(PageSocket("/ws/dashboard/", port, cookie, on_call=on_call), port)
        )
        await load.connect()
        t0 = time.monotonic() + 0.2
        driver = asyncio.create_task(load.drive(t0))
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
            PageSocket("/ws/dashboard/", port, cookie) for _ in range(1, supervisors)
        ]
        for supervisor in range(supervisors):
            for index in watched_calls(supervisor, calls, per):
                call_id = call_ids[load.sockets[index].call_id]
                path = f"/ws/dashboard/calls/{call_id}/"
                new.append(PageSocket(path, port, cookie, call=index))
        pages += new

        async def open_limited(sock: PageSocket) -> PageSocket:
            async with limit:
                return await open_page(sock, port)

        await asyncio.gather(*(open_limited(sock) for sock in new))
        result.connect_s = time.monotonic() - connect0

        phase = "warming up"
        load.captions_from = time.monotonic() + 0.1
        await asyncio.sleep(args.warmup + 0.1)

        phase = "measuring"
        redis = await redis_pid(args.redis_url) if args.layer != "memory" else None
        before: Snapshot = await read_metrics(port)
        w0, gen0 = time.monotonic(), time.process_time()
        srv0, core0 = cpu_seconds(server.pid), core_busy_seconds(SERVER_CPU)
        redis0 = process_cpu(redis)
        frames0 = load.audio.sent
        if args.py_spy is not None:
            args.py_spy.mkdir(parents=True, exist_ok=True)
            profile = args.py_spy / f"latency-{args.layer}-C{calls}-run{run}.txt"
            spy = start_py_spy(server.pid, args.seconds, profile)
        load.measuring = True
        await asyncio.sleep(args.seconds)
        load.measuring = False
        frames1 = load.audio.sent
        w1, gen1 = time.monotonic(), time.process_time()
        srv1, core1 = cpu_seconds(server.pid), core_busy_seconds(SERVER_CPU)
        redis1 = process_cpu(redis)
        after = await read_metrics(port)
        if args.layer == "redis-list":
            result.inbox = await redis_inbox(args.redis_url, prefix)

        # The load goes on while the window's last captions arrive.
        phase = "draining"
        await asyncio.sleep(args.drain)
        load.stop_at = time.monotonic()
        await driver
        if spy is not None:
            spy.wait(timeout=30)
        await asyncio.sleep(1.0)
        final = await read_metrics(port)
        result.closed = load.closed() + [
            f"{p.path}: {p.closed_by_server}" for p in pages if p.closed_by_server
        ]
    except Exception as error:  # a failed run is reported; the next one goes on
        result.error = f"{phase}: {type(error).__name__}: {error}"
        if isinstance(error, subprocess.CalledProcessError):
            result.error += f" {error.stderr.strip()[-2000:]}"
        result.closed = load.closed()[:5]
        if server is not None:
            result.log_problems = log_problems(server.log_path)
        result.elapsed_s = time.monotonic() - started
        return result
    finally:
        load.stop_at = 0
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        if driver is not None and not driver.done():
            driver.cancel()
            with contextlib.suppress(BaseException):
                await driver
        for page in pages:
            page.close()
        load.close()
        if server is not None:
            server.stop()
        with contextlib.suppress(Exception):
            db.drop()
        if args.layer != "memory":
            with contextlib.suppress(Exception):
                await redis_cleanup(args.redis_url, prefix)

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
    result.server_cpu = (srv1 - srv0) / window
    result.core_busy = (core1 - core0) / window
    result.generator_cpu = (gen1 - gen0) / window
    result.redis_cpu = (redis1 - redis0) / window
    result.log_problems = log_problems(server.log_path)
    tally(result, load, pages)
    late = max(result.audio_late_p99_ms, result.caption_late_p99_ms)
    if result.audio_send_rate < MIN_SEND_RATE or late > MAX_SEND_LATENESS * 1000:
        result.status = "generator-bound"
    elif result.core_busy - result.server_cpu > MAX_NOISE:
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


def markdown(runs: Sequence[Run]) -> str:
    counted = [r for r in runs if r.status in ("ok", "over")]
    lines = [
        "| captions | delivered / expected | p50 ms | p90 ms | p99 ms: median (runs) | max ms |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name in ("interim", "final", "all"):
        stats: list[Quantiles] = [getattr(r, name) for r in counted]
        if name == "all":
            expected = sum(r.expected_interim + r.expected_final for r in counted)
        else:
            expected = sum(getattr(r, f"expected_{name}") for r in counted)
        delivered = sum(s.count for s in stats)
        p99s = " / ".join(fmt_ms(s.p99_ms) for s in stats)
        lines.append(
            f"| {name} | {delivered} / {expected} | {fmt_ms(median([s.p50_ms for s in stats]))}"
            f" | {fmt_ms(median([s.p90_ms for s in stats]))}"
            f" | **{fmt_ms(median([s.p99_ms for s in stats]))}** ({p99s})"
            f" | {fmt_ms(max((s.max_ms for s in stats), default=math.nan))} |"
        )
    lines.append("")
    for r in runs:
        if r.error:
            lines.append(f"* run {r.run}: {r.status}: {r.error}")
            continue
        lines.append(
            f"* run {r.run}: {r.status}; server CPU {r.server_cpu:.0%}, others on its core"
            f" {r.core_busy - r.server_cpu:.0%}, Redis {r.redis_cpu:.0%}, load generator"
            f" {r.generator_cpu:.0%}; audio lag p50/p99 {fmt_ms(r.audio_lag_p50_ms)}"
            f"/{fmt_ms(r.audio_lag_p99_ms)} ms, frames {r.frames_handled}/{r.frames_sent}"
            f" handled; send lateness p99 {r.audio_late_p99_ms:.0f} ms (audio),"
            f" {r.caption_late_p99_ms:.0f} ms (captions); lost {r.lost}, duplicates"
            f" {r.duplicates}; pages opened in {r.connect_s:.1f} s;"
            + (f" inbox at the window's end {r.inbox};" if r.inbox >= 0 else "")
            + " messages received:"
            f" {', '.join(f'{k} {v}' for k, v in r.events.items())}"
        )
    p99 = median([r.all.p99_ms for r in counted])
    met = counted and p99 < LATENCY_TARGET * 1000 and not any(r.lost for r in counted)
    lines.append(
        f"* target p99 < {LATENCY_TARGET * 1000:.0f} ms, nothing lost: "
        + ("met" if met else "not met")
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
            )
        },
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
            result = await measure(run, args, workdir)
            runs.append(result)
            print(result.line(), flush=True)
            for problem in result.log_problems[:3]:
                print(f"    server log: {problem[:200]}", flush=True)
            if args.json is not None:
                write_json(args.json, runs, args)
            await asyncio.sleep(args.pause)
    return runs


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


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
        " inbox-per-process layer (CALLSITE_REDIS_LAYER=list) or the in-process layer",
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
    args.secret = secrets.token_urlsafe(16)
    args.code_version = code_version()
    signal.signal(signal.SIGTERM, _interrupt)  # stop the server and clean up, as on Ctrl-C
    pin_self()
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        uvloop = None
    args.loop_name = "uvloop" if uvloop is not None else "asyncio"
    runner = uvloop.run if uvloop is not None else asyncio.run
    if args.layer != "memory":
        try:
            runner(redis_pid(args.redis_url))
        except Exception as error:
            parser.error(f"Redis at {args.redis_url} does not answer: {error}")
    started = time.monotonic()
    print(
        f"# caption latency, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, code {args.code_version},"
        f" {os.cpu_count()} CPUs, {args.calls} calls, {args.supervisors} supervisors x"
        f" {args.calls_per_supervisor} call pages, {args.layer} layer,"
        f" {'no audio' if args.no_audio else 'audio'},"
        f" {'postgresql' if args.database_url else 'sqlite'}; server on CPU {SERVER_CPU},"
        f" load ({args.loop_name}) on CPU {GENERATOR_CPU}",
        flush=True,
    )
    try:
        runs = runner(bench(args))
    except KeyboardInterrupt:
        print("interrupted; the server was stopped", file=sys.stderr)
        return 130
    print()
    print(markdown(runs))
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
