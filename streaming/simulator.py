"""Simulate ACS live-transcription calls against Callsite's ingest WebSocket.

A *script* is a TOML file (read with :mod:`tomllib`) describing a conversation::

    title = "Billing question"          # required
    locale = "en-US"                    # optional, default "en-US"

    [[speakers]]                        # one or more
    key = "agent"                       # name used by the turns below
    raw_id = "8:acs:..."                # participantRawID sent for this speaker

    [[turns]]                           # one or more, spoken in order, never overlapping
    speaker = "agent"                   # a speakers.key
    text = "Thank you for calling..."   # display text of the final result
    pause = 0.8                         # optional, seconds of silence before the turn (0.4)
    confidence = 0.93                   # optional, 0..1 (0.9)
    wpm = 160                           # optional, speaking rate in words per minute (150)

:func:`plan_packets` turns a script into timed JSON packets shaped like ACS's
(``TranscriptionMetadata`` first, then ``Intermediate`` and ``Final``
``TranscriptionData``); :func:`send_packets` replays any such plan over a WebSocket
in real time (or faster), and :func:`stream_call` / :func:`simulate_calls` combine the
two for one or many concurrent calls. An audio source (a WAV file turned into
``AudioMetadata`` / ``AudioData`` packets) can produce its own plan and reuse
:func:`send_packets`. See ``docs/simulator.md``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

TICKS_PER_SECOND = 10_000_000  # ACS offsets and durations are 100-ns ticks
DEFAULT_LOCALE = "en-US"
DEFAULT_PAUSE = 0.4
DEFAULT_CONFIDENCE = 0.9
DEFAULT_WPM = 150.0
MAX_WPM = 1000.0
FINAL_DELAY = 0.3  # seconds between the end of speech and the Final result
INTERMEDIATE_WORDS = 2
INTERMEDIATE_SECONDS = 0.5
DEMO_DIR = Path(__file__).with_name("demo")
DEFAULT_SCRIPT = DEMO_DIR / "billing_call.toml"
METADATA_KIND = "TranscriptionMetadata"
DATA_KIND = "TranscriptionData"


class ScriptError(ValueError):
    """A script file is missing, not valid TOML, or breaks the script format."""


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
class Speaker:
    """A participant of a script: the key turns refer to and the ACS raw id to send."""

    key: str
    raw_id: str


@dataclass(frozen=True)
class Turn:
    """One utterance: who speaks, what, after how much silence, and how fast."""

    speaker: str
    text: str
    pause: float = DEFAULT_PAUSE
    confidence: float = DEFAULT_CONFIDENCE
    wpm: float = DEFAULT_WPM


@dataclass(frozen=True)
class Script:
    """A whole scripted call."""

    title: str
    locale: str
    speakers: tuple[Speaker, ...]
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class ScheduledPacket:
    """A wire packet and when to send it, in seconds from the start of the stream."""

    at: float
    payload: str
    final: bool
    # Lets senders count packet types without re-parsing JSON; audio plans will add more.
    kind: str = DATA_KIND


@dataclass(frozen=True)
class CallResult:
    """What one simulated call sent; ``elapsed`` is seconds from handshake to close."""

    call_connection_id: str
    packets_sent: int
    finals_sent: int
    intermediates_sent: int
    elapsed: float


# --- Loading scripts ------------------------------------------------------------------------


def load_script(path: str | Path) -> Script:
    """Read and validate a TOML script; raise :class:`ScriptError` naming file and field."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read script: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{path}: not valid TOML: {exc}") from exc
    return _parse_script(data, str(path))


def _fail(source: str, where: str, message: str) -> NoReturn:
    raise ScriptError(f"{source}: {where}: {message}")


