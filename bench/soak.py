"""Soak: Callsite in production shape for a long run, with calls and pages coming and going.

Callsite runs as ``manage.py serve --workers N`` (Daphne workers on consecutive ports) on a
scratch PostgreSQL database of its own (``callsite_soak_<pid>``, created and migrated here and
dropped at the end unless ``--keep``) and Redis with a channel prefix of its own (its keys are
deleted at the end). The worker processes are found as the children of the ``serve`` process.
This process then plays, over real sockets, for ``--minutes``:

* calls that start and end all the time: ``--calls`` slots (20), each playing one call after
  another, every call lasting a random ``--call-seconds`` (60-240 s). Call slot i's ACS socket
  goes to worker i % N. Each call carries ACS transcription on its socket (TranscriptionMetadata,
  then turns of nine Intermediates 300 ms apart and a Final, with a pause of 0.3-2 s between
  turns; each Final's text is unique); a share of the calls (``--audio-share``, 0.25) also
  streams AudioMetadata and two unmixed participants' AudioData at real time. A call ends
  after its last whole turn with a WebSocket close, as ACS ends a stream;
* ``--supervisors`` (5), each with the call wall open all the time and ``--pages`` (4) call
  pages, each on a call its wall shows as live, kept for a random ``--dwell`` (20-180 s) or
  until the call has ended and ``--grace`` (10 s) have passed, then replaced by another
  (session cookie and an allowed Origin, as in ``bench.latency``). Page slot k of supervisor j
  is on worker (j * pages + k) % N and the wall on worker j % N, so each worker holds the same
  number of sockets all along.

Every ``--interval`` (15 s) it samples each worker's RSS (``VmRSS``), open file descriptors,
threads, CPU and its sockets to PostgreSQL and Redis; the connections to the scratch database
(``pg_stat_activity``); Redis clients that are the workers' sockets (``CLIENT LIST``) and all
of the server's (``INFO clients``, other users included); live calls, ACS sockets open on the
servers, supervisor sockets, finals sent and stored, frame lag and the load's send lateness.
One line is printed per sample.

At the end the calls stop after their current turn, the pages close once their calls have
ended, and when every stream is closed and stored the check runs: every Final sent must be
stored exactly once (per call, sent texts against ``Utterance`` rows: *lost* = sent and not
stored, *doubled* = stored more than once), and, for information, call pages that stayed open
until their call ended must have received each of the call's finals (snapshot or
``caption.final``).

Verdict: the growth of each measure from the warm-up baseline to the end must stay within
``--limit`` (10%): each worker's RSS and open fds, PostgreSQL connections to the database and
the workers' Redis clients. *Baseline* is the mean of the first 3 samples taken at or after the
warm-up (``--warmup`` minutes, default the smaller of 5 and a sixth of the run), *end* the mean
of the last 3 samples before the load stops, growth = end / baseline - 1. Finals lost and
doubled must be 0, and no worker may have exited (a restarted worker's memory starts afresh).
The exit status is 0 when the verdict passes, 1 when it fails and 2 when the run could not
be judged::

    python -m bench.soak --minutes 30 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.ingest import (
    AUDIO_METADATA,
    PERIOD,
    ROOT,
    SendStats,
    Snapshot,
    Stamp,
    base_env,
    client_frame,
    code_version,
    cores_busy_seconds,
    fmt_ms,
    free_port,
    interrupt,
    lag_between,
    log_problems,
    merge_snapshots,
    process_cpu,
    raise_fd_limit,
    read_metrics,
)
from bench.latency import (
    CONNECT_LIMIT,
    INTERIM_EVERY,
    TURN_EVENTS,
    CallSocket,
    Database,
    PageSocket,
    open_page,
    transcription_data,
    transcription_metadata,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BASELINE_SAMPLES = 3  # samples averaged for the baseline and for the end
CLOSE_LIMIT = 10.0  # seconds a closing socket may take before it is aborted
STOP_LIMIT = 60.0  # seconds `serve` may take to stop its workers before it is killed
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes and sockets, from /proc ---------------------------------------------------------


def children(pid: int) -> list[int]:
    """The child processes of ``pid``: from /proc/<pid>/task/*/children, else a /proc scan."""
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.update(int(x) for x in text.split())
        return sorted(found)
    except (OSError, ValueError):
        found.clear()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(entry))
    return sorted(found)


def start_ticks(pid: int) -> int:
    """When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def proc_status(pid: int) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        values[key] = value.strip()
    return values


def kib(value: str) -> int:
    """``12345 kB`` -> 12345."""
    return int(value.split()[0]) if value else 0


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str  # hex state of /proc/net/tcp: 01 established, 0A listening


def tcp_sockets() -> dict[int, TcpSocket]:
    """Every TCP socket of this network namespace by inode (IPv4 and IPv6)."""
    table: dict[int, TcpSocket] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
            table[inode] = TcpSocket(
                int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state
            )
    return table


def process_sockets(pid: int, table: dict[int, TcpSocket]) -> tuple[int, list[TcpSocket]]:
    """Open fds of ``pid``, and those of them that are TCP sockets (listening ones too)."""
    names = os.listdir(f"/proc/{pid}/fd")
    found: list[TcpSocket] = []
    for name in names:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link.startswith("socket:["):
            sock = table.get(int(link[8:-1]))
            if sock is not None:
                found.append(sock)
    return len(names), found


def consecutive_ports(count: int) -> int:
    """A first port such that it and the next ``count - 1`` are free on 127.0.0.1."""
    for _ in range(100):
        first = free_port()
        if first + count > 65535:
            continue
        probes: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first
    raise RuntimeError(f"found no {count} consecutive free ports")


# --- Callsite as `manage.py serve` -------------------------------------------------------------


class Serve:
    """``manage.py serve --workers N`` in a process group of its own, output to ``log_path``."""

    def __init__(self, workers: int, env: dict[str, str], log_path: Path) -> None:
        self.workers = workers
        first = consecutive_ports(workers)
        self.ports = [first + i for i in range(workers)]
        self.log_path = log_path
        self.started = time.monotonic()
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "serve",
                    "--workers",
                    str(workers),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(first),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches this process, not the servers
            )
        self.stop_seconds = math.nan
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The workers: children of the serve process, oldest first."""
        return sorted(children(self.pid), key=lambda pid: (start_ticks(pid), pid))

    async def ready(self, within: float = 120.0) -> list[int]:
        """Wait until every worker answers ``/metrics``; the workers' pids."""
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"manage.py serve exited with code {self.process.returncode}; see"
                    f" {self.log_path}"
                )
            try:
                await asyncio.gather(*(read_metrics(p, limit=5) for p in self.ports))
                pids = self.worker_pids()
                if len(pids) == self.workers:
                    return pids
            except (TimeoutError, OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not answer within {within:.0f} s")
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM (serve stops its workers, which drain); killed after STOP_LIMIT."""
        if self.process.poll() is not None:
            self.exit_code = self.process.returncode
            return
        began = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.exit_code = None
        self.stop_seconds = time.monotonic() - began
        # a worker left behind (serve killed) goes with the process group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


class SoakDatabase(Database):
    """The scratch PostgreSQL database: ``callsite_soak_<pid>`` on the server of ``server_url``."""

    def __init__(self, server_url: str) -> None:
        super().__init__(Path(), "soak", server_url)
        parts = urlsplit(server_url)
        self.name = f"callsite_soak_{os.getpid()}"
        self.url = parts._replace(path="/" + self.name).geturl()
        self.created = False

    def prepare(self, secret: str, extra_env: dict[str, str]) -> str:
        self.created = True
        return super().prepare(secret, extra_env)


# --- calls -------------------------------------------------------------------------------------


class SoakCallSocket(CallSocket):
    """A call's ACS socket that knows when it is gone and can close itself cleanly."""

    def __init__(self, index: int, host: str, port: int, token: str, call_id: str) -> None:
        super().__init__(index, host, port, token, call_id)
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ending = False  # the call is over: no more frames

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.gone.done():
            self.gone.set_result(None)

    @property
    def writable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    async def close_cleanly(self) -> None:
        """A WebSocket close (1000), as ACS ends a stream; aborted after CLOSE_LIMIT."""
        if self.writable:
            assert self.transport is not None
            self.transport.write(client_frame(struct.pack("!H", 1000), 0x8))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.gone), CLOSE_LIMIT)
        if self.transport is not None and not self.gone.done():
            self.transport.abort()


@dataclass
class CallRecord:
    """One played call: what was sent, and how it went."""

    seq: int
    slot: int
    worker: int
    connection_id: str
    audio: bool
    planned_s: float
    started_s: float = math.nan  # seconds since the load began, when the socket opened
    ended_s: float = math.nan  # when the socket was closed
    finals: list[str] = field(default_factory=list)  # texts of the Finals sent, in order
    interims: int = 0
    audio_frames: int = 0
    closed_by_server: str = ""  # the server closed the socket before the call was over
    error: str = ""
    stored: int = 0  # filled by the check
    lost: int = 0
    doubled: int = 0

    def tags(self) -> set[str]:
        return {text.split(" ", 1)[0] for text in self.finals}


class Calls:
    """``slots`` call slots, each playing calls one after another until told to stop."""

    def __init__(self, args: argparse.Namespace, ports: Sequence[int], label: str) -> None:
        self.args = args
        self.ports = ports
        self.label = label
        self.rng = random.Random(args.seed)
        self.records: list[CallRecord] = []
        self.by_connection: dict[str, CallRecord] = {}
        self.live: set[int] = set()  # seq of calls whose socket is open
        self.ended_at: dict[int, float] = {}  # seq -> monotonic time the socket was closed
        self.stopping = False
        self.t0 = time.monotonic()
        self.stamp = Stamp()
        self.audio_late = SendStats(measuring=True)  # this sample interval
        self.caption_late = SendStats(measuring=True)
        self.audio_late_all = SendStats(measuring=True)  # the whole run
        self.caption_late_all = SendStats(measuring=True)
        self.open_failures: Counter[str] = Counter()
        self.sockets: set[SoakCallSocket] = set()

    @property
    def finals_sent(self) -> int:
        return sum(len(r.finals) for r in self.records)

    def take_lateness(self) -> tuple[float, float]:
        """p99 send lateness (ms) of audio frames and transcription packets since last asked."""
        audio, captions = self.audio_late, self.caption_late
        self.audio_late, self.caption_late = SendStats(measuring=True), SendStats(measuring=True)
        return audio.lateness_quantile(0.99) * 1000, captions.lateness_quantile(0.99) * 1000

    def _late(self, audio: bool, seconds: float) -> None:
        ms = int(max(0.0, seconds) * 1000)
        for stats in (
            (self.audio_late, self.audio_late_all)
            if audio
            else (self.caption_late, self.caption_late_all)
        ):
            stats.late_ms[ms] += 1

    async def run_slot(self, slot: int) -> None:
        # the first calls start spread over a few seconds, then each slot runs on its own
        await asyncio.sleep(slot * 0.3)
        while not self.stopping:
            failed = await self.play(slot)
            await asyncio.sleep(5.0 if failed else self.rng.uniform(0.2, 1.0))

    async def play(self, slot: int) -> bool:
        """One call on slot ``slot``; True when its socket did not open."""
        args = self.args
        seq = len(self.records)
        worker = slot % len(self.ports)
        port = self.ports[worker]
        record = CallRecord(
            seq,
            slot,
            worker,
            f"{self.label}-{seq:05d}",
            self.rng.random() < args.audio_share,
            self.rng.uniform(*args.call_seconds),
        )
        self.records.append(record)
        self.by_connection[record.connection_id] = record
        loop = asyncio.get_running_loop()
        sock = SoakCallSocket(seq, "127.0.0.1", port, args.secret, record.connection_id)
        self.sockets.add(sock)
        try:
            await loop.create_connection(lambda: sock, "127.0.0.1", port)
            await asyncio.wait_for(sock.opened, CONNECT_LIMIT)
        except Exception as error:
            reason = (
                f"no handshake within {CONNECT_LIMIT:.0f} s"
                if isinstance(error, TimeoutError)
                else f"{type(error).__name__}: {error}"
            )
            record.error = reason
            self.open_failures[reason] += 1
            if sock.transport is not None:
                sock.transport.abort()
            self.sockets.discard(sock)
            return True
        t0 = time.monotonic()
        record.started_s = t0 - self.t0
        self.live.add(seq)
        audio: asyncio.Task[None] | None = None
        try:
            if record.audio:
                sock.send_text(AUDIO_METADATA)
            sock.send_text(transcription_metadata(record.connection_id))
            if record.audio:
                audio = asyncio.create_task(self.send_audio(sock, record, t0))
            await self.transcribe(sock, record, t0)
        finally:
            sock.ending = True
            if audio is not None:
                await audio
            record.closed_by_server = sock.closed_by_server or ""
            await sock.close_cleanly()
            self.live.discard(seq)
            self.ended_at[seq] = time.monotonic()
            record.ended_s = self.ended_at[seq] - self.t0
            self.sockets.discard(sock)
        return False

    async def transcribe(self, sock: SoakCallSocket, record: CallRecord, t0: float) -> None:
        """Turns of nine Intermediates and a Final, speakers taking turns, until the call's
        planned length (only whole turns) or the stop."""
        turn_length = TURN_EVENTS * INTERIM_EVERY
        start = self.rng.uniform(0.5, 2.0)  # call time of the turn's start, in seconds
        turn = 0
        while not self.stopping and start + turn_length <= record.planned_s:
            speaker = turn & 1
            sock.speaker = speaker
            tag = f"{record.connection_id}.{turn}"  # the caption's first word
            for step in range(TURN_EVENTS):
                due = t0 + start + (step + 1) * INTERIM_EVERY
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not sock.writable:
                    return  # closed by the server: the call is over
                payload = transcription_data(sock.raw_ids[speaker], tag, step, start)
                assert sock.transport is not None
                self._late(False, time.monotonic() - due)
                sock.transport.write(client_frame(payload.encode()))
                if step == TURN_EVENTS - 1:
                    record.finals.append(json.loads(payload)["transcriptionData"]["text"])
                else:
                    record.interims += 1
            turn += 1
            start += turn_length + self.rng.uniform(0.3, 2.0)

    async def send_audio(self, sock: SoakCallSocket, record: CallRecord, t0: float) -> None:
        """Both participants' 20 ms frames at real time until the call ends."""
        n = 0
        while True:
            due = t0 + n * PERIOD
            delay = due - time.monotonic()
            await asyncio.sleep(max(delay, 0.0))  # behind schedule: catch up, yielding
            if sock.ending or not sock.writable:
                return
            stamp = self.stamp.at(time.time())
            sock.send_frame(0, stamp)
            sock.send_frame(1, stamp)
            self._late(True, time.monotonic() - due)
            record.audio_frames += 2
            n += 1

    def abort(self) -> None:
        for sock in list(self.sockets):
            if sock.transport is not None:
                sock.transport.abort()


# --- supervisors -------------------------------------------------------------------------------


class SoakPage(PageSocket):
    """A supervisor's socket that knows when it is gone; a call page also keeps the finals
    it received, from its snapshot and as ``caption.final``."""

    def __init__(self, path: str, port: int, cookie: str, **kwargs: Any) -> None:
        super().__init__(path, port, cookie, **kwargs)
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.snapshot_tags: set[str] = set()
        self.final_tags: Counter[str] = Counter()
        self.opened_at = math.nan

    def message(self, raw: bytes, now: float) -> None:
        super().message(raw, now)
        self.receipts.clear()  # latencies are not measured here
        if self.call is None:
            return
        try:
            content = json.loads(raw)
        except ValueError:
            return
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "snapshot" and isinstance(content.get("captions"), list):
            for caption in content["captions"]:
                if isinstance(caption, dict) and isinstance(caption.get("text"), str):
                    self.snapshot_tags.add(caption["text"].split(" ", 1)[0])
        elif kind == "caption.final" and isinstance(content.get("caption"), dict):
            text = content["caption"].get("text")
            if isinstance(text, str):
                self.final_tags[text.split(" ", 1)[0]] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.gone.done():
            self.gone.set_result(None)

    @property
    def live(self) -> bool:
        return self.handshaken and not self.gone.done()


@dataclass
class PageRecord:
    """One call page as it closed."""

    supervisor: int
    call_seq: int
    worker: int
    opened_s: float
    closed_s: float
    whole_call: bool  # open before the call ended and until it had ended + grace
    why: str  # dwell | call ended | closed by server | stop
    expected: int = 0  # the call's finals (whole_call pages)
    received: int = 0  # distinct finals of the call received (snapshot or caption.final)
    missing: int = 0
    duplicates: int = 0  # a final received twice (as caption.final, or also in the snapshot)
    misrouted: int = 0  # a final of another call
    interims: int = 0


class Supervisors:
    """S supervisors, each with the wall and K call-page slots on live calls."""

    def __init__(
        self, args: argparse.Namespace, ports: Sequence[int], cookie: str, calls: Calls
    ) -> None:
        self.args = args
        self.ports = ports
        self.cookie = cookie
        self.calls = calls
        self.rng = random.Random(args.seed + 1)
        self.walls: list[SoakPage | None] = [None] * args.supervisors
        self.views: list[dict[int, tuple[str, str]]] = [{} for _ in range(args.supervisors)]
        self.pages: set[SoakPage] = set()  # call pages open or opening
        self.watching: list[set[int]] = [set() for _ in range(args.supervisors)]  # call seqs
        self.records: list[PageRecord] = []
        self.stopping = False  # no new pages; open ones close once their calls have ended
        self.closing = False  # the walls close
        self.closed = asyncio.Event()  # set with closing
        self.open_failures: Counter[str] = Counter()
        self.walls_reopened = 0
        self.walls_closed_by_server: Counter[str] = Counter()

    def sockets_open(self) -> tuple[int, int]:
        """(walls, call pages) open now."""
        walls = sum(1 for w in self.walls if w is not None and w.live)
        return walls, sum(1 for p in self.pages if p.live)

    async def run(self, j: int) -> None:
        slots = [asyncio.create_task(self.page_slot(j, k)) for k in range(self.args.pages)]
        try:
            await self.keep_wall(j)
        finally:
            for slot in slots:
                if not slot.done():
                    slot.cancel()
            await asyncio.gather(*slots, return_exceptions=True)

    async def keep_wall(self, j: int) -> None:
        """The wall, open from the start to the end (opened again if the server closes it)."""
        view = self.views[j]

        def on_call(call: dict[str, Any]) -> None:
            if isinstance(call.get("connection_id"), str) and isinstance(call.get("id"), int):
                view[call["id"]] = (call["connection_id"], str(call.get("state")))

        port = self.ports[j % len(self.ports)]
        while not self.closing:
            wall = SoakPage("/ws/dashboard/", port, self.cookie, on_call=on_call)
            self.walls[j] = wall
            try:
                await open_page(wall)
            except Exception as error:
                self.open_failures[f"wall: {type(error).__name__}: {error}"] += 1
                wall.close()
                await asyncio.sleep(5.0)
                continue
            closing: asyncio.Future[Any] = asyncio.ensure_future(self.closed.wait())
            gone: asyncio.Future[Any] = wall.gone
            await asyncio.wait({gone, closing}, return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            if wall.gone.done() and not self.closing:
                self.walls_closed_by_server[wall.closed_by_server or "?"] += 1
                self.walls_reopened += 1
            wall.close()

    async def page_slot(self, j: int, k: int) -> None:
        args, calls = self.args, self.calls
        worker = (j * args.pages + k) % len(self.ports)
        port = self.ports[worker]
        await asyncio.sleep(2.0 + k * 1.5)  # the wall fills first
        while not self.stopping:
            watching = self.watching[j]
            candidates = [
                (call_id, calls.by_connection[connection])
                for call_id, (connection, state) in self.views[j].items()
                if state != "ended"
                and connection in calls.by_connection
                and calls.by_connection[connection].seq not in watching
                and calls.by_connection[connection].seq in calls.live
            ]
            if not candidates:
                await asyncio.sleep(1.0)
                continue
            call_id, record = self.rng.choice(candidates)
            page = SoakPage(f"/ws/dashboard/calls/{call_id}/", port, self.cookie, call=record.seq)
            watching.add(record.seq)
            self.pages.add(page)
            try:
                await open_page(page)
            except Exception as error:
                self.open_failures[f"call page: {type(error).__name__}: {error}"] += 1
                page.close()
                self.pages.discard(page)
                watching.discard(record.seq)
                await asyncio.sleep(2.0)
                continue
            page.opened_at = time.monotonic()
            dwell = self.rng.uniform(*args.dwell)
            why = await self.watch(page, record, dwell)
            page.close()
            self.pages.discard(page)
            watching.discard(record.seq)
            self.records.append(self.tally(j, worker, page, record, why))
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))

    async def watch(self, page: SoakPage, record: CallRecord, dwell: float) -> str:
        """Keep the page until its dwell is over, its call ended + grace, or the server closes
        it; once the run stops, until its call has ended + grace."""
        ended = self.calls.ended_at
        while True:
            now = time.monotonic()
            if record.seq in ended and now >= ended[record.seq] + self.args.grace:
                return "call ended"
            if page.gone.done():
                return "closed by server"
            if now >= page.opened_at + dwell and not self.stopping:
                return "dwell"
            await asyncio.sleep(0.5)

    def tally(
        self, j: int, worker: int, page: SoakPage, record: CallRecord, why: str
    ) -> PageRecord:
        t0 = self.calls.t0
        ended = self.calls.ended_at.get(record.seq)
        whole = why == "call ended" and ended is not None and page.opened_at < ended
        own = f"{record.connection_id}."
        result = PageRecord(
            j,
            record.seq,
            worker,
            page.opened_at - t0,
            time.monotonic() - t0,
            whole,
            why if why != "closed by server" else f"closed by server: {page.closed_by_server}",
        )
        received = page.snapshot_tags | set(page.final_tags)
        result.misrouted = sum(1 for tag in received if not tag.startswith(own))
        result.duplicates = sum(n - 1 for n in page.final_tags.values()) + len(
            page.snapshot_tags & set(page.final_tags)
        )
        result.interims = page.events.get("caption.interim", 0)
        if whole:
            expected = record.tags()
            result.expected = len(expected)
            result.received = len(received & expected)
            result.missing = len(expected - received)
        return result

    def close(self) -> None:
        for page in list(self.pages):
            page.close()
        for wall in self.walls:
            if wall is not None:
                wall.close()


# --- sampling ----------------------------------------------------------------------------------


@dataclass
class WorkerSample:
    pid: int
    port: int  # the port it listens on (0: not found)
    rss_kib: int
    fds: int
    threads: int
    cpu: float  # share of one core since the previous sample
    pg_sockets: int  # its TCP connections to PostgreSQL's port
    redis_sockets: int  # its TCP connections to Redis's port


@dataclass
class Sample:
    t: float  # seconds since the load began
    at: str  # UTC time
    phase: str  # idle-before | warm-up | load | drain | idle-after
    workers: list[WorkerSample]
    pg_connections: int  # pg_stat_activity rows for the scratch database (this one's left out)
    pg_states: dict[str, int]
    redis_clients: int  # CLIENT LIST entries that are the workers' sockets
    redis_clients_server: int  # INFO connected_clients: the whole Redis server, others too
    calls_live: int  # this process's ACS sockets open
    calls_started: int
    server_acs_sockets: int  # the workers' callsite_ingest_sockets, added up
    walls: int
    call_pages: int
    finals_sent: int
    finals_stored: int
    frame_lag_p99_ms: float  # since the previous sample, all workers (audio calls only)
    audio_late_p99_ms: float  # this process's send lateness since the previous sample
    caption_late_p99_ms: float
    load_cpu: float  # this process, share of one core
    machine_busy: float  # all cores, share of one core
    others_cpu: float  # machine_busy - workers - this process (Redis, PostgreSQL, others)
    loadavg: float
    worker_restarts: int

    @property
    def supervisor_sockets(self) -> int:
        return self.walls + self.call_pages


class Monitor:
    """Reads the workers, PostgreSQL and Redis; keeps every sample."""

    def __init__(
        self, serve: Serve, db: SoakDatabase, redis_url: str, pids: list[int], t0: float
    ) -> None:
        self.serve = serve
        self.db = db
        self.redis_url = redis_url
        self.redis_port = urlsplit(redis_url).port or 6379
        self.pg_port = urlsplit(db.url).port or 5432
        self.first_pids = list(pids)
        self.seen_pids = set(pids)
        self.restarts = 0
        self.t0 = t0
        self.samples: list[Sample] = []
        self.last_metrics: Snapshot | None = None
        self.conn: Any = None
        self._cpu: tuple[float, dict[int, float], float, float] | None = None
        self.server_counters: dict[str, float] = {}
        self.loadavg = math.nan

    def _pg(self) -> Any:
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.db.url, autocommit=True)
        return self.conn

    def _read_local(self) -> tuple[list[int], list[WorkerSample], int, dict[str, int], int]:
        """Workers from /proc and PostgreSQL's view (blocking: runs on a thread)."""
        pids = self.serve.worker_pids()
        new = set(pids) - self.seen_pids
        if new:
            self.restarts += len(new)
            self.seen_pids |= new
        table = tcp_sockets()
        now = time.monotonic()
        cpu_now = {pid: process_cpu(pid) for pid in pids}
        previous = self._cpu
        workers: list[WorkerSample] = []
        redis_local_ports: list[int] = []
        for pid in pids:
            try:
                status = proc_status(pid)
                fds, socks = process_sockets(pid, table)
            except OSError:
                continue  # exited between the listing and the read
            port = next(
                (
                    s.local_port
                    for s in socks
                    if s.state == "0A" and s.local_port in self.serve.ports
                ),
                0,
            )
            redis = [s for s in socks if s.remote_port == self.redis_port and s.state != "0A"]
            redis_local_ports += [s.local_port for s in redis]
            cpu = math.nan
            if previous is not None and pid in previous[1]:
                cpu = (cpu_now[pid] - previous[1][pid]) / max(now - previous[0], 1e-9)
            workers.append(
                WorkerSample(
                    pid,
                    port,
                    kib(status.get("VmRSS", "")),
                    fds,
                    int(status.get("Threads", "0") or 0),
                    cpu,
                    sum(1 for s in socks if s.remote_port == self.pg_port and s.state != "0A"),
                    len(redis),
                )
            )
        workers.sort(key=lambda w: (w.port or 65536, w.pid))
        try:
            self.loadavg = float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError):
            self.loadavg = math.nan
        self._cpu = (now, cpu_now, time.process_time(), cores_busy_seconds(None))
        conn = self._pg()
        rows = conn.execute(
            "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
        ).fetchall()
        states = {str(state): int(n) for state, n in rows}
        stored = int(conn.execute("SELECT count(*) FROM streaming_utterance").fetchone()[0])
        return redis_local_ports, workers, sum(states.values()), states, stored

    async def _redis(self, worker_ports: list[int]) -> tuple[int, int]:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.redis_url)
        try:
            clients = await client.client_list()
            info = await client.info("clients")
        finally:
            await client.aclose()
        wanted = set(worker_ports)
        ours = 0
        for entry in clients:
            addr = str(entry.get("addr", ""))
            port = addr.rsplit(":", 1)[-1]
            if port.isdigit() and int(port) in wanted:
                ours += 1
        return ours, int(info.get("connected_clients", 0))

    async def _metrics(self) -> tuple[Snapshot | None, list[Snapshot]]:
        results = await asyncio.gather(
            *(read_metrics(p, limit=10) for p in self.serve.ports), return_exceptions=True
        )
        snaps = [r for r in results if isinstance(r, Snapshot)]
        return (merge_snapshots(snaps) if len(snaps) == len(results) else None), snaps

    async def sample(
        self, phase: str, calls: Calls | None, supervisors: Supervisors | None
    ) -> Sample:
        previous_cpu = self._cpu
        redis_ports, workers, pg_total, pg_states, stored = await asyncio.to_thread(
            self._read_local
        )
        ours, server_clients = await self._redis(redis_ports)
        merged, snaps = await self._metrics()
        lag = math.nan
        if merged is not None:
            if self.last_metrics is not None:
                between = lag_between(self.last_metrics, merged)
                lag = between.p99 * 1000 if between.count else math.nan
            self.last_metrics = merged
            for name in (
                "callsite_ingest_finals_lost_total",
                "callsite_ingest_internal_errors_total",
                "callsite_ingest_rejected_total",
                "callsite_ingest_db_retries_total",
                "callsite_ingest_sockets_total",
            ):
                self.server_counters[name] = merged.value(name)
        acs = int(sum(s.value("callsite_ingest_sockets") for s in snaps))
        load_cpu = busy = others = math.nan
        if previous_cpu is not None and self._cpu is not None:
            window = max(self._cpu[0] - previous_cpu[0], 1e-9)
            load_cpu = (self._cpu[2] - previous_cpu[2]) / window
            busy = (self._cpu[3] - previous_cpu[3]) / window
            worker_cpu = sum(w.cpu for w in workers if not math.isnan(w.cpu))
            others = busy - worker_cpu - load_cpu
        audio_late, caption_late = calls.take_lateness() if calls else (math.nan, math.nan)
        walls, pages = supervisors.sockets_open() if supervisors else (0, 0)
        sample = Sample(
            t=time.monotonic() - self.t0,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            phase=phase,
            workers=workers,
            pg_connections=pg_total,
            pg_states=pg_states,
            redis_clients=ours,
            redis_clients_server=server_clients,
            calls_live=len(calls.live) if calls else 0,
            calls_started=len(calls.records) if calls else 0,
            server_acs_sockets=acs,
            walls=walls,
            call_pages=pages,
            finals_sent=calls.finals_sent if calls else 0,
            finals_stored=stored,
            frame_lag_p99_ms=lag,
            audio_late_p99_ms=audio_late,
            caption_late_p99_ms=caption_late,
            load_cpu=load_cpu,
            machine_busy=busy,
            others_cpu=others,
            loadavg=self.loadavg,
            worker_restarts=self.restarts,
        )
        self.samples.append(sample)
        return sample

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()


def sample_line(s: Sample) -> str:
    each = " ".join(
        f"w{i + 1}[rss {w.rss_kib / 1024:.1f}M fd {w.fds} thr {w.threads}"
        f" cpu {w.cpu:.0%} pg {w.pg_sockets} rd {w.redis_sockets}]"
        if not math.isnan(w.cpu)
        else f"w{i + 1}[rss {w.rss_kib / 1024:.1f}M fd {w.fds} thr {w.threads}"
        f" pg {w.pg_sockets} rd {w.redis_sockets}]"
        for i, w in enumerate(s.workers)
    )
    return (
        f"{s.t:7.0f}s {s.phase:11} {each} | pg {s.pg_connections} redis {s.redis_clients}"
        f" (server {s.redis_clients_server}) | calls {s.calls_live} (acs {s.server_acs_sockets},"
        f" started {s.calls_started}) pages {s.walls}+{s.call_pages} | finals"
        f" {s.finals_stored}/{s.finals_sent} | lag99 {fmt_ms(s.frame_lag_p99_ms)} late99"
        f" {fmt_ms(s.audio_late_p99_ms)}/{fmt_ms(s.caption_late_p99_ms)} ms | cpu load"
        f" {s.load_cpu:.0%} others {s.others_cpu:.0%} loadavg {s.loadavg:.2f}"
        + (f" | RESTARTS {s.worker_restarts}" if s.worker_restarts else "")
    )


# --- the check and the verdict -----------------------------------------------------------------


def check_finals(db_url: str, records: Sequence[CallRecord]) -> dict[str, Any]:
    """Sent Finals against stored utterances, per call; the calls' states (blocking)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.connection_id, u.text, count(*) FROM streaming_utterance u"
            " JOIN streaming_call c ON c.id = u.call_id GROUP BY 1, 2"
        ).fetchall()
        states = conn.execute(
            "SELECT connection_id, state FROM streaming_call WHERE connection_id IS NOT NULL"
        ).fetchall()
    stored: dict[str, Counter[str]] = {}
    for connection_id, text, n in rows:
        stored.setdefault(str(connection_id), Counter())[str(text)] = int(n)
    state_of = {str(c): str(s) for c, s in states}
    sent = lost = doubled = extra = stored_total = 0
    lost_examples: list[str] = []
    for record in records:
        mine = stored.get(record.connection_id, Counter())
        texts = Counter(record.finals)
        record.stored = sum(mine.values())
        record.lost = sum(1 for t in texts if mine[t] == 0)
        record.doubled = sum(1 for t in texts if mine[t] > 1)
        sent += len(record.finals)
        stored_total += record.stored
        lost += record.lost
        doubled += record.doubled
        extra += sum(n for t, n in mine.items() if t not in texts)
        if record.lost and len(lost_examples) < 10:
            missing = [t for t in texts if mine[t] == 0]
            lost_examples.append(
                f"{record.connection_id}: {len(missing)} lost, first {missing[0]!r}"
            )
    opened = [r for r in records if not math.isnan(r.started_s)]
    not_ended = [r.connection_id for r in opened if state_of.get(r.connection_id) != "ended"]
    unknown = [r.connection_id for r in opened if r.connection_id not in state_of]
    return {
        "sent": sent,
        "stored": stored_total,
        "lost": lost,
        "doubled": doubled,
        "unexpected": extra,  # stored texts that were never sent
        "calls_with_loss": sum(1 for r in records if r.lost),
        "lost_examples": lost_examples,
        "calls_in_db": len(state_of),
        "calls_not_ended": len(not_ended),
        "calls_not_ended_examples": not_ended[:10],
        "calls_missing_in_db": len(unknown),
    }


def run_log_problems(path: Path) -> list[str]:
    """Warnings, errors and tracebacks logged since the workers started (the system checks'
    warnings before that are left out: the scratch setup uses the shared secret)."""
    lines = path.read_text(errors="replace").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Starting ")), 0)
    words = ("WARNING", "ERROR", "CRITICAL", "Traceback")
    return [line for line in lines[start:] if any(word in line for word in words)]


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


@dataclass
class Growth:
    measure: str
    baseline: float
    end: float
    growth: float  # end / baseline - 1
    max: float  # largest sample after the warm-up
    limit: float
    ok: bool


def growth_of(
    measure: str, load: Sequence[Sample], read: Any, limit: float, warmup_s: float
) -> Growth:
    after = [s for s in load if s.t >= warmup_s]
    base = mean([float(read(s)) for s in after[:BASELINE_SAMPLES]])
    end = mean([float(read(s)) for s in load[-BASELINE_SAMPLES:]])
    grown = end / base - 1 if base > 0 else (0.0 if end <= 0 else math.inf)
    top = max((float(read(s)) for s in after), default=math.nan)
    return Growth(measure, base, end, grown, top, limit, grown <= limit)


def judge(
    samples: Sequence[Sample], warmup_s: float, limit: float, finals: dict[str, Any], restarts: int
) -> tuple[str, list[Growth], list[str]]:
    load = [s for s in samples if s.phase in ("warm-up", "load")]
    after = [s for s in load if s.t >= warmup_s]
    reasons: list[str] = []
    if len(after) < 2 * BASELINE_SAMPLES:
        return (
            "inconclusive",
            [],
            [
                f"only {len(after)} samples after the warm-up; {2 * BASELINE_SAMPLES} are needed"
                " (a longer run, a shorter --warmup or --interval)"
            ],
        )
    workers = min(len(s.workers) for s in after)
    growths: list[Growth] = []
    for i in range(workers):
        growths.append(
            growth_of(
                f"worker {i + 1} RSS (MiB)",
                load,
                lambda s, i=i: s.workers[i].rss_kib / 1024,
                limit,
                warmup_s,
            )
        )
    for i in range(workers):
        growths.append(
            growth_of(
                f"worker {i + 1} open fds", load, lambda s, i=i: s.workers[i].fds, limit, warmup_s
            )
        )
    growths.append(
        growth_of("PostgreSQL connections", load, lambda s: s.pg_connections, limit, warmup_s)
    )
    growths.append(
        growth_of("Redis clients (workers')", load, lambda s: s.redis_clients, limit, warmup_s)
    )
    for g in growths:
        if not g.ok:
            reasons.append(
                f"{g.measure} grew {g.growth:+.1%} ({g.baseline:.1f} -> {g.end:.1f}), over"
                f" {g.limit:.0%}"
            )
    if finals["lost"]:
        reasons.append(f"{finals['lost']} finals lost")
    if finals["doubled"]:
        reasons.append(f"{finals['doubled']} finals stored more than once")
    if restarts:
        reasons.append(f"{restarts} worker(s) exited and were started again")
    return ("fail" if reasons else "pass"), growths, reasons


# --- the report --------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| measure | baseline (after warm-up) | end | growth | max after warm-up | limit |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for g in summary["growth"]:
        lines.append(
            f"| {g['measure']} | {fmt(g['baseline'])} | {fmt(g['end'])}"
            f" | {g['growth']:+.1%} | {fmt(g['max'])}"
            f" | ≤ {g['limit']:.0%}: {'ok' if g['ok'] else '**over**'} |"
        )
    f = summary["finals"]
    c = summary["calls"]
    p = summary["pages"]
    idle = summary["idle"]
    st = summary["settings"]
    lines += [
        "",
        "| calls played | with audio | peak live | finals sent | stored | lost | doubled"
        " | unexpected |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['played']} | {c['audio']} | {c['peak_live']} | {f['sent']} | {f['stored']}"
        f" | **{f['lost']}** | **{f['doubled']}** | {f['unexpected']} |",
        "",
        f"* verdict: **{summary['verdict']}**"
        + (": " + "; ".join(summary["reasons"]) if summary["reasons"] else ""),
        f"* load: {st['calls']} call slots (calls of {st['call_seconds'][0]:.0f}"
        f"-{st['call_seconds'][1]:.0f} s, {st['audio_share']:.0%} with audio),"
        f" {st['supervisors']} supervisors x (wall + {st['pages']} call pages),"
        f" {st['workers']} workers;"
        f" {summary['minutes_run']:.1f} min of load, warm-up {summary['warmup_minutes']:.1f} min,"
        f" {len(summary['samples_load'])} samples under load",
        f"* calls: {c['failed_to_open']} did not open, {c['closed_by_server']} closed by the"
        f" server, {f['calls_not_ended']} not `ended` in the database after the drain;"
        f" drain took {summary['drain_s']:.1f} s",
        f"* call pages: {p['opened']} opened, {p['whole_call']} open until their call ended:"
        f" finals missing on those {p['missing']} of {p['expected']}, duplicates"
        f" {p['duplicates']}, misrouted {p['misrouted']}; {p['closed_by_server']} closed by the"
        f" server; {p['open_failures']} failed to open; walls reopened {p['walls_reopened']}",
        "* idle, before the load -> after it: fds "
        + ", ".join(
            f"worker {i + 1} {b} -> {a}"
            for i, (b, a) in enumerate(zip(idle["fds_before"], idle["fds_after"], strict=False))
        )
        + f"; PostgreSQL connections {idle['pg_before']} -> {idle['pg_after']}; Redis clients"
        f" {idle['redis_before']} -> {idle['redis_after']}; RSS "
        + ", ".join(
            f"worker {i + 1} {b:.1f} -> {a:.1f} MiB"
            for i, (b, a) in enumerate(
                zip(idle["rss_mib_before"], idle["rss_mib_after"], strict=False)
            )
        ),
        f"* server: {summary['server']['log_problems']} warnings/errors in the log,"
        f" finals_lost {summary['server'].get('callsite_ingest_finals_lost_total', 0):.0f},"
        f" internal errors {summary['server'].get('callsite_ingest_internal_errors_total', 0):.0f},"
        f" rejected frames {summary['server'].get('callsite_ingest_rejected_total', 0):.0f},"
        f" database retries {summary['server'].get('callsite_ingest_db_retries_total', 0):.0f};"
        f" serve stopped in {summary['server']['stop_s']:.1f} s (exit"
        f" {summary['server']['exit_code']})",
        f"* load generator: send lateness p99 {summary['load']['audio_late_p99_ms']:.0f} ms"
        f" (audio), {summary['load']['caption_late_p99_ms']:.0f} ms (transcription); frame lag"
        f" p99 per sample, max {fmt_ms(summary['load']['frame_lag_p99_max_ms'])} ms; other"
        f" processes' CPU per sample {summary['load']['others_cpu_median']:.0%} median,"
        f" {summary['load']['others_cpu_max']:.0%} max (share of one core)",
    ]
    return "\n".join(lines)


def summarize(
    args: argparse.Namespace,
    monitor: Monitor,
    calls: Calls,
    supervisors: Supervisors,
    finals: dict[str, Any],
    serve: Serve,
    load_seconds: float,
    drain_s: float,
    problems: list[str],
) -> dict[str, Any]:
    samples = monitor.samples
    verdict, growths, reasons = judge(
        samples, args.warmup * 60, args.limit, finals, monitor.restarts
    )
    load = [s for s in samples if s.phase in ("warm-up", "load")]
    before = next((s for s in samples if s.phase == "idle-before"), None)
    after = next((s for s in reversed(samples) if s.phase == "idle-after"), None)
    pages = supervisors.records
    whole = [p for p in pages if p.whole_call]
    lags = [s.frame_lag_p99_ms for s in load if not math.isnan(s.frame_lag_p99_ms)]
    others = [s.others_cpu for s in load if not math.isnan(s.others_cpu)]
    return {
        "verdict": verdict,
        "reasons": reasons,
        "settings": {
            k: getattr(args, k)
            for k in (
                "minutes",
                "warmup",
                "workers",
                "calls",
                "call_seconds",
                "audio_share",
                "supervisors",
                "pages",
                "dwell",
                "grace",
                "interval",
                "limit",
                "seed",
            )
        },
        "minutes_run": load_seconds / 60,
        "warmup_minutes": args.warmup,
        "samples_load": [s.t for s in load],
        "growth": [asdict(g) for g in growths],
        "finals": finals,
        "calls": {
            "played": sum(1 for r in calls.records if not math.isnan(r.started_s)),
            "audio": sum(1 for r in calls.records if r.audio and not math.isnan(r.started_s)),
            "peak_live": max((s.calls_live for s in load), default=0),
            "failed_to_open": sum(calls.open_failures.values()),
            "open_failures": dict(calls.open_failures),
            "closed_by_server": sum(1 for r in calls.records if r.closed_by_server),
            "closed_by_server_examples": [
                f"{r.connection_id}: {r.closed_by_server}"
                for r in calls.records
                if r.closed_by_server
            ][:10],
            "audio_frames": sum(r.audio_frames for r in calls.records),
            "interims": sum(r.interims for r in calls.records),
        },
        "pages": {
            "opened": len(pages),
            "whole_call": len(whole),
            "expected": sum(p.expected for p in whole),
            "missing": sum(p.missing for p in whole),
            "pages_missing_some": sum(1 for p in whole if p.missing),
            "duplicates": sum(p.duplicates for p in pages),
            "misrouted": sum(p.misrouted for p in pages),
            "closed_by_server": sum(1 for p in pages if p.why.startswith("closed by server")),
            "open_failures": sum(supervisors.open_failures.values()),
            "open_failure_reasons": dict(supervisors.open_failures),
            "walls_reopened": supervisors.walls_reopened,
            "walls_closed_by_server": dict(supervisors.walls_closed_by_server),
        },
        "idle": {
            "fds_before": [w.fds for w in before.workers] if before else [],
            "fds_after": [w.fds for w in after.workers] if after else [],
            "rss_mib_before": [w.rss_kib / 1024 for w in before.workers] if before else [],
            "rss_mib_after": [w.rss_kib / 1024 for w in after.workers] if after else [],
            "pg_before": before.pg_connections if before else None,
            "pg_after": after.pg_connections if after else None,
            "redis_before": before.redis_clients if before else None,
            "redis_after": after.redis_clients if after else None,
        },
        "server": {
            **monitor.server_counters,
            "log_problems": len(problems),
            "log_examples": problems[:20],
            "stop_s": serve.stop_seconds,
            "exit_code": serve.exit_code,
            "worker_restarts": monitor.restarts,
        },
        "load": {
            "audio_late_p99_ms": calls.audio_late_all.lateness_quantile(0.99) * 1000,
            "caption_late_p99_ms": calls.caption_late_all.lateness_quantile(0.99) * 1000,
            "frame_lag_p99_max_ms": max(lags, default=math.nan),
            "others_cpu_median": statistics.median(others) if others else math.nan,
            "others_cpu_max": max(others, default=math.nan),
        },
        "drain_s": drain_s,
    }


def write_json(
    path: Path,
    args: argparse.Namespace,
    monitor: Monitor | None,
    calls: Calls | None,
    supervisors: Supervisors | None,
    summary: dict[str, Any] | None,
) -> None:
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "code": args.code_version,
        "cpus": os.cpu_count(),
        "database": args.db_name,
        "channel_prefix": args.prefix,
        "summary": summary,
        "samples": [asdict(s) for s in monitor.samples] if monitor else [],
        "calls": [asdict(r) for r in calls.records] if calls else [],
        "pages": [asdict(p) for p in supervisors.records] if supervisors else [],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, default=str) + "\n")
    tmp.replace(path)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Resources:
    """What the run holds, released in main() whatever happens."""

    db: SoakDatabase | None = None
    serve: Serve | None = None
    redis_url: str = ""
    prefix: str = ""

    def release(self, keep: bool) -> list[str]:
        notes: list[str] = []
        if self.serve is not None:
            self.serve.stop()
        if self.db is not None and self.db.created and not keep:
            try:
                self.db.drop()
            except Exception as error:
                notes.append(f"could not drop {self.db.name}: {error}")
        elif self.db is not None and self.db.created:
            notes.append(f"kept the database {self.db.url}")
        if self.prefix:
            try:
                import redis

                client = redis.Redis.from_url(self.redis_url)
                try:
                    keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
                    if keys:
                        client.delete(*keys)
                finally:
                    client.close()
            except Exception as error:
                notes.append(f"could not delete the Redis keys {self.prefix}*: {error}")
        return notes


async def soak(args: argparse.Namespace, held: Resources, workdir: Path) -> dict[str, Any]:
    db = held.db = SoakDatabase(args.database_url)
    args.db_name = db.name
    extra = {
        "DATABASE_URL": db.url,
        "REDIS_URL": args.redis_url,
        "CALLSITE_CHANNEL_PREFIX": args.prefix,
        "CALLSITE_REDIS_LAYER": "pubsub",
        "DJANGO_SECRET_KEY": "soak-" + secrets.token_urlsafe(32),
    }
    held.redis_url, held.prefix = args.redis_url, args.prefix
    print(f"creating and migrating {db.name}...", flush=True)
    cookie = await asyncio.to_thread(db.prepare, args.secret, extra)
    env = base_env(args.secret)
    env.update(extra)
    serve = held.serve = Serve(args.workers, env, workdir / "serve.log")
    pids = await serve.ready()
    print(
        f"serve pid {serve.pid}: workers {', '.join(map(str, pids))} on ports"
        f" {', '.join(map(str, serve.ports))}",
        flush=True,
    )
    t0 = time.monotonic()
    monitor = Monitor(serve, db, args.redis_url, pids, t0)
    calls = Calls(args, serve.ports, args.label)
    supervisors = Supervisors(args, serve.ports, cookie, calls)
    first = await monitor.sample("idle-before", None, None)
    print(sample_line(first), flush=True)

    tasks: list[asyncio.Task[None]] = []
    sampler: asyncio.Task[None] | None = None
    phase = "warm-up"
    summary: dict[str, Any] | None = None

    async def sampling() -> None:
        n = 1
        while True:
            await asyncio.sleep(max(0.0, t0 + n * args.interval - time.monotonic()))
            n += 1
            current = phase
            if current in ("warm-up", "load"):
                current = "warm-up" if time.monotonic() - t0 < args.warmup * 60 else "load"
            try:
                s = await monitor.sample(current, calls, supervisors)
            except Exception as error:  # a failed read is reported; the run goes on
                print(f"sample failed: {type(error).__name__}: {error}", flush=True)
                continue
            print(sample_line(s), flush=True)
            if args.json is not None:
                write_json(args.json, args, monitor, calls, supervisors, None)

    try:
        calls.t0 = t0
        tasks += [asyncio.create_task(calls.run_slot(i)) for i in range(args.calls)]
        tasks += [asyncio.create_task(supervisors.run(j)) for j in range(args.supervisors)]
        sampler = asyncio.create_task(sampling())
        await asyncio.sleep(args.minutes * 60)
        load_seconds = time.monotonic() - t0

        # Stop: every call ends after its current turn; pages stay until their call ended.
        phase = "drain"
        print("stopping: calls end after their current turn...", flush=True)
        calls.stopping = True
        supervisors.stopping = True
        drain0 = time.monotonic()
        await asyncio.gather(*tasks[: args.calls], return_exceptions=True)
        sent = calls.finals_sent
        stored = -1
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            merged, snaps = await monitor._metrics()
            open_acs = sum(s.value("callsite_ingest_sockets") for s in snaps)
            stored = await asyncio.to_thread(
                lambda: int(
                    monitor._pg().execute("SELECT count(*) FROM streaming_utterance").fetchone()[0]
                )
            )
            if merged is not None and open_acs == 0 and stored >= sent:
                break
            await asyncio.sleep(1.0)
        drain_s = time.monotonic() - drain0
        print(f"drained in {drain_s:.1f} s: {stored} of {sent} finals stored", flush=True)
        # pages close once their call ended + grace; then the walls
        await asyncio.sleep(args.grace + 2)
        supervisors.closing = True
        supervisors.closed.set()
        await asyncio.gather(*tasks[args.calls :], return_exceptions=True)
        sampler.cancel()
        with contextlib.suppress(BaseException):
            await sampler
        await asyncio.sleep(3.0)  # the servers see the last sockets go
        last = await monitor.sample("idle-after", calls, supervisors)
        print(sample_line(last), flush=True)

        finals = await asyncio.to_thread(check_finals, db.url, calls.records)
        monitor.close()
        # what the workers logged under load; the stop's own drain messages come after
        problems = run_log_problems(serve.log_path)
        await asyncio.to_thread(serve.stop)
        summary = summarize(
            args, monitor, calls, supervisors, finals, serve, load_seconds, drain_s, problems
        )
        return summary
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        if sampler is not None and not sampler.done():
            sampler.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        calls.abort()
        supervisors.close()
        monitor.close()
        if args.json is not None:
            write_json(args.json, args, monitor, calls, supervisors, summary)


def seconds_range(text: str) -> tuple[float, float]:
    """``60:240`` (or one number) -> (60.0, 240.0)."""
    low, _, high = text.partition(":")
    pair = (float(low), float(high or low))
    if pair[0] <= 0 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: want MIN:MAX with 0 < MIN <= MAX")
    return pair


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of load")
    parser.add_argument(
        "--warmup",
        type=float,
        help="minutes before the baseline (default: the smaller of 5 and a sixth of the run)",
    )
    parser.add_argument("--workers", type=int, default=2, help="manage.py serve --workers")
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls (call slots)")
    parser.add_argument(
        "--call-seconds",
        type=seconds_range,
        default=(60.0, 240.0),
        metavar="MIN:MAX",
        help="a call's length, drawn uniformly (default 60:240)",
    )
    parser.add_argument(
        "--audio-share", type=float, default=0.25, help="share of calls that also stream audio"
    )
    parser.add_argument("--supervisors", type=int, default=5)
    parser.add_argument("--pages", type=int, default=4, help="call pages each supervisor keeps")
    parser.add_argument(
        "--dwell",
        type=seconds_range,
        default=(20.0, 180.0),
        metavar="MIN:MAX",
        help="seconds a call page stays open unless its call ends first (default 20:180)",
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds a page stays after its call ended"
    )
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--drain", type=float, default=120.0, help="max seconds for the drain")
    parser.add_argument(
        "--limit", type=float, default=10.0, help="allowed growth after the warm-up, in %%"
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="PostgreSQL server to create the scratch database on (default %(default)s)",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="default %(default)s")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write every sample and the summary here")
    parser.add_argument("--workdir", type=Path, help="keep the server log here")
    args = parser.parse_args(argv)
    if urlsplit(args.database_url).scheme not in ("postgres", "postgresql"):
        parser.error("--database-url must be a postgres:// URL")
    if min(args.workers, args.calls, args.supervisors) < 1 or args.pages < 0:
        parser.error("--workers, --calls and --supervisors must be at least 1")
    if not 0 <= args.audio_share <= 1:
        parser.error("--audio-share must be between 0 and 1")
    if args.warmup is None:
        args.warmup = min(5.0, args.minutes / 6)
    if args.warmup >= args.minutes:
        parser.error("--warmup must be shorter than --minutes")
    args.limit /= 100
    args.secret = secrets.token_urlsafe(16)
    args.code_version = code_version()
    args.label = f"soak{os.getpid()}-{secrets.token_hex(2)}"
    args.prefix = f"callsite-soak-{os.getpid()}-{secrets.token_hex(3)}"
    args.db_name = ""
    signal.signal(signal.SIGTERM, interrupt)  # stop the servers and clean up, as on Ctrl-C
    raise_fd_limit()
    print(
        f"# soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, code {args.code_version},"
        f" {os.cpu_count()} CPUs; {args.minutes:g} min (warm-up {args.warmup:g} min),"
        f" {args.workers} workers, {args.calls} concurrent calls of"
        f" {args.call_seconds[0]:.0f}-{args.call_seconds[1]:.0f} s"
        f" ({args.audio_share:.0%} with audio), {args.supervisors} supervisors x (wall +"
        f" {args.pages} call pages); PostgreSQL {urlsplit(args.database_url).netloc}, Redis"
        f" {args.redis_url} (prefix {args.prefix})",
        flush=True,
    )
    held = Resources()
    summary: dict[str, Any] | None = None
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        try:
            summary = asyncio.run(soak(args, held, workdir))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as error:
            print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
            if held.serve is not None:
                for line in log_problems([("", held.serve.log_path)])[:10]:
                    print(f"    server log: {line[:300]}", file=sys.stderr)
            return 2
        finally:
            for note in held.release(args.keep):
                print(note, file=sys.stderr)
    if args.json is not None:
        print(f"samples and summary: {args.json}")
    print()
    print(markdown(summary))
    return {"pass": 0, "fail": 1}.get(summary["verdict"], 2)


if __name__ == "__main__":
    sys.exit(main())
