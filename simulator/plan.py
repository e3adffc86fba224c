"""Calls laid out as ACS packets on a schedule: what the sender plays, when.

:func:`plan_packets` turns a transcription script into timed packets shaped like ACS's
(``TranscriptionMetadata`` first, then ``Intermediate`` and ``Final`` ``TranscriptionData``);
:func:`plan_audio_packets` lays an audio call out as ``AudioMetadata`` then one 20 ms
``AudioData`` frame per participant per tick. Both encode with ``simulator.wire``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import overload

from simulator import wire
from simulator.audio import AudioScript
from simulator.scripts import TONE_GAP, Script, ScriptError, Signal, _turn_problem, _words
from simulator.wire import AUDIO_DATA, AUDIO_DATA_HEAD, AUDIO_METADATA, TRANSCRIPTION_METADATA
from streaming.units import FRAMES_PER_SECOND, TICKS_PER_SECOND

FINAL_DELAY = 0.3  # seconds between the end of speech and the Final result
SIGNAL_LEAD = 0.5  # seconds after the previous turn before a signal in the pause begins
CALLBACK = "Callback"  # a Call Automation callback body, POSTed to /acs/callbacks/<id>/
INTERMEDIATE_WORDS = 2
INTERMEDIATE_SECONDS = 0.5


@dataclass(frozen=True)
class ScheduledPacket:
    """A wire packet and when to send it, in seconds from the start of the stream."""

    at: float
    payload: str
    final: bool
    # Lets senders count packet types without re-parsing JSON.
    kind: str = wire.TRANSCRIPTION_DATA


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


class Presence:
    """Who is muted or on hold, as the ParticipantsUpdated callbacks of one call say it."""

    def __init__(self, call_connection_id: str, raw_ids: Sequence[str]) -> None:
        self.call_connection_id = call_connection_id
        self.flags = {raw_id: {"isMuted": False, "isOnHold": False} for raw_id in raw_ids}
        self.sequence = 0

    def callback(self, at: float, raw_id: str, flag: str, value: bool) -> ScheduledPacket:
        """A ParticipantsUpdated event listing everyone; its ``time`` is set when it is sent
        (the call's start plus ``at``), so a hold lasts what the script says at any speed."""
        self.flags[raw_id][flag] = value
        self.sequence += 1
        participants = [
            {
                "identifier": {"rawId": r, "kind": _identifier_kind(r)},
                "isMuted": f["isMuted"],
                "isOnHold": f["isOnHold"],
            }
            for r, f in self.flags.items()
        ]
        source = f"calling/callConnections/{self.call_connection_id}"
        event = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}/{self.sequence}")),
            "source": source,
            "type": "Microsoft.Communication.ParticipantsUpdated",
            "data": {
                "participants": participants,
                "sequenceNumber": self.sequence,
                "callConnectionId": self.call_connection_id,
                "publicEventType": "Microsoft.Communication.ParticipantsUpdated",
            },
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "subject": source,
        }
        return ScheduledPacket(at, json.dumps([event]), False, CALLBACK)


def _identifier_kind(raw_id: str) -> str:
    return "phoneNumber" if raw_id.startswith("4:") else "communicationUser"


def signal_packets(signal: Signal, start: float, presence: Presence) -> list[ScheduledPacket]:
    """A signal's packets from ``start`` (seconds): callbacks for a hold or a mute (its start
    and its end), or one ``DtmfData`` per tone, ``TONE_GAP`` apart (stamped when sent)."""
    if signal.kind == "dtmf":
        return [
            ScheduledPacket(
                start + n * TONE_GAP,
                wire.dtmf_data(tone, participant=signal.speaker),
                False,
                wire.DTMF_DATA,
            )
            for n, tone in enumerate(signal.tones)
        ]
    flag = "isOnHold" if signal.kind == "hold" else "isMuted"
    return [
        presence.callback(start, signal.speaker, flag, True),
        presence.callback(start + signal.seconds, signal.speaker, flag, False),
    ]


def signal_length(signal: Signal) -> float:
    """How long a signal takes, in seconds."""
    return len(signal.tones) * TONE_GAP if signal.kind == "dtmf" else signal.seconds


