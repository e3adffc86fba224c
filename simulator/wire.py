"""ACS's wire format, written: the one encoder of ACS packets in the project.

The simulator plays calls with it, and the tests and the benchmarks build their packets with
it, so there is one place that knows how ACS writes ``TranscriptionData``, ``AudioData`` and
the rest (docs/simulator.md; the shapes are those of ACS-PROTOCOL's fixtures). Everything
returns the JSON text of one WebSocket message.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

TRANSCRIPTION_METADATA = "TranscriptionMetadata"
TRANSCRIPTION_DATA = "TranscriptionData"
AUDIO_METADATA = "AudioMetadata"
AUDIO_DATA = "AudioData"
DTMF_DATA = "DtmfData"
SILENT_BELOW_DBFS = -50.0  # frames quieter than this (RMS, dB full scale) are sent as silent
# An AudioData message up to its timestamp's value; ``audio_frame_tails`` makes the rest.
AUDIO_DATA_HEAD = '{"kind":"AudioData","audioData":{"timestamp":"'


def packet(kind: str, body: Mapping[str, Any]) -> str:
    """``{"kind": kind, "<kind in camelCase>": body}``, compact, UTF-8 text as it is."""
    key = kind[0].lower() + kind[1:]
    # ensure_ascii=False: ACS sends UTF-8 text, and receivers must cope with it.
    return json.dumps({"kind": kind, key: body}, ensure_ascii=False, separators=(",", ":"))


def timestamp(moment: datetime) -> str:
    """ACS's timestamp: UTC, milliseconds, ``Z`` (``2024-11-15T19:16:12.020Z``)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def transcription_metadata(
    *,
    call_connection_id: str,
    correlation_id: str = "",
    subscription_id: str = "",
    locale: str = "en-US",
    **extra: Any,
) -> str:
    body = {
        "subscriptionId": subscription_id,
        "locale": locale,
        "callConnectionId": call_connection_id,
        "correlationId": correlation_id,
        **extra,
    }
    return packet(TRANSCRIPTION_METADATA, body)


def transcription_data(
    text: str,
    *,
    final: bool = True,
    offset: int | None = None,
    duration: int | None = None,
    participant: str | None = None,
    confidence: float | None = None,
    words: Sequence[Mapping[str, Any]] | None = None,
    **extra: Any,
) -> str:
    """A ``TranscriptionData`` result (``Final`` or ``Intermediate``); None fields are left out."""
    body: dict[str, Any] = {"text": text, "format": "display"}
    if confidence is not None:
        body["confidence"] = confidence
    if offset is not None:
        body["offset"] = offset
    if duration is not None:
        body["duration"] = duration
    if words is not None:
        body["words"] = list(words)
    if participant is not None:
        body["participantRawID"] = participant
    body["resultStatus"] = "Final" if final else "Intermediate"
    body.update(extra)
    return packet(TRANSCRIPTION_DATA, body)


def audio_metadata(
    *,
    sample_rate: int = 16000,
    encoding: str = "PCM",
    channels: int = 1,
    subscription_id: str = "",
) -> str:
    body = {
        "subscriptionId": subscription_id,
        "encoding": encoding,
        "sampleRate": sample_rate,
        "channels": channels,
        "length": sample_rate * 2 // 50,
    }
    return packet(AUDIO_METADATA, body)


def audio_data(
    pcm: bytes,
    *,
    at: datetime | str | None = None,
    participant: str | None = None,
    silent: bool | None = None,
) -> str:
    """One ``AudioData`` frame; ``at`` is its timestamp (a datetime, or ACS's text)."""
    body: dict[str, Any] = {"data": base64.b64encode(pcm).decode("ascii")}
    if at is not None:
        body["timestamp"] = at if isinstance(at, str) else timestamp(at)
    if participant is not None:
        body["participantRawID"] = participant
    if silent is not None:
        body["silent"] = silent
    return packet(AUDIO_DATA, body)


