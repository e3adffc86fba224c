"""What the load generators play: ACS call sockets and supervisors' pages.

Every ACS packet is written by ``simulator.wire``, the project's one encoder of ACS's wire
format. Audio frames are the hot path (tens of thousands a second from one process), so each
participant's frames are encoded once, as ``wire.audio_data`` writes them, and kept in two
parts around the timestamp's value: sending a frame writes ``head + timestamp + tail``, with
the WebSocket frame header already in ``head``. The audio is one second of speech-like noise,
cycled; a participant who is not talking sends silent frames (zero PCM, ``silent`` true).

Transcription comes in turns of nine Intermediates 300 ms apart and a Final, each text
starting with a tag that names its call, turn and step, so a caption can be matched to the
packet that carried it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from bench.harness.metrics import SendStats
from bench.harness.ws import WebSocketClient, client_frame, client_frame_header
from simulator import wire
from streaming.units import FRAME_MS, FRAMES_PER_SECOND, TICKS_PER_SECOND

ACS_PATH = "/ws/acs/"
CONNECT_LIMIT = 60.0  # seconds a socket may take to open (and a page to send its first message)
PERIOD = FRAME_MS / 1000  # ACS sends a frame every 20 ms per stream
SAMPLE_RATE = 16000
PCM_BYTES = SAMPLE_RATE // FRAMES_PER_SECOND * 2  # 640
STAMP_BYTES = 24  # 2024-11-15T19:16:12.345Z, as wire.timestamp writes it
TICK = 0.001  # a driver that sends in batches wakes at most this often
TURN_START = 30.0  # call time of the first turn's start, in seconds (keeps offsets positive)

T = TypeVar("T")


# --- audio -------------------------------------------------------------------------------------


def speech_like_pcm(frames: int = FRAMES_PER_SECOND, seed: int = 7) -> list[bytes]:
    """One second of noise with a syllable-rate envelope and pauses: levels vary per frame."""
    rng = np.random.default_rng(seed)
    samples = frames * PCM_BYTES // 2
    noise = rng.standard_normal(samples)
    noise = np.convolve(noise, np.ones(4) / 4, mode="same")  # a little low-pass
    t = np.arange(samples) / SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t) * 0.8 + 0.3, 0.0, None)  # ~4 syllables/s
    envelope[int(0.8 * samples) :] *= 0.01  # a pause at the end of the second
    pcm = np.clip(noise * envelope * 0.2 * 32767, -32768, 32767).astype("<i2")
    step = PCM_BYTES // 2
    return [pcm[i * step : (i + 1) * step].tobytes() for i in range(frames)]


SPEECH = speech_like_pcm()  # one second of frames, cycled
SPEECH_FRAMES = len(SPEECH)
SILENCE = bytes(PCM_BYTES)
AUDIO_METADATA = wire.audio_metadata(sample_rate=SAMPLE_RATE, subscription_id="bench")

_STAMP_MARK = "#" * STAMP_BYTES  # stands for the timestamp while a frame is encoded
_SHARED: dict[bytes, bytes] = {}  # one copy of each distinct part, whatever socket uses it


def _frame_parts(pcm: bytes, raw_id: str, silent: bool) -> tuple[bytes, bytes]:
    """``wire.audio_data``'s message for one frame in two parts, around its timestamp's value;
    the first with the header of the WebSocket frame that carries the whole message."""
    text = wire.audio_data(pcm, at=_STAMP_MARK, participant=raw_id, silent=silent)
    before, mark, after = (part.encode() for part in text.partition(_STAMP_MARK))
    assert mark, "wire.audio_data wrote no timestamp"
    head = client_frame_header(len(before) + STAMP_BYTES + len(after)) + before
    tail = after
    return _SHARED.setdefault(head, head), _SHARED.setdefault(tail, tail)


class Voice:
    """One participant's frames, encoded: speech frame i is ``heads[i] + stamp + tails[i]``."""

    def __init__(self, raw_id: str) -> None:
        speech = [_frame_parts(pcm, raw_id, silent=False) for pcm in SPEECH]
        self.heads = [head for head, _ in speech]
        self.tails = [tail for _, tail in speech]
        self.silent_head, self.silent_tail = _frame_parts(SILENCE, raw_id, silent=True)


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


