"""A local stand-in for the Azure AI Speech service, speaking its WebSocket protocol to the SDK.

The real ``azure-cognitiveservices-speech`` SDK connects to it when given
``SpeechConfig(subscription=..., endpoint="ws://127.0.0.1:<port>/...")``; nothing in the code
under test changes. It runs a ``websockets`` server on a loopback port in a background thread
with its own event loop, accepts any path, and records what it received.

The protocol, as the SDK (1.53) speaks it:

* The WebSocket upgrade carries ``Ocp-Apim-Subscription-Key``, ``X-ConnectionId`` and the
  ``USP`` subprotocol; the query string carries ``language``, ``format=detailed`` and
  ``wordLevelTimestamps``/``wordLevelConfidence`` when requested.
* Text messages are ``Header:value`` lines separated by CRLF, a blank line, then a JSON body.
  The client sends ``Path:speech.config`` (SDK, OS and audio format), ``Path:speech.context``
  (``phraseDetection`` with ``mode: Conversation`` and a ``speakerDiarization`` section whose
  ``audioOffsetMS`` says where in the session's audio this turn starts, ``phraseOutput`` with
  the detailed options) and ``Path:telemetry``.
* Binary messages are a 2-byte big-endian header length, the headers (``Path:audio``,
  ``X-RequestId``, ``X-StreamId``), then audio: the first one of a turn is a 44-byte RIFF/WAV
  header, the following ones raw PCM, and an empty one ends the audio.
* The service answers, with the turn's ``X-RequestId``: ``turn.start``
  (``{"context": {"serviceTag": ...}}``), ``speech.startDetected`` (``{"Offset"}``),
  ``speech.hypothesis`` (``{"Text", "Offset", "Duration", "SpeakerId"}``), ``speech.phrase``
  (``RecognitionStatus``, ``Offset``, ``Duration``, ``DisplayText``, ``SpeakerId`` and, for
  detailed output, ``NBest: [{Confidence, Lexical, ITN, MaskedITN, Display, Words}]``) and,
  after the end of the audio, ``speech.endDetected``, a ``speech.phrase`` with
  ``RecognitionStatus: EndOfDictation``, and ``turn.end``.
* Offsets are 100-ns ticks from the start of the audio sent in the turn. After a reconnect (or
  a new turn) the SDK replays the audio that no final result has covered yet, announces where
  that audio starts in ``audioOffsetMS``, and adds that base to the offsets it receives. The
  stand-in does the same sums the other way round, so a script is written on the session's
  timeline and results stay on it across reconnects.

The stand-in is driven by a script of ``ScriptedPhrase``: as the audio received passes the end
of each word it sends a hypothesis, and once it passes the end of the phrase it sends the final
phrase; at the end of the audio it finalises phrases that had started. Failure knobs:
``drop_at`` breaks the connection once the audio reaches a point (a TCP abort, or a WebSocket
close with ``drop_code``), ``drop()`` aborts the open connections now, ``refuse_status``
answers upgrades with an HTTP error, and ``stall_handshakes`` holds upgrades unanswered until
it is cleared (then refuses them with 503). ``connections`` records, per connection, the path
and query, the upgrade headers, ``speech.config``/``speech.context`` bodies, the WAV header,
the PCM byte count, what was sent back, and how the connection ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streaming.units import TICKS_PER_MS, TICKS_PER_SECOND

WAV_HEADER_BYTES = 44


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


@dataclass(frozen=True)
class ScriptedPhrase:
    """One phrase the stand-in recognises, placed on the session's audio timeline (seconds).

    Words share the span evenly; ``speaker`` is the diarization label the service would give
    (``None`` sends ``"Unknown"``).
    """

    text: str
    start: float
    end: float
    speaker: str | None = "Guest-1"
    confidence: float = 0.9

    @property
    def lexical(self) -> str:
        return " ".join(re.sub(r"[^\w' ]", " ", self.text).lower().split())

    def words(self) -> list[tuple[str, int, int]]:
        """(word, offset, duration) on the session timeline, in ticks."""
        tokens = self.lexical.split()
        start, end = _ticks(self.start), _ticks(self.end)
        step = (end - start) // max(len(tokens), 1)
        return [(word, start + i * step, step) for i, word in enumerate(tokens)]


@dataclass
class ConnectionRecord:
    """What one WebSocket connection brought; ``ended`` says how it finished."""

    number: int
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    speech_config: dict[str, Any] | None = None
    speech_contexts: list[dict[str, Any]] = field(default_factory=list)
    telemetry: int = 0
    wav_header: bytes = b""
    audio_bytes: int = 0
    turns: int = 0
    end_of_audio: bool = False
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ended: str = ""

    @property
    def sample_rate(self) -> int | None:
        if len(self.wav_header) < WAV_HEADER_BYTES:
            return None
        return int.from_bytes(self.wav_header[24:28], "little")

    def sent_paths(self) -> list[str]:
        return [path for path, _ in self.sent]


@dataclass
class _Turn:
    """One request (turn) on a connection: its audio position and what it still owes."""

    request_id: str
    base: int  # ticks on the session timeline where this turn's audio starts
    bytes_per_second: int = 32000
    received: int = 0  # PCM bytes in this turn
    started: bool = False
    speech_started: bool = False
    pending: list[ScriptedPhrase] = field(default_factory=list)
    words_sent: dict[int, int] = field(default_factory=dict)
    audio: bytearray = field(default_factory=bytearray)  # kept only with ``voiced_only``

    @property
    def position(self) -> int:
        """The session-timeline tick the received audio reaches."""
        return self.base + self.received * TICKS_PER_SECOND // self.bytes_per_second


class SpeechStandIn:
    """A scripted Azure Speech WebSocket service on 127.0.0.1; start() before use."""

    path = "/speech/recognition/conversation/cognitiveservices/v1"

    def __init__(
        self,
        script: list[ScriptedPhrase] | tuple[ScriptedPhrase, ...] = (),
        *,
        hypotheses: bool = True,
        end_of_audio_delay: float = 0.0,
        voiced_only: bool = False,
    ) -> None:
        self.script = list(script)
        # Recognise a scripted phrase only where the session's audio is not silent, so one
        # script serves every participant's session of an unmixed call.
        self.voiced_only = voiced_only
        self.hypotheses = hypotheses
        self.end_of_audio_delay = end_of_audio_delay
        # Failure injection; the test thread sets these, the server thread reads them.
        self.drop_at: float | None = None  # seconds on the session timeline
        self.drop_code: int | None = None  # None: abort the TCP connection; else close code
        self.drop_reason = "Stand-in closed the connection"
        self.refuse_status: int | None = None
        self._stall = False
        self.port = 0
        self._lock = threading.Lock()
        self._connections: list[ConnectionRecord] = []
        self._dropped = False
        self._handshakes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._unstalled: asyncio.Event | None = None  # set when stalled upgrades may go on
        self._live: set[ServerConnection] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> SpeechStandIn:
        self._thread = threading.Thread(target=self._run, name="speech-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Speech stand-in did not start")
        if self._failure is not None:
            raise RuntimeError("the Speech stand-in failed to start") from self._failure
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket. Safe to call twice."""
        if self._thread is None or not self._thread.is_alive():
            return
        assert self._loop is not None
        assert self._stopping is not None
        assert self._unstalled is not None
        self._loop.call_soon_threadsafe(self._unstalled.set)
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def __enter__(self) -> SpeechStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def stall_handshakes(self) -> bool:
        """Whether new upgrades are left unanswered; clearing it refuses the held ones (503)."""
        return self._stall

    @stall_handshakes.setter
    def stall_handshakes(self, stall: bool) -> None:
        self._stall = stall
        if self._loop is not None and self._unstalled is not None:
            event = self._unstalled
            self._loop.call_soon_threadsafe(event.clear if stall else event.set)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    # --- what was received ----------------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionRecord]:
        with self._lock:
            return list(self._connections)

    @property
    def handshakes(self) -> int:
        """WebSocket upgrade requests seen, including refused and stalled ones."""
        with self._lock:
            return self._handshakes

    async def wait_for(
        self, predicate: Callable[[SpeechStandIn], bool], within: float = 5.0
    ) -> None:
        """Poll (from a test's event loop) until ``predicate(self)`` holds."""
        deadline = time.monotonic() + within
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError("the Speech stand-in never reached the expected state")
            await asyncio.sleep(0.02)

    def drop(self) -> None:
        """Abort every open connection now, as a network failure would."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._abort_all)

    # --- server ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start()
            self._failure = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._unstalled = asyncio.Event()
        self._unstalled.set()
        async with serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            max_size=None,
            ping_interval=None,
            compression=None,
        ) as server:
            self.port = _port(server)
            self._ready.set()
            await self._stopping.wait()
            self._abort_all()

    def _abort_all(self) -> None:
        for connection in list(self._live):
            connection.transport.abort()

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        with self._lock:
            self._handshakes += 1
        if self._stall:
            # Hold the upgrade until told otherwise (or stopping), then refuse it.
            assert self._unstalled is not None
            self._unstalled.clear()  # a later release is scheduled on this loop, after this
            await self._unstalled.wait()
            return connection.respond(503, "Stalled by the stand-in\n")
        if self.refuse_status is not None:
            return connection.respond(self.refuse_status, "Refused by the stand-in\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        url = urlsplit(ws.request.path if ws.request else "/")
        headers = {k.lower(): v for k, v in ws.request.headers.raw_items()} if ws.request else {}
        with self._lock:
            record = ConnectionRecord(
                number=len(self._connections) + 1,
                path=url.path,
                query=dict(parse_qsl(url.query)),
                headers=headers,
            )
            self._connections.append(record)
        self._live.add(ws)
        turn: _Turn | None = None
        try:
            async for message in ws:
                if isinstance(message, str):
                    turn = await self._text(ws, record, turn, message)
                else:
                    turn = await self._binary(ws, record, turn, message)
                if record.ended:
                    return
            record.ended = "closed by the client"
        except ConnectionClosed:
            record.ended = record.ended or "connection lost"
        finally:
            self._live.discard(ws)

    async def _text(
        self, ws: ServerConnection, record: ConnectionRecord, turn: _Turn | None, message: str
    ) -> _Turn | None:
        headers, body = _parse_text(message)
        path = headers.get("path", "").lower()
        payload: dict[str, Any] = json.loads(body) if body.strip() else {}
        if path == "speech.config":
            record.speech_config = payload
        elif path == "speech.context":
            record.speech_contexts.append(payload)
            diarization = payload.get("phraseDetection", {}).get("speakerDiarization") or {}
            base = int(diarization.get("audioOffsetMS") or 0) * TICKS_PER_MS
            request_id = headers.get("x-requestid", uuid.uuid4().hex)
            return self._new_turn(request_id, base)
        elif path == "telemetry":
            record.telemetry += 1
        return turn

    def _new_turn(self, request_id: str, base: int) -> _Turn:
        pending = [p for p in self.script if _ticks(p.end) > base]
        return _Turn(request_id=request_id, base=base, pending=pending)

    async def _binary(
        self, ws: ServerConnection, record: ConnectionRecord, turn: _Turn | None, message: bytes
    ) -> _Turn | None:
        size = int.from_bytes(message[:2], "big")
        headers = _parse_headers(message[2 : 2 + size].decode())
        data = message[2 + size :]
        if headers.get("path", "").lower() != "audio":
            return turn
        request_id = headers.get("x-requestid", "")
        if turn is None or turn.request_id != request_id:
            turn = self._new_turn(request_id, turn.base if turn else 0)
        if not turn.started:
            turn.started = True
            record.turns += 1
            context = {"context": {"serviceTag": uuid.uuid4().hex}}
            await self._send(ws, record, turn, "turn.start", context)
        if not data:
            await self._end_of_audio(ws, record, turn)
            return turn
        if data.startswith(b"RIFF") and len(data) >= WAV_HEADER_BYTES:
            record.wav_header = data[:WAV_HEADER_BYTES]
            turn.bytes_per_second = int.from_bytes(data[28:32], "little") or 32000
            data = data[WAV_HEADER_BYTES:]
        record.audio_bytes += len(data)
        turn.received += len(data)
        if self.voiced_only:
            turn.audio += data
        await self._progress(ws, record, turn)
        return turn

    async def _progress(self, ws: ServerConnection, record: ConnectionRecord, turn: _Turn) -> None:
        if self.drop_at is not None and not self._dropped and turn.position >= _ticks(self.drop_at):
            self._dropped = True
            if self.drop_code is None:
                record.ended = "dropped"
                ws.transport.abort()
            else:
                record.ended = f"closed with {self.drop_code}"
                await ws.close(self.drop_code, self.drop_reason)
            return
        while turn.pending:
            phrase = turn.pending[0]
            if self.voiced_only and not self._voiced(turn, phrase):
                if turn.position < _ticks(phrase.end):
                    return
                turn.pending.pop(0)  # silence in this session: another speaker's phrase
                continue
            if not turn.speech_started and turn.position >= _ticks(phrase.start):
                turn.speech_started = True
                offset = max(_ticks(phrase.start) - turn.base, 0)
                await self._send(ws, record, turn, "speech.startDetected", {"Offset": offset})
            if self.hypotheses:
                await self._hypotheses(ws, record, turn, phrase)
            if turn.position < _ticks(phrase.end):
                return
            turn.pending.pop(0)
            await self._phrase(ws, record, turn, phrase)

    @staticmethod
    def _voiced(turn: _Turn, phrase: ScriptedPhrase) -> bool:
        """Whether this session's audio carries the phrase: sound in at least 80 % of its
        100 ms windows received so far (a phrase overlapping another speaker's is not)."""
        rate = turn.bytes_per_second

        def at(tick: int) -> int:
            index = max(tick - turn.base, 0) * rate // TICKS_PER_SECOND
            return min(index - index % 2, len(turn.audio))

        chunk = turn.audio[at(_ticks(phrase.start)) : at(_ticks(phrase.end))]
        samples = np.frombuffer(chunk, dtype="<i2")
        window = rate // 20  # samples in 100 ms (rate is bytes per second)
        windows = samples.size // window
        if windows == 0:
            return False
        loud = np.abs(samples[: windows * window].reshape(windows, window)).max(axis=1) > 300
        return float(loud.mean()) >= 0.8

    async def _hypotheses(
        self, ws: ServerConnection, record: ConnectionRecord, turn: _Turn, phrase: ScriptedPhrase
    ) -> None:
        """One hypothesis per word heard, however the audio was chunked; the phrase ends it."""
        words = phrase.words()
        key = id(phrase)
        heard = sum(1 for _, offset, duration in words if offset + duration <= turn.position)
        heard = min(heard, len(words) - 1)  # the last word is reported by the phrase itself
        start = _ticks(phrase.start)
        diarization = self._diarization(record)
        # The SDK sends the flag as a string ("True").
        intermediates = str(diarization.get("diarizeIntermediates", "")).lower() == "true"
        speaker = phrase.speaker if intermediates else None
        for count in range(turn.words_sent.get(key, 0) + 1, heard + 1):
            turn.words_sent[key] = count
            _, last_offset, last_duration = words[count - 1]
            body = {
                "Text": " ".join(word for word, _, _ in words[:count]),
                "Offset": max(start - turn.base, 0),
                "Duration": last_offset + last_duration - start,
                "SpeakerId": speaker or "Unknown",
            }
            await self._send(ws, record, turn, "speech.hypothesis", body)

    async def _phrase(
        self, ws: ServerConnection, record: ConnectionRecord, turn: _Turn, phrase: ScriptedPhrase
    ) -> None:
        start, end = _ticks(phrase.start), _ticks(phrase.end)
        body: dict[str, Any] = {
            "RecognitionStatus": "Success",
            "Offset": max(start - turn.base, 0),
            "Duration": end - start,
            "DisplayText": phrase.text,
            "SpeakerId": phrase.speaker or "Unknown",
        }
        options = self._detailed_options(record)
        if options is not None:
            best: dict[str, Any] = {
                "Confidence": phrase.confidence,
                "Lexical": phrase.lexical,
                "ITN": phrase.lexical,
                "MaskedITN": phrase.lexical,
                "Display": phrase.text,
            }
            if "WordTimings" in options:
                best["Words"] = [
                    {"Word": word, "Offset": offset - turn.base, "Duration": duration}
                    | ({"Confidence": phrase.confidence} if "WordConfidence" in options else {})
                    for word, offset, duration in phrase.words()
                ]
            body["NBest"] = [best]
        await self._send(ws, record, turn, "speech.phrase", body)

    async def _end_of_audio(
        self, ws: ServerConnection, record: ConnectionRecord, turn: _Turn
    ) -> None:
        record.end_of_audio = True
        if self.end_of_audio_delay:
            await asyncio.sleep(self.end_of_audio_delay)
        # The service finalises what it has heard of a phrase when the audio ends.
        while turn.pending and _ticks(turn.pending[0].start) < turn.position:
            await self._phrase(ws, record, turn, turn.pending.pop(0))
        end = turn.position - turn.base
        await self._send(ws, record, turn, "speech.endDetected", {"Offset": end})
        await self._send(
            ws,
            record,
            turn,
            "speech.phrase",
            {"RecognitionStatus": "EndOfDictation", "Offset": end, "Duration": 0},
        )
        await self._send(ws, record, turn, "turn.end", {})

    async def _send(
        self,
        ws: ServerConnection,
        record: ConnectionRecord,
        turn: _Turn,
        path: str,
        body: dict[str, Any],
    ) -> None:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        headers = (
            f"Path:{path}\r\nX-RequestId:{turn.request_id}\r\n"
            f"X-Timestamp:{stamp.replace('+00:00', 'Z')}\r\n"
            "Content-Type:application/json; charset=utf-8\r\n\r\n"
        )
        record.sent.append((path, body))
        await ws.send(headers + json.dumps(body))

    # --- what the client asked for --------------------------------------------------------

    @staticmethod
    def _latest_context(record: ConnectionRecord) -> dict[str, Any]:
        return record.speech_contexts[-1] if record.speech_contexts else {}

    def _diarization(self, record: ConnectionRecord) -> dict[str, Any]:
        detection = self._latest_context(record).get("phraseDetection") or {}
        return dict(detection.get("speakerDiarization") or {})

    def _detailed_options(self, record: ConnectionRecord) -> list[str] | None:
        """The detailed-output options requested, or None for simple output."""
        output = self._latest_context(record).get("phraseOutput") or {}
        detailed = str(output.get("format", "")).lower() == "detailed"
        if not detailed and record.query.get("format", "").lower() != "detailed":
            return None
        return list((output.get("detailed") or {}).get("options") or [])


def _port(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("the Speech stand-in has no listening socket")


def _parse_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _parse_text(message: str) -> tuple[dict[str, str], str]:
    head, _, body = message.partition("\r\n\r\n")
    return _parse_headers(head), body


@pytest.fixture
def speech_standin() -> Iterator[SpeechStandIn]:
    """A started stand-in with an empty script; tests set ``script`` and failure knobs."""
    standin = SpeechStandIn().start()
    try:
        yield standin
    finally:
        with contextlib.suppress(Exception):
            standin.stop()