def dtmf_data(tone: str, *, at: datetime | None = None, participant: str | None = None) -> str:
    body: dict[str, Any] = {"data": tone}
    if at is not None:
        body["timestamp"] = timestamp(at)
    if participant is not None:
        body["participantRawID"] = participant
    return packet(DTMF_DATA, body)


def frame_time(start: datetime, tick: int) -> str:
    """The timestamp of the ``tick``-th 20 ms frame after ``start``."""
    return timestamp(start + timedelta(milliseconds=tick * 20))


def audio_frame_tails(
    pcm: bytes, raw_id: str | None, frame_bytes: int, frames: int
) -> tuple[str, ...]:
    """Each frame's ``AudioData`` JSON from just after the timestamp's value to the end.

    ``AUDIO_DATA_HEAD + timestamp + tail`` is the whole message: a call's frames are encoded
    once and only their timestamps written per call, which is what lets one load generator
    play hundreds of calls. ``silent`` is true below ``SILENT_BELOW_DBFS``.
    """
    pcm = pcm.ljust(frames * frame_bytes, b"\0")
    samples = np.frombuffer(pcm, dtype="<i2").reshape(frames, frame_bytes // 2)
    rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64), axis=1))
    silent = rms < 32768 * 10 ** (SILENT_BELOW_DBFS / 20)
    peak = np.abs(samples.astype(np.int32)).max(axis=1)
    participant = ""
    if raw_id is not None:
        participant = f',"participantRawID":{json.dumps(raw_id, ensure_ascii=False)}'
    tails: list[str] = []
    zero_tail = ""  # padding and digital silence: one shared string per track
    for index in range(frames):
        if peak[index] == 0 and zero_tail:
            tails.append(zero_tail)
            continue
        chunk = pcm[index * frame_bytes : (index + 1) * frame_bytes]
        data = binascii.b2a_base64(chunk, newline=False).decode("ascii")
        flag = "true" if silent[index] else "false"
        tail = f'"{participant},"data":"{data}","silent":{flag}}}}}'
        if peak[index] == 0:
            zero_tail = tail
        tails.append(tail)
    return tuple(tails)


# --- what an application sends back on a bidirectional media socket ---------------------------

OUTBOUND_AUDIO = "AudioData"
OUTBOUND_STOP = "StopAudio"


class OutboundError(ValueError):
    """A message an application sent to ACS that ACS could not play; says why."""


def read_outbound(message: str | bytes) -> tuple[str, bytes | None]:
    """``(kind, pcm)`` of a message an application sends ACS: ``("AudioData", <PCM>)`` or
    ``("StopAudio", None)``.

    The docs write PascalCase keys (``{"Kind": "AudioData", "AudioData": {"Data": ...}}``),
    the Java and JavaScript SDKs camelCase (``{"kind": "audioData", "audioData": {"data":
    ...}}``); ACS takes all of them, so this reads keys and kinds case-insensitively
    (ACS-PROTOCOL.md §4). Raises :class:`OutboundError` for anything else.
    """
    try:
        body = json.loads(message)
    except ValueError as error:
        raise OutboundError(f"not JSON: {error}") from error
    if not isinstance(body, dict):
        raise OutboundError("not a JSON object")
    keys = {str(key).lower(): value for key, value in body.items()}
    kind = str(keys.get("kind") or "").lower()
    if kind == "stopaudio":
        return OUTBOUND_STOP, None
    if kind != "audiodata":
        raise OutboundError(f"unknown kind {keys.get('kind')!r}")
    audio = keys.get("audiodata")
    if not isinstance(audio, dict):
        raise OutboundError("AudioData without its audioData object")
    data = {str(key).lower(): value for key, value in audio.items()}.get("data")
    if not isinstance(data, str):
        raise OutboundError("AudioData without base64 data")
    try:
        pcm = base64.b64decode(data, validate=True)
    except binascii.Error as error:
        raise OutboundError(f"bad base64: {error}") from error
    if len(pcm) % 2:
        raise OutboundError(f"{len(pcm)} bytes is not 16-bit PCM")
    return OUTBOUND_AUDIO, pcm