def _check_keys(table: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    # Unknown keys are almost always typos ("paus"), which would otherwise silently default.
    unknown = sorted(set(table) - allowed)
    if unknown:
        _fail(source, where, f"unknown key(s) {', '.join(unknown)}")


def _text(table: Mapping[str, Any], key: str, source: str, where: str, default: str = "") -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        _fail(source, f"{where}{key}", f"must be a non-empty string, got {value!r}")
    return value.strip()


def _number(table: Mapping[str, Any], key: str, default: float, source: str, where: str) -> float:
    value = table.get(key, default)
    # TOML booleans are Python bools, which are ints: reject them explicitly.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(source, f"{where}{key}", f"must be a number, got {value!r}")
    return float(value)


def _tables(data: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        _fail(source, key, f"needs at least one [[{key}]] table")
    return value


def _turn_problem(turn: Turn) -> tuple[str, str] | None:
    """The first field of ``turn`` that breaks the script format and why, or None."""
    if not _words(turn.text):
        return "text", f"has no words: {turn.text!r}"
    if not (turn.pause >= 0 and math.isfinite(turn.pause)):
        return "pause", f"must be >= 0 seconds, got {turn.pause}"
    if not 0 <= turn.confidence <= 1:
        return "confidence", f"must be between 0 and 1, got {turn.confidence}"
    if not 0 < turn.wpm <= MAX_WPM:
        return "wpm", f"must be > 0 and <= {MAX_WPM:g}, got {turn.wpm}"
    return None


def _parse_script(data: Mapping[str, Any], source: str) -> Script:
    _check_keys(data, {"title", "locale", "speakers", "turns"}, source, "top level")
    title = _text(data, "title", source, "")
    locale = _text(data, "locale", source, "", DEFAULT_LOCALE)
    speakers: list[Speaker] = []
    for i, table in enumerate(_tables(data, "speakers", source)):
        where = f"speakers[{i}]."
        _check_keys(table, {"key", "raw_id"}, source, where.rstrip("."))
        speaker = Speaker(_text(table, "key", source, where), _text(table, "raw_id", source, where))
        if any(s.key == speaker.key for s in speakers):
            _fail(source, f"{where}key", f"duplicate speaker key {speaker.key!r}")
        speakers.append(speaker)
    keys = [s.key for s in speakers]
    turns: list[Turn] = []
    for i, table in enumerate(_tables(data, "turns", source)):
        where = f"turns[{i}]."
        _check_keys(table, {"speaker", "text", "pause", "confidence", "wpm"}, source, where[:-1])
        speaker_key = _text(table, "speaker", source, where)
        if speaker_key not in keys:
            _fail(source, f"{where}speaker", f"unknown speaker {speaker_key!r} (known: {keys})")
        turn = Turn(
            speaker_key,
            " ".join(_text(table, "text", source, where).split()),
            _number(table, "pause", DEFAULT_PAUSE, source, where),
            _number(table, "confidence", DEFAULT_CONFIDENCE, source, where),
            _number(table, "wpm", DEFAULT_WPM, source, where),
        )
        if problem := _turn_problem(turn):
            _fail(source, f"{where}{problem[0]}", problem[1])
        turns.append(turn)
    return Script(title, locale, tuple(speakers), tuple(turns))


# --- Planning packets -----------------------------------------------------------------------


def _lexical(token: str) -> str:
    """ACS's per-word form: lower case, leading/trailing punctuation removed."""
    start, end = 0, len(token)
    while start < end and not token[start].isalnum():
        start += 1
    while end > start and not token[end - 1].isalnum():
        end -= 1
    return token[start:end].lower()


def _words(text: str) -> list[tuple[str, int]]:
    """Spoken words of ``text`` as (lexical form, display tokens up to and including it)."""
    # Tokens such as "-" or "…" stay in the display text but are not spoken words.
    return [(w, i + 1) for i, t in enumerate(text.split()) if (w := _lexical(t))]


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


def _split_ticks(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` by ``weights``; rounding the cumulative sums keeps the total exact."""
    whole = sum(weights)
    bounds = [0]
    running = 0
    for weight in weights:
        running += weight
        bounds.append(round(total * running / whole))
    return [b - a for a, b in itertools.pairwise(bounds)]


def _dump(kind: str, body: Mapping[str, Any]) -> str:
    key = kind[0].lower() + kind[1:]
    # ensure_ascii=False: ACS sends UTF-8 text, and receivers must cope with it.
    return json.dumps({"kind": kind, key: body}, ensure_ascii=False, separators=(",", ":"))


def plan_packets(
    script: Script,
    *,
    call_connection_id: str,
    correlation_id: str,
    subscription_id: str | None = None,
) -> list[ScheduledPacket]:
    """Lay a script out as ACS transcription packets, sorted by send time.

    Pure and deterministic. Each turn starts ``pause`` seconds after the previous turn's
    speech ends; its words last ``60 / wpm`` seconds on average, split by word length.
    Intermediates (growing word prefixes) are sent as their last word ends, roughly every
    two words or half second; the Final follows the end of speech by ``FINAL_DELAY``.
    """
    raw_ids = {s.key: s.raw_id for s in script.speakers}
    if subscription_id is None:
        subscription_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"callsite-sim:{call_connection_id}"))
    metadata = {
        "subscriptionId": subscription_id,
        "locale": script.locale,
        "callConnectionId": call_connection_id,
        "correlationId": correlation_id,
    }
    packets = [ScheduledPacket(0.0, _dump(METADATA_KIND, metadata), False, METADATA_KIND)]
    cursor = 0  # ticks: end of the previous turn's speech
    for index, turn in enumerate(script.turns):
        # Scripts built in code skip load_script, so check them here too.
        if turn.speaker not in raw_ids:
            raise ScriptError(f"turns[{index}].speaker: unknown speaker {turn.speaker!r}")
        if problem := _turn_problem(turn):
            raise ScriptError(f"turns[{index}].{problem[0]}: {problem[1]}")
        tokens = turn.text.split()
        words = _words(turn.text)
        start = cursor + _ticks(turn.pause)
        total = _ticks(len(words) * 60.0 / turn.wpm)
        durations = _split_ticks(total, [len(w) for w, _ in words])
        raw_id = raw_ids[turn.speaker]
        spoken = emitted_words = emitted_ticks = 0
        for n, duration in enumerate(durations, start=1):
            spoken += duration
            due = n - emitted_words >= INTERMEDIATE_WORDS
            slow = spoken - emitted_ticks >= _ticks(INTERMEDIATE_SECONDS)
            if not (due or slow or n == len(words)):
                continue
            emitted_words, emitted_ticks = n, spoken
            # The last intermediate carries the whole display text, trailing "—" included.
            shown = len(tokens) if n == len(words) else words[n - 1][1]
            body = {
                "text": " ".join(tokens[:shown]),
                "format": "display",
                "offset": start,
                "duration": spoken,
                "participantRawID": raw_id,
                "resultStatus": "Intermediate",
            }
            packets.append(
                ScheduledPacket((start + spoken) / TICKS_PER_SECOND, _dump(DATA_KIND, body), False)
            )
        word_offsets = itertools.accumulate(durations[:-1], initial=start)
        body = {
            "text": " ".join(tokens),
            "format": "display",
            "confidence": turn.confidence,
            "offset": start,
            "duration": total,
            "words": [
                {"text": w, "offset": o, "duration": d}
                for (w, _), o, d in zip(words, word_offsets, durations, strict=True)
            ],
            "participantRawID": raw_id,
            "resultStatus": "Final",
        }
        at = (start + total) / TICKS_PER_SECOND + FINAL_DELAY
        packets.append(ScheduledPacket(at, _dump(DATA_KIND, body), True))
        cursor = start + total
    # Stable: a Final that lands after the next turn's first intermediate keeps plan order.
    packets.sort(key=lambda p: p.at)
    return packets


# --- Sending --------------------------------------------------------------------------------


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


async def send_packets(
    url: str,
    packets: Sequence[ScheduledPacket],
    *,
    call_connection_id: str,
    correlation_id: str,
    token: str | None,
    speed: float = 1.0,
    on_packet: Callable[[ScheduledPacket], None] | None = None,
) -> CallResult:
    """Open a WebSocket the way ACS does and send ``packets`` on schedule, then close (1000).

    Error messages name ``url`` as given, never the query with the token.
    """
    scale = _time_scale(speed)
    target = _with_query(url, token=token, call=call_connection_id)
    headers = {
        "x-ms-call-connection-id": call_connection_id,
        "x-ms-call-correlation-id": correlation_id,
    }
    try:
        # proxy=None: ACS connects straight to the endpoint; an env proxy would skew timing.
        ws = await connect(target, additional_headers=headers, proxy=None)
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise SimulatorError(f"{url} rejected the WebSocket handshake: HTTP {status}") from exc
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise SimulatorError(f"cannot connect to {url}: {exc}") from exc
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = finals = intermediates = 0
    try:
        for packet in packets:
            if scale:
                # Absolute deadlines from one monotonic start, so sleep overshoot never adds up.
                delay = started + packet.at * scale - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await ws.send(packet.payload)
            sent += 1
            if packet.final:
                finals += 1
            elif packet.kind == DATA_KIND:
                intermediates += 1
            if on_packet is not None:
                on_packet(packet)
        await ws.close(code=1000, reason="call ended")
    except ConnectionClosed as exc:
        close = exc.rcvd
        why = f"code {close.code} {close.reason!r}" if close else "no close frame"
        raise SimulatorError(
            f"{url} closed call {call_connection_id} after {sent} of {len(packets)} packets ({why})"
        ) from exc
    finally:
        await ws.close()
    return CallResult(call_connection_id, sent, finals, intermediates, loop.time() - started)


async def stream_call(
    url: str,
    *,
    call_connection_id: str,
    script: Script,
    token: str | None,
    speed: float = 1.0,
    correlation_id: str | None = None,
    on_packet: Callable[[ScheduledPacket], None] | None = None,
) -> CallResult:
    """Play one scripted call to ``url`` (query gets ``token`` and ``call`` added)."""
    correlation_id = correlation_id or str(uuid.uuid4())
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
    )


async def simulate_calls(
    url: str,
    *,
    script: Script,
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
    """
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    scale = _time_scale(speed)
    report = progress or (lambda line: None)
    total_finals = len(script.turns)
    call_ids = [f"{call_prefix}-{uuid.uuid4().hex[:12]}" for _ in range(calls)]
    results: dict[str, CallResult] = {}
    failures: list[tuple[str, SimulatorError]] = []

    async def run(index: int, call_id: str) -> None:
        await asyncio.sleep(index * stagger * scale)
        finals = 0

        def on_packet(packet: ScheduledPacket) -> None:
            nonlocal finals
            if packet.kind == METADATA_KIND:
                report(f"call {call_id} connected")
            elif packet.final:
                finals += 1
                report(f"call {call_id}: {finals}/{total_finals} finals")

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
        report(f"call {call_id} done: {result.finals_sent} finals in {result.elapsed:.1f} s")

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
