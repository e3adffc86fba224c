"""Ingest capacity: how many real-time calls one server process keeps up with.

For each run, each number of calls C and each server (Callsite under Daphne, and the bare
``websockets`` server of ``bench/bare_server.py`` doing the same parsing and per-frame work),
a fresh server is started pinned to CPU 0 and this process, pinned to CPU 1, plays C ACS media
sockets at 50 frames a second each: one AudioMetadata (16 kHz), then 20 ms AudioData frames of
640 bytes of speech-like noise from one participant per call, whose ``timestamp`` is the time
the frame was sent. The server's frame-lag histogram (``GET /metrics``) is read before and
after a measurement window; its difference gives the p50/p99 of the lag from send to handled.

A point counts only if the generator kept to its schedule (>= 95% of the frames due in the
window were sent, p99 send lateness under 20 ms); otherwise it is marked generator-bound. The
capacity of a server is the largest C whose median p99 over the runs is under 100 ms, with
every frame handled and no socket closed by the server::

    python -m bench.ingest --calls 100,200,300,400,500,600 --seconds 20 --runs 3 \\
        --servers callsite,bare --json out.json

``--workers 1,2`` measures every point with 1 and then with 2 identical server processes
(interleaved, so noise affects both alike) and reports each worker count's capacity and their
ratio. N workers are N servers on N ports, worker i pinned to CPU i % cpu_count; Callsite's
share one SQLite file and Redis as the channel layer, which then serves the 1-worker points
too (``--layer``). Call i's socket goes to worker i % N, and the lag histograms of all workers
are added up. The generator keeps a core of its own (CPU N) while N < cpu_count and runs
unpinned otherwise; each point reports every worker's CPU, the generator's, Redis's, and that
of other processes on the workers' cores (``CpuMeter``).

Frames are written straight to the socket as pre-built WebSocket frames (masking key zero, so
masking is a no-op), and one task drives all connections on an evenly staggered schedule:
``--driver tasks`` (one sleeping task per connection) is there to compare the two.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import importlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PERIOD = 0.020  # ACS sends a frame every 20 ms per stream
SAMPLE_RATE = 16000
PCM_BYTES = SAMPLE_RATE // 50 * 2  # 640
LAG_TARGET = 0.100
MIN_SEND_RATE = 0.95
MAX_SEND_LATENESS = 0.020
TICK = 0.001  # the batched driver wakes at most this often
PRIMING_FRAMES = 2
SERVER_CPU = 0  # worker 0's CPU; worker i runs on worker_cpu(i)
CPUS = os.cpu_count() or 1
LAG_METRIC = "callsite_ingest_frame_lag_seconds"
METRICS_LIMIT = 30.0  # seconds a /metrics read may take
ACS_PATH = "/ws/acs/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


# --- metrics -----------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """One read of a server's ``/metrics``."""

    values: dict[str, float]
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count)

    def value(self, name: str) -> float:
        return self.values.get(name, 0.0)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{le="([^"]+)"\})?\s+(\S+)$')


def parse_metrics(text: str) -> Snapshot:
    values: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, le, value = match.groups()
        if name == LAG_METRIC + "_bucket" and le is not None:
            buckets.append((math.inf if le == "+Inf" else float(le), float(value)))
        else:
            values[name] = float(value)
    buckets.sort()
    return Snapshot(values, buckets)


@dataclass
class LagStats:
    count: int
    p50: float
    p99: float
    max: float  # upper bound of the highest non-empty bucket (inf past the last bound)
    under_target: float  # share of frames with lag <= LAG_TARGET


def lag_between(before: Snapshot, after: Snapshot) -> LagStats:
    """Lag quantiles of the frames handled between two reads (linear within a bucket)."""
    bounds = [bound for bound, _ in after.buckets]
    old = dict(before.buckets)
    cumulative = [count - old.get(bound, 0.0) for bound, count in after.buckets]
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return LagStats(0, math.nan, math.nan, math.nan, math.nan)

    def quantile(q: float) -> float:
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in zip(bounds, cumulative, strict=True):
            if count >= rank:
                if math.isinf(bound):
                    return math.inf  # past the last bound
                share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
                return lower_bound + share * (bound - lower_bound)
            lower_bound, lower_count = bound, count
        return lower_bound

    highest = 0.0
    previous = 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count > previous:
            highest = bound
        previous = count
    under = next((c for b, c in zip(bounds, cumulative, strict=True) if b >= LAG_TARGET), total)
    return LagStats(int(total), quantile(0.5), quantile(0.99), highest, under / total)


async def read_metrics(port: int, limit: float | None = None) -> Snapshot:
    async def fetch() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return await reader.read()
        finally:
            writer.close()

    raw = await asyncio.wait_for(fetch(), METRICS_LIMIT if limit is None else limit)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"GET /metrics answered {status.decode(errors='replace')}")
    return parse_metrics(body.decode())


def merge_snapshots(snapshots: Sequence[Snapshot]) -> Snapshot:
    """Several workers' metrics as one server's: values and histogram buckets added up."""
    if len(snapshots) == 1:
        return snapshots[0]
    values: Counter[str] = Counter()
    buckets: Counter[float] = Counter()
    for snap in snapshots:
        values.update(snap.values)
        buckets.update(dict(snap.buckets))
    return Snapshot(dict(values), sorted(buckets.items()))


async def read_all_metrics(ports: Sequence[int], limit: float | None = None) -> Snapshot:
    """Every worker's ``/metrics``, read at the same time and merged."""
    return merge_snapshots(await asyncio.gather(*(read_metrics(p, limit) for p in ports)))


# --- the load generator ------------------------------------------------------------------------