# --- transcription -----------------------------------------------------------------------------


INTERIM_EVERY = 0.300  # seconds between a call's transcription packets
TURN_EVENTS = 10  # packets per turn: nine Intermediates, then the Final (a turn is 3 s)
WORDS = (
    *("thanks", "for", "calling", "how", "can", "I", "help", "you", "today", "my", "order"),
    *("never", "arrived", "and", "I", "would", "like", "a", "refund"),
)


def transcription_metadata(call_id: str) -> str:
    return wire.transcription_metadata(
        call_connection_id=call_id, correlation_id="bench", subscription_id=f"bench-{call_id}"
    )


def turn_words(tag: str, step: int) -> list[str]:
    """The words of step ``step`` of a turn: the tag, then 2, 4, ... 18 words, or all (Final)."""
    final = step == TURN_EVENTS - 1
    return [tag, *WORDS[: len(WORDS) if final else 2 * (step + 1)]]


def transcription_data(raw_id: str, tag: str, step: int, start: float) -> str:
    """Step ``step`` of a turn that started ``start`` seconds into the call.

    Steps 0-8 are Intermediates, step 9 the Final, with a confidence and every word's timing.
    """
    final = step == TURN_EVENTS - 1
    words = turn_words(tag, step)
    offset = round(start * TICKS_PER_SECOND)
    duration = round((step + 1) * INTERIM_EVERY * TICKS_PER_SECOND)
    timings = None
    if final:
        each = duration // len(words)
        timings = [
            {"text": w, "offset": offset + i * each, "duration": each} for i, w in enumerate(words)
        ]
    return wire.transcription_data(
        " ".join(words),
        final=final,
        offset=offset,
        duration=duration,
        participant=raw_id,
        confidence=0.9 if final else None,
        words=timings,
    )


# --- sockets -----------------------------------------------------------------------------------


class CallSocket(WebSocketClient):
    """One call's ACS socket: unmixed participants' audio, one talking at a time (the others'
    frames silent), and transcription. With one participant, it is a phone number."""

    def __init__(
        self, index: int, port: int, token: str, call_id: str, participants: int = 2
    ) -> None:
        headers = {"x-ms-call-connection-id": call_id, "x-ms-call-correlation-id": "bench"}
        super().__init__(f"{ACS_PATH}?token={token}", port, headers)
        self.index = index
        self.call_id = call_id
        both = (f"8:acs:bench-agent-{index:05d}", f"4:+1555{index:07d}")
        self.raw_ids = both[len(both) - participants :]
        self.voices = [Voice(raw_id) for raw_id in self.raw_ids]
        self.speaker = 0  # whose frames carry speech
        self.frames = 0  # AudioData frames sent
        self.offset = index % SPEECH_FRAMES

    def send_frame(self, participant: int, stamp: bytes) -> None:
        n = self.frames
        self.frames = n + 1
        voice = self.voices[participant]
        assert self.transport is not None
        if participant == self.speaker:
            i = (n + self.offset) % SPEECH_FRAMES
            self.transport.write(voice.heads[i] + stamp + voice.tails[i])
        else:
            self.transport.write(voice.silent_head + stamp + voice.silent_tail)


CAPTION_TYPES = ("caption.interim", "caption.final")