def plan_signals(
    signals: Sequence[Signal], *, call_connection_id: str, raw_ids: Sequence[str]
) -> list[ScheduledPacket]:
    """The packets of timed signals (an audio script's), sorted by send time."""
    presence = Presence(call_connection_id, raw_ids)
    packets: list[ScheduledPacket] = []
    for signal in sorted(signals, key=lambda s: s.at or 0.0):
        packets += signal_packets(signal, signal.at or 0.0, presence)
    packets.sort(key=lambda p: p.at)
    return packets


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
    packets = [
        ScheduledPacket(
            0.0, wire.packet(TRANSCRIPTION_METADATA, metadata), False, TRANSCRIPTION_METADATA
        )
    ]
    cursor = 0  # ticks: end of the previous turn's speech
    presence = Presence(call_connection_id, [s.raw_id for s in script.speakers])
    for index, turn in enumerate(script.turns):
        # Scripts built in code skip load_script, so check them here too.
        if turn.speaker not in raw_ids:
            raise ScriptError(f"turns[{index}].speaker: unknown speaker {turn.speaker!r}")
        if problem := _turn_problem(turn):
            raise ScriptError(f"turns[{index}].{problem[0]}: {problem[1]}")
        tokens = turn.text.split()
        words = _words(turn.text)
        # Signals in the pause before this turn: the pause grows to fit them.
        signal_at = cursor / TICKS_PER_SECOND + SIGNAL_LEAD
        for signal in (s for s in script.signals if s.before == index + 1):
            packets += signal_packets(signal, signal_at, presence)
            signal_at += signal_length(signal) + FINAL_DELAY
        start = cursor + _ticks(turn.pause)
        if signal_at > cursor / TICKS_PER_SECOND + SIGNAL_LEAD:
            start = max(start, _ticks(signal_at) + _ticks(turn.pause))
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
                ScheduledPacket(
                    (start + spoken) / TICKS_PER_SECOND,
                    wire.packet(wire.TRANSCRIPTION_DATA, body),
                    False,
                )
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
        if turn.sentiment is not None:
            body["sentimentAnalysisResult"] = {"sentiment": turn.sentiment}
        if turn.language is not None:
            body["languageIdentified"] = turn.language
        at = (start + total) / TICKS_PER_SECOND + FINAL_DELAY
        packets.append(ScheduledPacket(at, wire.packet(wire.TRANSCRIPTION_DATA, body), True))
        cursor = start + total
    # Stable: a Final that lands after the next turn's first intermediate keeps plan order.
    packets.sort(key=lambda p: p.at)
    return packets


class AudioPlan(Sequence[ScheduledPacket]):
    """The packets of one audio call, built on demand from the script's shared frames.

    Index 0 is ``AudioMetadata`` (at 0 s); then, for each 20 ms tick, one ``AudioData`` per
    track in track order, sent when the tick's audio is complete (``(tick + 1) / 50`` s).
    Payloads are the shared frame JSON with this call's timestamp put in front, so a plan
    costs almost no memory and planning many concurrent calls encodes nothing twice.
    """

    def __init__(self, script: AudioScript, metadata: str, start: datetime) -> None:
        self.script = script
        self.metadata = metadata
        self.start = start
        self._frames = script._encoded
        self._tracks = len(script.tracks)

    def __len__(self) -> int:
        return 1 + self.script.frame_count * self._tracks

    @overload
    def __getitem__(self, index: int) -> ScheduledPacket: ...

    @overload
    def __getitem__(self, index: slice) -> list[ScheduledPacket]: ...

    def __getitem__(self, index: int | slice) -> ScheduledPacket | list[ScheduledPacket]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("audio plan index out of range")
        if index == 0:
            return ScheduledPacket(0.0, self.metadata, False, AUDIO_METADATA)
        tick, track = divmod(index - 1, self._tracks)
        payload = AUDIO_DATA_HEAD + self.timestamp(tick) + self._frames[track][tick]
        return ScheduledPacket((tick + 1) / FRAMES_PER_SECOND, payload, False, AUDIO_DATA)

    def __iter__(self) -> Iterator[ScheduledPacket]:
        yield ScheduledPacket(0.0, self.metadata, False, AUDIO_METADATA)
        for tick in range(self.script.frame_count):
            head = AUDIO_DATA_HEAD + self.timestamp(tick)
            at = (tick + 1) / FRAMES_PER_SECOND
            for frames in self._frames:
                yield ScheduledPacket(at, head + frames[tick], False, AUDIO_DATA)

    def timestamp(self, tick: int) -> str:
        """The tick's ACS timestamp: call start + 20 ms per tick, UTC, milliseconds and Z."""
        stamp = self.start + timedelta(milliseconds=tick * 1000 // FRAMES_PER_SECOND)
        return stamp.isoformat(timespec="milliseconds")[:-6] + "Z"


def plan_audio_packets(
    script: AudioScript,
    *,
    call_connection_id: str,
    start: datetime | None = None,
    subscription_id: str | None = None,
) -> AudioPlan:
    """Lay an audio call out as ACS media packets: ``AudioMetadata``, then 20 ms ``AudioData``.

    ``start`` (default: now) is the wall-clock time of the first sample, cut to the
    millisecond (naive means UTC); tick ``n`` is stamped ``start + n * 20 ms``. Unmixed frames
    carry their track's ``participantRawID``; the mixed stream has none. ``silent`` is true
    for frames whose RMS is below ``SILENT_BELOW_DBFS`` (padding and digital silence included).
    """
    if subscription_id is None:
        subscription_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"callsite-sim:{call_connection_id}"))
    metadata = {
        "subscriptionId": subscription_id,
        "encoding": "PCM",
        "sampleRate": script.sample_rate,
        "channels": 1,
        "length": script.frame_bytes,
    }
    start = start or datetime.now(UTC)
    # A naive start is taken as UTC; milliseconds are all ACS sends.
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    start = start.replace(microsecond=start.microsecond // 1000 * 1000)
    return AudioPlan(script, wire.packet(AUDIO_METADATA, metadata), start)
