"""A load that keeps changing, as a call centre's does: calls that start and end all the
time, and supervisors who keep the call wall open and open and close call pages.

``Calls`` runs call slots, each playing one call after another: every call lasts a random
length, carries ACS transcription on its socket (TranscriptionMetadata, then turns of nine
Intermediates 300 ms apart and a Final, with a pause between turns; each Final's text is
unique) and, for a share of the calls, two unmixed participants' audio at real time; it ends
after its last whole turn with a WebSocket close, as ACS ends a stream. ``Supervisors`` keep
their walls open all along and their call pages on calls the wall shows as live, each for a
random dwell or until its call has ended and a grace period passed. Both keep a record of
everything they did, for the checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.harness.clients import (
    AUDIO_METADATA,
    INTERIM_EVERY,
    PERIOD,
    TURN_EVENTS,
    CallSocket,
    PageSocket,
    Stamp,
    failure_reason,
    open_page,
    open_socket,
    transcription_data,
    transcription_metadata,
    turn_words,
)
from bench.harness.metrics import SendStats

# --- calls -------------------------------------------------------------------------------------


class ChurnCall(CallSocket):
    """A played call's ACS socket; ``ending`` once the call is over (no more frames)."""

    ending = False


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
        self.sockets: set[ChurnCall] = set()

    @property
    def finals_sent(self) -> int:
        return sum(len(r.finals) for r in self.records)

    def summary(self, peak_live: int) -> dict[str, Any]:
        """What was played, for the report (``peak_live``: most calls live in a sample)."""
        records = self.records
        closed = [r for r in records if r.closed_by_server]
        return {
            "played": sum(1 for r in records if not math.isnan(r.started_s)),
            "audio": sum(1 for r in records if r.audio and not math.isnan(r.started_s)),
            "peak_live": peak_live,
            "failed_to_open": sum(self.open_failures.values()),
            "open_failures": dict(self.open_failures),
            "closed_by_server": len(closed),
            "closed_by_server_examples": [
                f"{r.connection_id}: {r.closed_by_server}" for r in closed
            ][:10],
            "audio_frames": sum(r.audio_frames for r in records),
            "interims": sum(r.interims for r in records),
        }

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
        sock = ChurnCall(seq, port, args.secret, record.connection_id)
        self.sockets.add(sock)
        try:
            await open_socket(sock)
        except Exception as error:
            record.error = reason = failure_reason(error)
            self.open_failures[reason] += 1
            sock.close()
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

    async def transcribe(self, sock: ChurnCall, record: CallRecord, t0: float) -> None:
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
                self._late(False, time.monotonic() - due)
                sock.send_text(payload)
                if step == TURN_EVENTS - 1:
                    record.finals.append(" ".join(turn_words(tag, step)))
                else:
                    record.interims += 1
            turn += 1
            start += turn_length + self.rng.uniform(0.3, 2.0)

    async def send_audio(self, sock: ChurnCall, record: CallRecord, t0: float) -> None:
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


class WatchingPage(PageSocket):
    """A supervisor's socket; a call page also keeps the finals it received, from its
    snapshot and as ``caption.final``."""

    def __init__(self, path: str, port: int, cookie: str, **kwargs: Any) -> None:
        super().__init__(path, port, cookie, **kwargs)
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
        self.walls: list[WatchingPage | None] = [None] * args.supervisors
        self.views: list[dict[int, tuple[str, str]]] = [{} for _ in range(args.supervisors)]
        self.pages: set[WatchingPage] = set()  # call pages open or opening
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
            wall = WatchingPage("/ws/dashboard/", port, self.cookie, on_call=on_call)
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
            page = WatchingPage(
                f"/ws/dashboard/calls/{call_id}/", port, self.cookie, call=record.seq
            )
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

    async def watch(self, page: WatchingPage, record: CallRecord, dwell: float) -> str:
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
        self, j: int, worker: int, page: WatchingPage, record: CallRecord, why: str
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

    def summary(self) -> dict[str, Any]:
        """The pages opened and what they received, for the report."""
        pages = self.records
        whole = [p for p in pages if p.whole_call]
        return {
            "opened": len(pages),
            "whole_call": len(whole),
            "expected": sum(p.expected for p in whole),
            "missing": sum(p.missing for p in whole),
            "pages_missing_some": sum(1 for p in whole if p.missing),
            "duplicates": sum(p.duplicates for p in pages),
            "misrouted": sum(p.misrouted for p in pages),
            "closed_by_server": sum(1 for p in pages if p.why.startswith("closed by server")),
            "open_failures": sum(self.open_failures.values()),
            "open_failure_reasons": dict(self.open_failures),
            "walls_reopened": self.walls_reopened,
            "walls_closed_by_server": dict(self.walls_closed_by_server),
        }

    def close(self) -> None:
        for page in list(self.pages):
            page.close()
        for wall in self.walls:
            if wall is not None:
                wall.close()