class PageSocket(WebSocketClient):
    """A supervisor's browser socket: the wall, or one call page. Keeps caption receipts.

    ``first`` resolves with the first message (the snapshot); ``on_call`` hears of every call
    in a wall's snapshot and updates.
    """

    def __init__(
        self,
        path: str,
        port: int,
        cookie: str,
        *,
        call: int | None = None,
        on_call: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(path, port, {"Origin": f"http://127.0.0.1:{port}", "Cookie": cookie})
        self.call = call  # index of the watched call's socket; None for the wall
        self.on_call = on_call
        self.first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.receipts: list[tuple[str, float]] = []  # (tag, time.time() at arrival)
        self.events: Counter[str] = Counter()  # every message by type
        self.event_bytes: Counter[str] = Counter()

    @property
    def ready(self) -> bool:
        """Open, and its first message (the snapshot) arrived."""
        first = self.first
        return first.done() and not first.cancelled() and first.exception() is None

    def waiting(self) -> tuple[asyncio.Future[None], ...]:
        return (self.opened, self.first)

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


async def open_socket(sock: WebSocketClient) -> None:
    """Connect and wait for the handshake (CONNECT_LIMIT at most)."""
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: sock, "127.0.0.1", sock.port)
    try:
        await asyncio.wait_for(sock.opened, CONNECT_LIMIT)
    except TimeoutError:
        raise TimeoutError(f"no handshake within {CONNECT_LIMIT:.0f} s") from None


async def open_page(sock: PageSocket) -> PageSocket:
    """Open the page's socket and wait for its first message (the snapshot)."""
    await open_socket(sock)
    try:
        await asyncio.wait_for(sock.first, CONNECT_LIMIT)
    except TimeoutError:
        raise TimeoutError(f"open, but no first message within {CONNECT_LIMIT:.0f} s") from None
    return sock


async def open_pages(
    what: str, pages: Sequence[PageSocket], ports: Sequence[int], concurrency: int = 16
) -> None:
    """Open the pages, ``concurrency`` at a time; ``OpenFailed`` (``gather_open``) if some
    did not, with a count for each of the workers on ``ports``."""
    limit = asyncio.Semaphore(concurrency)

    async def open_limited(sock: PageSocket) -> PageSocket:
        async with limit:
            return await open_page(sock)

    openings = [open_limited(sock) for sock in pages]
    await gather_open(what, openings, [ports.index(sock.port) for sock in pages], len(ports))


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


# --- many calls at once ------------------------------------------------------------------------