def speech_like_pcm(frames: int = 50, seed: int = 7) -> list[bytes]:
    """One second of noise with a syllable-rate envelope and pauses: levels vary per frame."""
    rng = np.random.default_rng(seed)
    samples = frames * PCM_BYTES // 2
    noise = rng.standard_normal(samples)
    noise = np.convolve(noise, np.ones(4) / 4, mode="same")  # a little low-pass
    t = np.arange(samples) / SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t) * 0.8 + 0.3, 0.0, None)  # ~4 syllables/s
    envelope[int(0.8 * samples) :] *= 0.01  # a pause at the end of the second
    pcm = np.clip(noise * envelope * 0.2 * 32767, -32768, 32767).astype("<i2")
    return [pcm[i * 320 : (i + 1) * 320].tobytes() for i in range(frames)]


PCM_PARTS = [
    base64.b64encode(frame) + b'","timestamp":"' for frame in speech_like_pcm()
]  # one second of frames, cycled
FRAME_TAIL = b'"}}'
STAMP_BYTES = 24  # 2024-11-15T19:16:12.345Z


class Stamp:
    """ACS-style UTC timestamps with millisecond precision, cheap to make many times a ms."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def at(self, wall: float) -> bytes:
        second, ms = divmod(int(wall * 1000), 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return self._prefix + b".%03dZ" % ms


def client_frame_header(length: int, opcode: int = 0x1) -> bytes:
    """Header of one masked client frame with masking key zero (masking is then a no-op)."""
    first = bytes([0x80 | opcode])
    if length < 126:
        return first + bytes([0x80 | length]) + b"\0\0\0\0"
    if length < 65536:
        return first + bytes([0x80 | 126]) + length.to_bytes(2, "big") + b"\0\0\0\0"
    return first + bytes([0x80 | 127]) + length.to_bytes(8, "big") + b"\0\0\0\0"


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    return client_frame_header(len(payload), opcode) + payload


class AcsSocket(asyncio.Protocol):
    """One ACS media socket: a raw WebSocket client that only sends and answers pings."""

    def __init__(self, index: int, host: str, port: int, token: str, call_id: str) -> None:
        self.index = index
        self.call_id = call_id
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.request = (
            f"GET {ACS_PATH}?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"x-ms-call-connection-id: {call_id}\r\nx-ms-call-correlation-id: bench\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.handshaken = False
        self.closed_by_server: str | None = None
        self.frames = 0  # AudioData frames sent
        participant = f"4:+1555{index:07d}"
        payload_head = (
            '{"kind":"AudioData","audioData":{"participantRawID":"'
            + participant
            + '","silent":false,"data":"'
        ).encode()
        length = len(payload_head) + len(PCM_PARTS[0]) + STAMP_BYTES + len(FRAME_TAIL)
        self.head = client_frame_header(length) + payload_head
        self.offset = index % len(PCM_PARTS)

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self._fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            self.handshaken = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._read_frames()

    def _read_frames(self) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            start = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + length:
                return
            payload = bytes(buf[start : start + length])
            del buf[: start + length]
            if opcode == 0x9 and self.transport is not None:  # ping: answer with a pong
                self.transport.write(client_frame(payload, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.closed_by_server = self.closed_by_server or f"close frame {code}"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed_by_server is None:
            self.closed_by_server = f"connection lost ({exc or 'EOF'})"
        self._fail(self.closed_by_server)

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        if self.transport is not None and not self.handshaken:
            self.transport.close()

    # sending
    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(text.encode()))

    def send_audio(self, stamp: bytes) -> None:
        n = self.frames
        self.frames = n + 1
        assert self.transport is not None
        self.transport.write(
            self.head + PCM_PARTS[(n + self.offset) % len(PCM_PARTS)] + stamp + FRAME_TAIL
        )


AUDIO_METADATA = json.dumps(
    {
        "kind": "AudioMetadata",
        "audioMetadata": {
            "subscriptionId": "bench",
            "encoding": "PCM",
            "sampleRate": SAMPLE_RATE,
            "channels": 1,
            "length": PCM_BYTES,
        },
    }
)


@dataclass
class SendStats:
    sent: int = 0
    late_ms: Counter[int] = field(default_factory=Counter)  # send lateness, whole ms
    measuring: bool = False

    def lateness_quantile(self, q: float) -> float:
        total = sum(self.late_ms.values())
        if not total:
            return 0.0
        seen = 0
        for ms in sorted(self.late_ms):
            seen += self.late_ms[ms]
            if seen >= q * total:
                return ms / 1000
        return max(self.late_ms) / 1000


class Generator:
    """C sockets sending one frame each every 20 ms, phases spread evenly over the period."""

    def __init__(
        self, ports: Sequence[int], calls: int, token: str, label: str, driver: str
    ) -> None:
        self.ports = ports  # call i's socket goes to worker i % len(ports)
        self.calls = calls
        self.token = token
        self.label = label
        self.driver = driver
        self.sockets: list[AcsSocket] = []
        self.opening: list[AcsSocket] = []  # every socket made, opened or not (to close)
        self.stats = SendStats()
        self.stamp = Stamp()
        self.stop_at = math.inf

    async def connect(self, concurrency: int = 32) -> None:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(concurrency)

        async def open_one(index: int) -> AcsSocket:
            async with limit:
                port = self.ports[index % len(self.ports)]
                sock = AcsSocket(index, "127.0.0.1", port, self.token, f"{self.label}-{index:05d}")
                self.opening.append(sock)
                await loop.create_connection(lambda: sock, "127.0.0.1", port)
                await asyncio.wait_for(sock.opened, 60)
                sock.send_text(AUDIO_METADATA)
                return sock

        results = await asyncio.gather(
            *(open_one(i) for i in range(self.calls)), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            first = failed[0]
            reason = "no answer within 60 s" if isinstance(first, TimeoutError) else repr(first)
            raise ConnectionError(
                f"{self.calls - len(failed)} of {self.calls} ACS sockets opened; first failure:"
                f" {reason}"
            )
        self.sockets = [r for r in results if isinstance(r, AcsSocket)]

    def prime(self, wall0: float) -> None:
        """Send each socket's first PRIMING_FRAMES frames ahead of the schedule.

        They are stamped as if sent in the periods just before the socket's first slot, so the
        scheduled frames follow on without a gap in the stream's timeline. The server does its
        once-per-stream work (Callsite: the call's audio origin, the participant row) on the
        first; a socket's frames are handled in order, so once the server has counted the
        second, the first is done.
        """
        slot = PERIOD / self.calls
        for k in range(PRIMING_FRAMES, 0, -1):
            for sock in self.sockets:
                sock.send_audio(self.stamp.at(wall0 + sock.index * slot - k * PERIOD))
        self.stats.sent += PRIMING_FRAMES * self.calls

    def _sent(self, now: float, due: float) -> None:
        stats = self.stats
        stats.sent += 1
        if stats.measuring:
            stats.late_ms[int((now - due) * 1000)] += 1

    async def drive_batched(self, t0: float) -> None:
        """One task: at each wake-up, send every frame that is due, in slot order."""
        sockets = self.sockets
        calls = len(sockets)
        slot = PERIOD / calls
        stats = self.stats
        monotonic, wall = time.monotonic, time.time
        s = 0
        while True:
            now = monotonic()
            if now >= self.stop_at:
                return
            due = int((now - t0) / slot)
            if due >= s:
                stamp = self.stamp.at(wall())
                measuring = stats.measuring
                late = stats.late_ms
                while s <= due:
                    sockets[s % calls].send_audio(stamp)
                    if measuring:
                        late[int((now - t0 - s * slot) * 1000)] += 1
                    s += 1
                stats.sent = PRIMING_FRAMES * self.calls + s  # one frame per slot
            delay = t0 + s * slot - monotonic()
            await asyncio.sleep(max(delay, TICK if slot < TICK else 0.0))

    async def drive_tasks(self, t0: float) -> None:
        """One task per socket, each sleeping until its next frame."""
        slot = PERIOD / len(self.sockets)

        async def one(sock: AcsSocket) -> None:
            monotonic, wall = time.monotonic, time.time
            first = t0 + sock.index * slot
            n = 0
            while True:
                due = first + n * PERIOD
                if due >= self.stop_at:
                    return
                delay = due - monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = monotonic()
                sock.send_audio(self.stamp.at(wall()))
                self._sent(now, due)
                n += 1

        await asyncio.gather(*(one(sock) for sock in self.sockets))

    def drive(self, t0: float) -> Coroutine[Any, Any, None]:
        return self.drive_batched(t0) if self.driver == "batched" else self.drive_tasks(t0)

    def closed(self) -> list[str]:
        return [f"{s.call_id}: {s.closed_by_server}" for s in self.sockets if s.closed_by_server]

    def close(self) -> None:
        for sock in self.opening:
            if sock.transport is not None:
                sock.transport.abort()


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cores_busy_seconds(cpus: Iterable[int] | None = None) -> float:
    """Busy (non-idle, non-iowait) time of these CPUs, or of all with None; all processes."""
    wanted = {"cpu"} if cpus is None else {f"cpu{cpu}" for cpu in cpus}
    busy, found = 0, 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, _, rest = line.partition(" ")
        if name in wanted:
            ticks = [int(x) for x in rest.split()]
            busy += sum(ticks[:8]) - ticks[3] - ticks[4]
            found += 1
    return busy / os.sysconf("SC_CLK_TCK") if found == len(wanted) else math.nan


def core_busy_seconds(cpu: int) -> float:
    """Busy (non-idle, non-iowait) time of one CPU, all processes."""
    return cores_busy_seconds([cpu])


def process_cpu(pid: int | None) -> float:
    """CPU seconds of a process, or NaN when it is unknown or unreadable."""
    if pid is None:
        return math.nan
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return math.nan


def affinity(pid: int | None) -> set[int] | None:
    """The CPUs a process may run on, or None when unknown."""
    if pid is None:
        return None
    try:
        return set(os.sched_getaffinity(pid))
    except (OSError, AttributeError):
        return None


# --- placement: worker i on CPU i % CPUS, the generator on a core of its own while one is left


def worker_cpu(index: int) -> int:
    return index % CPUS


def worker_cores(workers: int) -> set[int]:
    return {worker_cpu(i) for i in range(workers)}


def generator_cpu(workers: int) -> int | None:
    """The generator's CPU beside ``workers`` workers: CPU N while N < CPUS, else None.

    With as many workers as CPUs no core is left for the generator; it then runs unpinned, so
    the scheduler spreads its load over the workers' cores rather than all on one worker's.
    With one worker this is CPU 1, as the benchmarks have always had it.
    """
    return workers if workers < CPUS else None


def pin_generator(cpu: int | None) -> set[int]:
    """Pin this process, every thread, to ``cpu`` (None: any CPU); the CPUs it may now use."""
    cpus = set(range(CPUS)) if cpu is None else {cpu}
    try:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(tid), cpus)
    except (OSError, AttributeError) as error:
        print(f"warning: could not pin the generator to CPUs {sorted(cpus)}: {error}")
        return set(range(CPUS))
    return cpus


def placement(workers: Sequence[int], loop: str) -> str:
    """Where the servers and this process run, for the header line."""
    parts = []
    for n in workers:
        cpus = ",".join(str(worker_cpu(i)) for i in range(n))
        gen = generator_cpu(n)
        parts.append(
            f"{n} worker{'s' if n > 1 else ''} on CPU{'s' if n > 1 else ''} {cpus},"
            f" {loop} on " + (f"CPU {gen}" if gen is not None else "any CPU (unpinned)")
        )
    return "; ".join(parts)


def parse_workers(text: str) -> list[int]:
    """``1,2``: the worker counts to measure, each at least 1."""
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise ValueError("worker counts must be at least 1")
    return counts


@dataclass
class CpuUse:
    """CPU use in a window, as shares of one core (1.0: one core busy all the window)."""

    workers: list[float]
    generator: float  # this process
    redis: float  # NaN when Redis is not in use or not on this machine
    cores_busy: float  # the workers' cores, any process
    others: float  # processes that are not part of the benchmark, on the workers' cores

    @property
    def total(self) -> float:
        return sum(self.workers)


class CpuMeter:
    """Every known process's CPU time, and the busy time of the workers' cores and all cores.

    Known processes are the workers, this process (the generator) and a local Redis. The
    others' share of the workers' cores is the cores' busy time minus the known processes
    that can only run there. Redis (and the generator, when its CPUs are only partly the
    workers') may run on other cores too, so their time is not taken off in full; instead the
    figure is capped by the busy time of all cores minus every known process, which is
    exactly what unknown processes used anywhere.
    """

    def __init__(
        self,
        worker_pids: Sequence[int],
        cores: set[int],
        generator_cpus: set[int],
        redis_pid: int | None,
    ) -> None:
        self.pids = list(worker_pids)
        self.cores = cores
        self.redis_pid = redis_pid
        redis_cpus = affinity(redis_pid)
        self.generator_inside = generator_cpus <= cores
        self.redis_inside = redis_cpus is not None and redis_cpus <= cores
        self._start = self._read()  # the window starts now

    def _read(self) -> tuple[float, list[float], float, float, float, float]:
        return (
            time.monotonic(),
            [cpu_seconds(pid) for pid in self.pids],
            time.process_time(),
            process_cpu(self.redis_pid),
            cores_busy_seconds(self.cores),
            cores_busy_seconds(None),
        )

    def stop(self) -> CpuUse:
        t0, w0, g0, r0, c0, a0 = self._start
        t1, w1, g1, r1, c1, a1 = self._read()
        window = t1 - t0
        workers = [(b - a) / window for a, b in zip(w0, w1, strict=True)]
        generator = (g1 - g0) / window
        redis = (r1 - r0) / window
        known_redis = 0.0 if math.isnan(redis) else redis
        inside = (
            sum(workers)
            + (generator if self.generator_inside else 0.0)
            + (known_redis if self.redis_inside else 0.0)
        )
        cores_busy = (c1 - c0) / window
        anywhere = (a1 - a0) / window - sum(workers) - generator - known_redis
        return CpuUse(workers, generator, redis, cores_busy, min(cores_busy - inside, anywhere))


_LIVE: set[Server] = set()  # servers started and not yet stopped


class Server:
    """One fresh server process pinned to one CPU (SERVER_CPU unless told)."""

    def __init__(
        self,
        kind: str,
        workdir: Path,
        template_db: Path | None,
        secret: str,
        extra_env: Mapping[str, str] | None = None,
        *,
        cpu: int = SERVER_CPU,
        port: int | None = None,
    ) -> None:
        """Start the server. Callsite gets a fresh copy of ``template_db``.

        With ``template_db`` None, ``extra_env`` must name the database (``DATABASE_URL``).
        ``extra_env`` is applied last, over the benchmark's environment.
        """
        self.kind = kind
        self.cpu = cpu
        self.port = port or free_port()
        self.log_path = workdir / f"{kind}-{self.port}.log"
        env = base_env(secret)
        if kind == "callsite":
            if template_db is not None:
                db = workdir / f"bench-{self.port}.sqlite3"
                shutil.copyfile(template_db, db)
                env["DATABASE_URL"] = f"sqlite:///{db}"
            command = [
                str(Path(sys.executable).with_name("daphne")),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "callsite.asgi:application",
            ]
        else:
            command = [sys.executable, "-m", "bench.bare_server", "--port", str(self.port)]
        env.update(extra_env or {})
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), *command],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C reaches us, not it
        )
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self, within: float = 60.0) -> Snapshot:
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early; see {self.log_path}")
            try:
                return await read_metrics(self.port, limit=5)
            except (TimeoutError, OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Kill the server (its whole process group) and wait for it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()
        _LIVE.discard(self)


def stop_servers() -> None:
    """Kill every server still running (after an error or an interrupt)."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


class Workers:
    """N identical server processes with the same environment, worker i on CPU i % CPUS.

    For Callsite, ``extra_env`` names the one database they share (``DATABASE_URL``) and, with
    more than one, the Redis channel layer that joins them (``REDIS_URL``).
    """

    def __init__(
        self,
        kind: str,
        workdir: Path,
        secret: str,
        count: int,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.servers: list[Server] = []
        ports: list[int] = []
        while len(ports) < count:
            port = free_port()
            if port not in ports:
                ports.append(port)
        try:
            for i, port in enumerate(ports):
                self.servers.append(
                    Server(kind, workdir, None, secret, extra_env, cpu=worker_cpu(i), port=port)
                )
        except BaseException:
            self.stop()
            raise

    @property
    def count(self) -> int:
        return len(self.servers)

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.servers]

    @property
    def cores(self) -> set[int]:
        return {s.cpu for s in self.servers}

    async def ready(self) -> None:
        await asyncio.gather(*(s.ready() for s in self.servers))

    async def metrics(self, limit: float | None = None) -> Snapshot:
        return await read_all_metrics(self.ports, limit)

    def logs(self) -> list[tuple[str, Path]]:
        """(name, log file) of each worker; the name is empty with one worker."""
        if self.count == 1:
            return [("", self.servers[0].log_path)]
        return [(f"worker {i}", s.log_path) for i, s in enumerate(self.servers)]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


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


def base_env(secret: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CALLSITE_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="callsite.settings",
        DJANGO_SECRET_KEY="bench-" + secrets.token_urlsafe(32),
        CALLSITE_ACS_SHARED_SECRET=secret,
        CALLSITE_RECOGNIZER="none",
        CALLSITE_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def migrate(workdir: Path, secret: str) -> Path:
    db = workdir / "template.sqlite3"
    env = base_env(secret)
    env["DATABASE_URL"] = f"sqlite:///{db}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    # Fold the WAL into the file so one copy is a complete database.
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


# --- one point ---------------------------------------------------------------------------------


@dataclass
class Point:
    server: str
    calls: int
    run: int
    workers: int = 1  # server processes the calls were spread over
    layer: str = ""  # Callsite's channel layer: memory | redis (empty for the bare server)
    status: str = "error"  # ok | over | generator-bound | error
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    under_target: float = math.nan
    frames_handled: int = 0  # AudioData frames whose lag the server recorded in the window
    frames_sent: int = 0  # frames the generator sent in the window
    send_rate: float = math.nan  # frames sent / frames due in the window
    send_late_p99_ms: float = math.nan
    generator_cpu: float = math.nan  # share of one core used by this process in the window
    server_cpu: float = math.nan  # share of one core used by the server(s) in the window
    worker_cpu: list[float] = field(default_factory=list)  # each worker's share of one core
    core_busy: float = math.nan  # the workers' cores' busy time (any process) in the window
    others_cpu: float = math.nan  # processes not part of the benchmark on the workers' cores
    redis_cpu: float = math.nan  # a local Redis, when Callsite used it
    primed_s: float = math.nan  # time until the server had done every stream's first frame
    lead_s: float = math.nan  # time the schedule allowed for that
    all_handled: bool = False
    unhandled: int = 0
    rejected: int = 0
    closed: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    error: str = ""
    elapsed_s: float = 0.0

    def line(self) -> str:
        head = f"{self.server:8} C={self.calls:<5} W={self.workers} run {self.run}:"
        if self.error:
            return f"{head} {self.error} -> {self.status}"
        each = (
            " (" + " ".join(f"{c:.0%}" for c in self.worker_cpu) + ")"
            if len(self.worker_cpu) > 1
            else ""
        )
        return (
            f"{head} p50 {self.p50_ms:7.1f} ms"
            f"  p99 {self.p99_ms:7.1f} ms  max<={self.max_ms:7.0f} ms"
            f"  handled {self.frames_handled}/{self.frames_sent}"
            f"  send {self.send_rate:6.1%} late99 {self.send_late_p99_ms:4.0f} ms"
            f"  cpu srv {self.server_cpu:4.0%}{each} other {self.others_cpu:4.0%}"
            f" gen {self.generator_cpu:4.0%}"
            + (f" redis {self.redis_cpu:4.0%}" if not math.isnan(self.redis_cpu) else "")
            + f"  primed {self.primed_s:3.1f}/{self.lead_s:3.1f} s"
            f"  -> {self.status}"
            + (f" ({len(self.closed)} closed)" if self.closed else "")
            + (f" ({self.unhandled} unhandled)" if self.unhandled else "")
            + (f" ({len(self.log_problems)} log problems)" if self.log_problems else "")
        )


def log_problems(logs: Sequence[tuple[str, Path]], limit: int = 20) -> list[str]:
    """Warnings, errors and tracebacks in the servers' logs, prefixed with the worker's name."""
    found: list[str] = []
    for name, path in logs:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        found += [
            f"{name}: {line}" if name else line
            for line in lines
            if any(word in line for word in ("WARNING", "ERROR", "CRITICAL", "Traceback"))
        ]
    return found[:limit]


async def wait_until(
    ports: Sequence[int], frames: int, deadline: float, pause: float = 0.25
) -> tuple[Snapshot, bool]:
    """Poll /metrics until the servers have handled ``frames`` AudioData frames, or time is up."""
    while True:
        snap = await read_all_metrics(ports)
        if snap.value("callsite_ingest_audio_frames_total") >= frames:
            return snap, True
        if time.monotonic() >= deadline:
            return snap, False
        await asyncio.sleep(pause)


def profile_paths(folder: Path, stem: str, workers: int) -> list[Path]:
    """Where each worker's py-spy profile goes: ``stem.txt`` with one worker."""
    folder.mkdir(parents=True, exist_ok=True)
    if workers == 1:
        return [folder / f"{stem}.txt"]
    return [folder / f"{stem}-W{workers}-worker{i}.txt" for i in range(workers)]


async def measure(
    kind: str,
    workers: int,
    calls: int,
    run: int,
    args: argparse.Namespace,
    workdir: Path,
    template: Path | None,
) -> Point:
    layer = args.layer if kind == "callsite" else ""
    point = Point(kind, calls, run, workers, layer)
    started = time.monotonic()
    generator_cpus = pin_generator(generator_cpu(workers))
    token = secrets.token_hex(4)
    prefix = f"callsite-bench-{token}"
    extra: dict[str, str] = {}
    if kind == "callsite":
        assert template is not None
        db = workdir / f"bench-{token}.sqlite3"  # one database for all the workers
        shutil.copyfile(template, db)
        extra["DATABASE_URL"] = f"sqlite:///{db}"
        extra["CALLSITE_WORKERS"] = str(workers)
        if layer == "redis":
            extra["REDIS_URL"] = args.redis_url
            extra["CALLSITE_CHANNEL_PREFIX"] = prefix
    label = f"r{run}-{kind}-{calls}-w{workers}-{secrets.token_hex(3)}"
    gen = Generator([], calls, args.secret, label, args.driver)
    group: Workers | None = None
    driver: asyncio.Task[Any] | None = None
    spies: list[subprocess.Popen[bytes]] = []
    phase = "starting the servers"
    try:
        group = Workers(kind, workdir, args.secret, workers, extra)
        await group.ready()
        ports = gen.ports = group.ports
        phase = "connecting"
        await gen.connect()
        phase = "priming"
        # time for the once-per-stream work (Callsite: three database writes per call)
        lead = max(1.0, calls * (0.015 if kind == "callsite" else 0.002))
        t0 = time.monotonic() + lead
        wall0 = time.time() + lead
        gen.prime(wall0)
        driver = asyncio.create_task(gen.drive(t0))
        _, primed = await wait_until(ports, PRIMING_FRAMES * calls, t0 + 60)
        point.primed_s, point.lead_s = time.monotonic() - (t0 - lead), lead
        if not primed:
            raise RuntimeError("the server did not handle the first frames within a minute")
        phase = "warming up"
        await asyncio.sleep(max(0.0, t0 + args.warmup - time.monotonic()))
        phase = "measuring"
        if args.py_spy is not None:
            stem = f"{kind}-C{calls}-run{run}"
            for pid, out in zip(group.pids, profile_paths(args.py_spy, stem, workers), strict=True):
                spies.append(start_py_spy(pid, args.seconds, out))
        redis = await redis_pid(args.redis_url) if layer == "redis" else None
        # the window
        before = await group.metrics()
        meter = CpuMeter(group.pids, group.cores, generator_cpus, redis)
        w0 = time.monotonic()
        sent0 = gen.stats.sent
        gen.stats.measuring = True
        await asyncio.sleep(args.seconds)
        gen.stats.measuring = False
        sent1 = gen.stats.sent
        w1 = time.monotonic()
        cpu = meter.stop()
        after = await group.metrics()
        # stop sending, let the server drain, then check everything arrived
        phase = "draining"
        gen.stop_at = time.monotonic()
        await driver
        total = gen.stats.sent
        final, point.all_handled = await wait_until(ports, total, time.monotonic() + args.drain)
        point.closed = gen.closed()
        for spy in spies:
            spy.wait(timeout=args.seconds + 30)
    except Exception as error:  # a point that failed is reported, the benchmark goes on
        point.error = f"{phase}: {type(error).__name__}: {error}"
        point.closed = gen.closed()[:5]
        if isinstance(error, TimeoutError) and phase not in ("starting the servers", "connecting"):
            # /metrics queues behind the frames: a server this far behind is over capacity.
            point.status = "over"
            point.error = f"{phase}: /metrics did not answer within {METRICS_LIMIT:.0f} s"
            point.p50_ms = point.p99_ms = point.max_ms = math.inf
        if group is not None:
            point.log_problems = log_problems(group.logs())
        point.elapsed_s = time.monotonic() - started
        return point
    finally:
        gen.stop_at = 0
        if driver is not None and not driver.done():
            driver.cancel()
            with contextlib.suppress(BaseException):
                await driver
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        if group is not None:
            group.stop()
        gen.close()
        if layer == "redis":
            with contextlib.suppress(Exception):
                await redis_cleanup(args.redis_url, prefix)

    window = w1 - w0
    lag = lag_between(before, after)
    point.p50_ms, point.p99_ms = lag.p50 * 1000, lag.p99 * 1000
    point.max_ms, point.under_target = lag.max * 1000, lag.under_target
    point.frames_handled = lag.count
    point.frames_sent = sent1 - sent0
    point.send_rate = point.frames_sent / (calls * window / PERIOD)
    point.send_late_p99_ms = gen.stats.lateness_quantile(0.99) * 1000
    point.generator_cpu = cpu.generator
    point.server_cpu = cpu.total
    point.worker_cpu = cpu.workers
    point.core_busy = cpu.cores_busy
    point.others_cpu = cpu.others
    point.redis_cpu = cpu.redis
    point.unhandled = int(total - final.value("callsite_ingest_audio_frames_total"))
    point.rejected = int(final.value("callsite_ingest_rejected_total"))
    assert group is not None
    point.log_problems = log_problems(group.logs())
    if point.send_rate < MIN_SEND_RATE or point.send_late_p99_ms > MAX_SEND_LATENESS * 1000:
        point.status = "generator-bound"
    elif lag.p99 < LAG_TARGET and point.all_handled and not point.closed and not point.rejected:
        point.status = "ok"
    else:
        point.status = "over"
    point.elapsed_s = time.monotonic() - started
    return point


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Sample the server for the window with py-spy (collapsed stacks in ``out``)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- summary -----------------------------------------------------------------------------------


@dataclass
class Summary:
    server: str
    calls: int
    runs: list[Point]

    @property
    def counted(self) -> list[Point]:
        return [p for p in self.runs if p.status in ("ok", "over")]

    @property
    def p50_ms(self) -> float:
        values = [p.p50_ms for p in self.counted]
        return statistics.median(values) if values else math.nan

    @property
    def p99_ms(self) -> float:
        values = [p.p99_ms for p in self.counted]
        return statistics.median(values) if values else math.nan

    @property
    def passes(self) -> bool:
        counted = self.counted
        return (
            bool(counted)
            and self.p99_ms < LAG_TARGET * 1000
            and all(p.all_handled and not p.closed and not p.rejected for p in counted)
        )


def summarize(points: Sequence[Point]) -> dict[tuple[str, int], dict[int, Summary]]:
    """Points by (server, workers), then by C."""
    table: dict[tuple[str, int], dict[int, Summary]] = {}
    for p in points:
        rows = table.setdefault((p.server, p.workers), {})
        rows.setdefault(p.calls, Summary(p.server, p.calls, [])).runs.append(p)
    return table


def capacity(rows: dict[int, Summary]) -> int | None:
    passing = [c for c, s in rows.items() if s.passes]
    return max(passing) if passing else None


def fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return ">10000"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def run_cell(point: Point) -> str:
    if point.status == "over" and point.error:
        return "no answer"
    return fmt_ms(point.p99_ms) if point.status in ("ok", "over") else point.status


def workers_text(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"


def markdown(points: Sequence[Point], servers: Sequence[str], workers: Sequence[int] = (1,)) -> str:
    """The table of p50/p99 by C, each server's capacity and the ratios between them.

    With the one worker of old, the columns are the servers; otherwise each server has a pair
    of columns per worker count (``callsite W=2``), and the capacity of N workers is compared
    with the smallest worker count's.
    """
    table = summarize(points)
    single = list(workers) == [1]
    columns = [(s, n) for s in servers for n in workers]

    def name(server: str, n: int) -> str:
        return server if single else f"{server} W={n}"

    all_calls = sorted({p.calls for p in points})
    head = "| C |" + "".join(
        f" {name(s, n)} p50 ms | {name(s, n)} p99 ms (runs) |" for s, n in columns
    )
    lines = [head, "|---:|" + "---:|---|" * len(columns)]
    for calls in all_calls:
        cells = [str(calls)]
        for column in columns:
            row = table.get(column, {}).get(calls)
            if row is None:
                cells += ["", ""]
                continue
            runs = "/".join(run_cell(p) for p in row.runs)
            mark = "" if row.passes else " ✗"
            cells += [fmt_ms(row.p50_ms), f"**{fmt_ms(row.p99_ms)}**{mark} ({runs})"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    caps = {column: capacity(table.get(column, {})) for column in columns}
    # A capacity at the largest C measured is a lower bound: the grid stopped there.
    top = {
        column: caps[column] is not None and caps[column] == max(table.get(column, {}))
        for column in columns
    }
    for server, n in columns:
        cap = caps[server, n]
        lines.append(
            f"* capacity of {server}"
            + ("" if single else f" with {workers_text(n)}")
            + ": "
            + (f"{cap} calls" if cap else "none")
            + (" (the largest C measured: it may be higher)" if top[server, n] else "")
        )
    base = workers[0]
    for server in servers:
        for n in workers[1:]:
            low, high = caps[server, base], caps[server, n]
            text = f"* {server}, {workers_text(n)} / {workers_text(base)}: "
            if not low or not high:
                lines.append(
                    text + "- (no capacity for " + workers_text(n if not high else base) + ")"
                )
            elif top[server, n] and top[server, base]:
                lines.append(text + f"- (both capacities at the top of the grid: {high} / {low})")
            else:
                bound = "≥ " if top[server, n] else "≤ " if top[server, base] else ""
                lines.append(text + f"{bound}{high / low:.2f} ({high} / {low} calls)")
    for n in workers:
        ours, bare = caps.get(("callsite", n)), caps.get(("bare", n))
        if ours and bare:
            lines.append(
                "* callsite / bare"
                + ("" if single else f" with {workers_text(n)}")
                + f": {ours / bare:.2f}"
            )
    return "\n".join(lines)


# --- profiles ----------------------------------------------------------------------------------


PACKAGES = (
    ("streaming/", "Callsite (streaming/)"),
    ("channels/", "Channels"),
    ("asgiref/", "asgiref"),
    ("daphne/", "Daphne"),
    ("autobahn/", "Autobahn"),
    ("twisted/", "Twisted"),
    ("django/", "Django"),
    ("websockets/", "websockets"),
    ("json/", "json"),
    ("numpy/", "numpy"),
    ("selectors.py", "epoll (selectors)"),
    ("asyncio/", "asyncio"),
)


def package_of(frame: str) -> str:
    for marker, name in PACKAGES:
        if marker in frame:
            return name
    return "other"


def profile_summary(path: Path, top: int = 25) -> str:
    """Self and inclusive shares of the functions in py-spy's collapsed output (``--threads``).

    Shares are of all samples of all threads; py-spy leaves out idle threads, so a share is
    roughly the share of the process's CPU time.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        thread = frames.pop(0).split(": ", 1)[-1] if frames[0].startswith("thread (") else ""
        if not frames:
            continue
        if thread:
            threads[thread] += count
        total += count
        own[frames[-1]] += count
        packages[package_of(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return f"{path}: no samples"

    def share(n: int) -> str:
        return f"{100 * n / total:6.1f}"

    out = [f"{path}: {total} samples"]
    if threads:
        out += ["", "   %    thread"] + [f"{share(n)}  {name}" for name, n in threads.most_common()]
    out += ["", "self %  package (where the sampled frame's code lives)"]
    out += [f"{share(n)}  {name}" for name, n in packages.most_common()]
    out += ["", "self %  function"]
    out += [f"{share(n)}  {name}" for name, n in own.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{share(n)}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------------


def parse_grid(text: str) -> list[int]:
    """``100,200,300`` or ``200:600:100`` (inclusive), or a mix: ``100,200:400:100``."""
    calls: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            start, stop, step = (int(x) for x in part.split(":"))
            calls.update(range(start, stop + 1, step))
        else:
            calls.add(int(part))
    return sorted(calls)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def bench(args: argparse.Namespace) -> list[Point]:
    servers: list[str] = args.servers
    grids = {
        "callsite": parse_grid(args.callsite_calls or args.calls),
        "bare": parse_grid(args.bare_calls or args.calls),
    }
    points: list[Point] = []
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        template = migrate(workdir, args.secret) if "callsite" in servers else None
        for run in range(1, args.runs + 1):
            for calls in sorted({c for s in servers for c in grids[s]}):
                for kind in servers:
                    if calls not in grids[kind]:
                        continue
                    # each worker count in turn, so that noise falls on all of them alike
                    for workers in args.workers:
                        point = await measure(kind, workers, calls, run, args, workdir, template)
                        points.append(point)
                        print(point.line(), flush=True)
                        for problem in point.log_problems[:3]:
                            print(f"    server log: {problem[:200]}", flush=True)
                        if args.json is not None:
                            write_json(args.json, points, args)
                        await asyncio.sleep(args.pause)
    return points


def write_json(path: Path, points: Sequence[Point], args: argparse.Namespace) -> None:
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "code": args.code_version,
        "cpus": os.cpu_count(),
        "loop": args.loop_name,
        "settings": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "runs": args.runs,
            "driver": args.driver,
            "workers": args.workers,
            "layer": args.layer,
            "redis_url": args.redis_url if args.layer == "redis" else None,
            "placement": placement(args.workers, "generator"),
        },
        "points": [asdict(p) for p in points],
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: unwind, so that every server is stopped and Redis cleaned up."""
    raise KeyboardInterrupt


def redis_problem(runner: Callable[[Coroutine[Any, Any, int | None]], int | None], url: str) -> str:
    """Why Redis at ``url`` cannot be used, or an empty string when it answers."""
    try:
        runner(redis_pid(url))
    except Exception as error:
        return f"Redis at {url} does not answer: {error}"
    return ""


def code_version() -> str:
    """The commit, and a digest of the Python files under test when the tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    try:
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "streaming", "callsite", "dashboard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        changes = "unknown"
    if commit and not changes:
        return commit
    digest = hashlib.sha256()
    patterns = ("streaming/**/*.py", "callsite/*.py", "dashboard/**/*.py")
    for path in sorted(path for pattern in patterns for path in ROOT.glob(pattern)):
        digest.update(path.read_bytes())
    return f"{commit or 'unknown'} + tree {digest.hexdigest()[:12]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", default="100,200,300,400,500,600", help="grid of C")
    parser.add_argument("--callsite-calls", help="grid for Callsite only (default --calls)")
    parser.add_argument("--bare-calls", help="grid for the bare server only (default --calls)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the window")
    parser.add_argument("--drain", type=float, default=10.0, help="max wait for stragglers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", default="callsite,bare")
    parser.add_argument(
        "--workers",
        default="1",
        help="server processes per point, or a list (1,2) to measure each in turn (default 1)",
    )
    parser.add_argument(
        "--layer",
        choices=["auto", "memory", "redis"],
        default="auto",
        help="Callsite's channel layer; auto: Redis when any --workers value is above 1 (for"
        " every worker count, so they compare fairly), else in-memory",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the layer")
    parser.add_argument("--driver", choices=["batched", "tasks"], default="batched")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between points")
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument("--py-spy", type=Path, help="record py-spy profiles into this folder")
    parser.add_argument("--workdir", type=Path, help="keep databases and server logs here")
    parser.add_argument("--summarize", type=Path, nargs="+", help="summarise py-spy profiles")
    args = parser.parse_args(argv)
    if args.summarize:
        for path in args.summarize:
            print(profile_summary(path))
        return 0
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - {"callsite", "bare"}
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    try:
        args.workers = parse_workers(args.workers)
    except ValueError as error:
        parser.error(f"--workers: {error}")
    if args.layer == "auto":
        args.layer = "redis" if max(args.workers) > 1 else "memory"
    if args.layer == "memory" and max(args.workers) > 1 and "callsite" in args.servers:
        parser.error(
            "--layer memory cannot join more than one worker: the in-memory channel layer"
            " lives inside one process; use --layer redis"
        )
    args.secret = secrets.token_urlsafe(16)
    args.code_version = code_version()
    signal.signal(signal.SIGTERM, interrupt)
    raise_fd_limit()
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        uvloop = None
    args.loop_name = "uvloop" if uvloop is not None else "asyncio"
    runner = uvloop.run if uvloop is not None else asyncio.run
    if args.layer == "redis" and "callsite" in args.servers:
        problem = redis_problem(runner, args.redis_url)
        if problem:
            parser.error(problem)
    started = time.monotonic()
    layer = (
        f"Redis channel layer at {args.redis_url}"
        if args.layer == "redis"
        else "in-memory channel layer"
    )
    print(
        f"# ingest capacity, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, code {args.code_version},"
        f" {os.cpu_count()} CPUs, "
        + placement(args.workers, f"generator ({args.loop_name}, {args.driver})")
        + (f"; callsite on the {layer}" if "callsite" in args.servers else ""),
        flush=True,
    )
    try:
        points = runner(bench(args))
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        return 130
    finally:
        stop_servers()
    print()
    print(markdown(points, args.servers, args.workers))
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