class CallLoad:
    """C calls' ACS sockets, call i's on worker i % len(ports), and their audio on schedule.

    ``send_audio_due`` is the batched driver's step: C x P streams (P participants a call),
    one frame each per 20 ms, their phases spread evenly over the period, in slot order.
    """

    def __init__(
        self, ports: Sequence[int], calls: int, token: str, label: str, participants: int
    ) -> None:
        self.ports = ports
        self.calls = calls
        self.token = token
        self.label = label
        self.participants = participants
        self.sockets: list[CallSocket] = []
        self.opening: list[CallSocket] = []  # every socket made, opened or not (to close)
        self.stamp = Stamp()
        self.audio = SendStats()
        self.stop_at = math.inf

    async def connect(
        self, hello: Callable[[CallSocket], Sequence[str]], concurrency: int = 32
    ) -> None:
        """Open every socket, each sending ``hello(socket)``'s packets once it is open."""
        limit = asyncio.Semaphore(concurrency)
        workers = len(self.ports)

        async def open_one(index: int) -> CallSocket:
            async with limit:
                port = self.ports[index % workers]
                call_id = f"{self.label}-{index:05d}"
                sock = CallSocket(index, port, self.token, call_id, self.participants)
                self.opening.append(sock)
                await open_socket(sock)
                for text in hello(sock):
                    sock.send_text(text)
                return sock

        self.sockets = await gather_open(
            "ACS sockets",
            [open_one(i) for i in range(self.calls)],
            [i % workers for i in range(self.calls)],
            workers,
        )

    @property
    def measuring(self) -> bool:
        """Whether the load is in a measurement window (and counts its send lateness)."""
        return self.audio.measuring

    @measuring.setter
    def measuring(self, on: bool) -> None:
        self.audio.measuring = on

    @property
    def audio_slot(self) -> float:
        return PERIOD / (len(self.sockets) * self.participants)

    def send_audio_due(self, now: float, t0: float, s: int) -> int:
        """Send the frames of slots ``s`` .. the last due at ``now``; the next slot to send."""
        if now < t0:
            return s
        slot = self.audio_slot
        due = int((now - t0) / slot)
        if due >= s:
            sockets, calls, participants = self.sockets, len(self.sockets), self.participants
            stamp = self.stamp.at(time.time())
            late = self.audio.late_ms if self.audio.measuring else None
            while s <= due:
                sockets[s % calls].send_frame((s // calls) % participants, stamp)
                if late is not None:
                    late[int((now - t0 - s * slot) * 1000)] += 1
                s += 1
        return s

    async def drive_audio(self, t0: float, sent_before: int = 0) -> None:
        """The batched driver: one task that, at each wake-up, sends every frame that is due,
        from ``t0`` until ``stop_at``. ``audio.sent`` counts them after ``sent_before``."""
        slot = self.audio_slot
        monotonic = time.monotonic
        s = 0
        while True:
            now = monotonic()
            if now >= self.stop_at:
                return
            s = self.send_audio_due(now, t0, s)
            self.audio.sent = sent_before + s  # one frame per slot
            delay = t0 + s * slot - monotonic()
            await asyncio.sleep(max(delay, TICK if slot < TICK else 0.0))

    async def drive_audio_tasks(self, t0: float) -> None:
        """The other driver, to compare: one task per socket (one participant each), each
        sleeping until its next frame."""
        slot = PERIOD / len(self.sockets)
        stats = self.audio

        async def one(sock: CallSocket) -> None:
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
                sock.send_frame(0, self.stamp.at(wall()))
                stats.sent += 1
                if stats.measuring:
                    stats.late_ms[int((now - due) * 1000)] += 1
                n += 1

        await asyncio.gather(*(one(sock) for sock in self.sockets))

    def closed(self) -> list[str]:
        return [f"{s.call_id}: {s.closed_by_server}" for s in self.sockets if s.closed_by_server]

    def close(self) -> None:
        for sock in self.opening:
            sock.close()


@dataclass(slots=True)
class SentCaption:
    """One transcription packet as sent."""

    at: float  # time.time() just before the write
    final: bool
    call: int  # index of the call's socket
    counted: bool  # sent inside the measurement window


class CaptionLoad(CallLoad):
    """C calls of two participants, and one task that sends every socket's audio and
    transcription on time: each caption's tag, send time and call are kept in ``sent``."""

    def __init__(
        self, ports: Sequence[int], calls: int, token: str, label: str, audio: bool = True
    ) -> None:
        super().__init__(ports, calls, token, label, participants=2)
        self.with_audio = audio
        self.captions = SendStats()
        self.sent: dict[str, SentCaption] = {}
        self.captions_from = math.inf  # monotonic time of the first transcription packet

    @property
    def measuring(self) -> bool:
        return self.audio.measuring

    @measuring.setter
    def measuring(self, on: bool) -> None:
        self.audio.measuring = self.captions.measuring = on

    def hello(self, sock: CallSocket) -> list[str]:
        """What a call's socket sends once it is open."""
        first = [AUDIO_METADATA] if self.with_audio else []
        return [*first, transcription_metadata(sock.call_id)]

    async def drive(self, t0: float) -> None:
        """Audio from ``t0``, transcription from ``captions_from``, until ``stop_at``.

        Audio: 2 C streams, one frame each per 20 ms, phases spread evenly over the period.
        Transcription: one packet per call per 300 ms, phases spread evenly; a call's turns
        are offset by its index, so Finals are spread over the 3 s too.
        """
        calls = len(self.sockets)
        slot = self.audio_slot
        caption_slot = INTERIM_EVERY / calls
        monotonic = time.monotonic
        s = g = 0
        if not self.with_audio:
            t0 = math.inf
        while True:
            now = monotonic()
            if now >= self.stop_at:
                return
            s = self.audio.sent = self.send_audio_due(now, t0, s)
            start = self.captions_from
            next_caption = start
            if now >= start:
                due = int((now - start) / caption_slot)
                while g <= due:
                    self.send_caption(g, now - start - g * caption_slot)
                    g += 1
                self.captions.sent = g
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
        self.sent[tag] = SentCaption(at, final, index, self.measuring)
        sock.speaker = (turn + 1) & 1 if final else speaker
        if self.measuring:
            self.captions.late_ms[int(late * 1000)] += 1
