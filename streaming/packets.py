"""Parse the JSON frames that ACS sends on media and transcription WebSockets.

``parse_packet`` turns one frame (text or UTF-8 bytes) into one of five frozen dataclasses, or
raises ``PacketError`` (a ``ValueError`` with a short ``reason``) and nothing else, whatever the
input, so a consumer can count a bad frame and keep the socket open. Pure stdlib, no Django.

Tolerant where ACS and its SDKs disagree (ACS-PROTOCOL.md section 10): keys match
case-insensitively at every level (of two that differ only in case the last wins, as json.loads
does for exact duplicates), and so do the values of ``kind``, ``resultStatus``, ``format`` and
``encoding``; unknown fields are ignored; optional fields may be absent or ``null``. Packets
without ``kind`` that hold one payload key (Java style) and the 2022 preview shapes
(``{"subscriptionId", "format": {...}}``, ``{"data", "timestamp", "participantId", "isSilence"}``)
are accepted.

Strict on types, so bad data fails here with a reason rather than deep inside a service: strings
must be strings, integers real integers (``true`` is not 1; a float only if integral), ticks and
rates exact ints that fit a signed 64-bit column, confidence a number in [0, 1], timestamps
ISO 8601 (naive ones taken as UTC). Ids are not validated: the official samples contain typos.

The audio path runs 50 times per second per call, so it stays cheap: one ``json.loads``, two
small lower-cased dict copies, no regular expressions, and no base64 decoding, which
``AudioData.pcm()`` does only when the audio is actually used.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeAlias

MAX_PACKET_BYTES = 1_048_576
TICKS_PER_SECOND = 10_000_000
_MAX_INT = 2**63 - 1  # ticks and rates are stored in a BigIntegerField
_SHOW_CHARS = 40

JsonMap: TypeAlias = dict[str, object]


class PacketError(ValueError):
    """A frame that is not a valid ACS streaming packet; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResultStatus(StrEnum):
    """Whether a transcription result may still change (intermediate) or is settled (final)."""

    INTERMEDIATE = "intermediate"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class AudioMetadata:
    """First packet on a media socket: the PCM format of the following AudioData frames."""

    subscription_id: str | None
    encoding: str
    sample_rate: int
    channels: int
    length: int | None  # bytes per frame; advisory only, size buffers from the decoded data


@dataclass(frozen=True, slots=True)
class AudioData:
    """One audio frame (20 ms); ``data`` is the base64 text exactly as received."""

    data: str
    timestamp: datetime | None
    participant_raw_id: str | None
    silent: bool

    def pcm(self) -> bytes:
        """Return the decoded PCM bytes, or raise PacketError if ``data`` is not strict base64.

        Decoding is deferred so that parsing stays cheap and checks only the shape: frames that
        are dropped (silent, before metadata, no listener) are never decoded.
        """
        try:
            return binascii.a2b_base64(self.data, strict_mode=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            raise PacketError(f"audioData.data is not valid base64: {exc}") from None


@dataclass(frozen=True, slots=True)
class DtmfData:
    """A DTMF tone pressed by a participant."""

    data: str
    timestamp: datetime | None
    participant_raw_id: str | None


@dataclass(frozen=True, slots=True)
class TranscriptionMetadata:
    """First packet on a transcription socket."""

    subscription_id: str | None
    locale: str | None
    call_connection_id: str | None
    correlation_id: str | None
    speech_model_endpoint_id: str | None


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; offset and duration are exact 100-ns ticks."""

    text: str
    offset: int | None
    duration: int | None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class TranscriptionData:
    """One recognition result from ACS live transcription; times are exact 100-ns ticks."""

    text: str
    format: str
    confidence: float | None
    offset: int | None
    duration: int | None
    words: tuple[Word, ...]
    participant_raw_id: str | None
    result_status: ResultStatus
    sentiment: str | None
    language: str | None

    @property
    def is_final(self) -> bool:
        return self.result_status is ResultStatus.FINAL


Packet: TypeAlias = AudioMetadata | AudioData | DtmfData | TranscriptionMetadata | TranscriptionData

_STATUSES = {"final": ResultStatus.FINAL, "intermediate": ResultStatus.INTERMEDIATE}


def _show(value: object) -> str:
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(value[: _SHOW_CHARS + 1] if isinstance(value, str) else value)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _fail(name: str, expected: str, value: object) -> PacketError:
    return PacketError(f"{name} must be {expected}, got {_show(value)}")


def _lowered(obj: JsonMap) -> JsonMap:
    # Of keys that differ only in case the last wins, as json.loads does for exact duplicates.
    return {key.lower(): value for key, value in obj.items()}


def _opt_str(m: JsonMap, p: str, field: str) -> str | None:
    value = m.get(field.lower())
    if value is None or isinstance(value, str):
        return value
    raise _fail(p + field, "a string", value)


# Text a database can store: PostgreSQL refuses NUL in text, and no UTF-8 (so neither
# database) can hold a lone surrogate, which JSON's \ud800 escapes can produce.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_PARTICIPANT_ID = 300  # Participant.raw_id


def _stored_str(m: JsonMap, p: str, field: str) -> str | None:
    """A string that is stored: one with NUL or a lone surrogate is rejected here, as a bad
    packet with its reason, instead of failing later in the database."""
    value = _opt_str(m, p, field)
    if value is not None and _UNSTORABLE.search(value):
        raise _fail(p + field, "text without NUL characters or lone surrogates", value)
    return value


def _participant(m: JsonMap, p: str, field: str = "participantRawID") -> str | None:
    value = _stored_str(m, p, field)
    if value is not None and len(value) > MAX_PARTICIPANT_ID:
        raise _fail(p + field, f"at most {MAX_PARTICIPANT_ID} characters", value)
    return value


def _req_str(m: JsonMap, p: str, field: str) -> str:
    value = _opt_str(m, p, field)
    if value is None:
        raise PacketError(f"{p}{field} is missing")
    return value


def _opt_int(m: JsonMap, p: str, field: str, minimum: int = 0) -> int | None:
    value = m.get(field.lower())
    if value is None:
        return None
    # An integral float is accepted; bool is rejected because it is not exactly int.
    number = int(value) if type(value) is float and value.is_integer() else value
    if type(number) is not int or number < minimum:
        expected = "a non-negative integer" if minimum == 0 else "a positive integer"
        raise _fail(p + field, expected, value)
    if number > _MAX_INT:
        raise _fail(p + field, "at most 2**63-1", value)
    return number


def _opt_bool(m: JsonMap, p: str, field: str) -> bool:
    value = m.get(field.lower())
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise _fail(p + field, "true or false", value)


def _opt_confidence(m: JsonMap, p: str) -> float | None:
    value = m.get("confidence")
    if value is None:
        return None
    # NaN fails both comparisons; bool is excluded by the exact type checks.
    if (type(value) is float or type(value) is int) and 0.0 <= value <= 1.0:
        return float(value)
    raise _fail(p + "confidence", "a number between 0 and 1", value)


def _opt_time(m: JsonMap, p: str) -> datetime | None:
    value = m.get("timestamp")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            # Python 3.11+ accepts "Z" and truncates fractions past microseconds (ACS sends 7).
            stamp = datetime.fromisoformat(value)
            if stamp.tzinfo is None:
                return stamp.replace(tzinfo=UTC)
            return stamp if stamp.tzinfo is UTC else stamp.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise _fail(p + "timestamp", "an ISO 8601 timestamp", value)


def _audio_format(m: JsonMap, p: str, subscription_id: str | None) -> AudioMetadata:
    length = m.get("length")
    # The 2022 preview sent a float length (100.1); it is advisory, so drop it instead of failing.
    if type(length) is float and math.isfinite(length) and length >= 0 and not length.is_integer():
        frame_bytes = None
    else:
        frame_bytes = _opt_int(m, p, "length")
    encoding = _opt_str(m, p, "encoding")
    channels = _opt_int(m, p, "channels", 1)
    sample_rate = _opt_int(m, p, "sampleRate", 1)
    if sample_rate is None:
        raise PacketError(f"{p}sampleRate is missing")
    # PCM mono is the only format ACS supports, so defaults are safe; sampleRate has two options.
    return AudioMetadata(
        subscription_id=subscription_id,
        encoding="PCM" if encoding is None else encoding.upper(),
        sample_rate=sample_rate,
        channels=1 if channels is None else channels,
        length=frame_bytes,
    )


def _audio_metadata(m: JsonMap, p: str) -> AudioMetadata:
    return _audio_format(m, p, _opt_str(m, p, "subscriptionId"))


def _audio_data(
    m: JsonMap, p: str, participant: str = "participantRawID", silent: str = "silent"
) -> AudioData:
    return AudioData(
        data=_req_str(m, p, "data"),
        timestamp=_opt_time(m, p),
        participant_raw_id=_participant(m, p, participant),
        silent=_opt_bool(m, p, silent),
    )


def _dtmf_data(m: JsonMap, p: str) -> DtmfData:
    return DtmfData(_req_str(m, p, "data"), _opt_time(m, p), _participant(m, p))


def _transcription_metadata(m: JsonMap, p: str) -> TranscriptionMetadata:
    return TranscriptionMetadata(
        subscription_id=_opt_str(m, p, "subscriptionId"),
        locale=_opt_str(m, p, "locale"),
        call_connection_id=_opt_str(m, p, "callConnectionId"),
        correlation_id=_opt_str(m, p, "correlationId"),
        speech_model_endpoint_id=_opt_str(m, p, "speechRecognitionModelEndpointId"),
    )


def _words(value: object, p: str) -> tuple[Word, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(p + "words", "an array", value)
    words = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _fail(f"{p}words[{index}]", "an object", item)
        wp = f"{p}words[{index}]."
        w = _lowered(item)
        text = _req_str(w, wp, "text")
        if _UNSTORABLE.search(text):
            raise _fail(wp + "text", "text without NUL characters or lone surrogates", text)
        words.append(Word(text, _opt_int(w, wp, "offset"), _opt_int(w, wp, "duration")))
    return tuple(words)


def _transcription_data(m: JsonMap, p: str) -> TranscriptionData:
    status_text = _req_str(m, p, "resultStatus")
    status = _STATUSES.get(status_text.lower())
    if status is None:
        raise _fail(p + "resultStatus", "'Final' or 'Intermediate'", status_text)
    sentiment_result = m.get("sentimentanalysisresult")
    sentiment = None
    if isinstance(sentiment_result, dict):
        sp = p + "sentimentAnalysisResult."
        sentiment = _opt_str(_lowered(sentiment_result), sp, "sentiment")
    elif sentiment_result is not None:
        raise _fail(p + "sentimentAnalysisResult", "an object", sentiment_result)
    text_format = _opt_str(m, p, "format")
    text = _req_str(m, p, "text")
    if _UNSTORABLE.search(text):
        raise _fail(p + "text", "text without NUL characters or lone surrogates", text)
    return TranscriptionData(
        text=text,
        format="display" if text_format is None else text_format.lower(),
        confidence=_opt_confidence(m, p),
        offset=_opt_int(m, p, "offset"),
        duration=_opt_int(m, p, "duration"),
        words=_words(m.get("words"), p),
        participant_raw_id=_participant(m, p),
        result_status=status,
        # Lower-cased like format: the documented values are lower-case and get compared.
        sentiment=None if sentiment is None else sentiment.lower(),
        language=_opt_str(m, p, "languageIdentified"),
    )


_Builder: TypeAlias = Callable[[JsonMap, str], Packet]
# Lower-cased kind -> (payload key as ACS spells it, builder); the payload key is the kind in
# camelCase, so its lower-cased form is also the kind's.
_KINDS: dict[str, tuple[str, _Builder]] = {
    "audiometadata": ("audioMetadata", _audio_metadata),
    "audiodata": ("audioData", _audio_data),
    "dtmfdata": ("dtmfData", _dtmf_data),
    "transcriptionmetadata": ("transcriptionMetadata", _transcription_metadata),
    "transcriptiondata": ("transcriptionData", _transcription_data),
}


def _decode(raw: object) -> str:
    if isinstance(raw, str):
        size = len(raw)
        if MAX_PACKET_BYTES // 4 < size <= MAX_PACKET_BYTES:  # only then can encoding cross it
            size = len(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, bytes | bytearray | memoryview):
        try:
            size = raw.nbytes if isinstance(raw, memoryview) else len(raw)
        except ValueError:  # a released memoryview
            raise PacketError("packet buffer has been released") from None
    else:
        raise PacketError(f"packet must be text or bytes, got {type(raw).__name__}")
    if size > MAX_PACKET_BYTES:
        raise PacketError(f"packet is larger than {MAX_PACKET_BYTES} bytes")
    if isinstance(raw, str):
        return raw
    try:
        return str(raw.tobytes() if isinstance(raw, memoryview) else raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise PacketError(f"packet is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _legacy(top: JsonMap) -> Packet:
    audio_format = top.get("format")
    if isinstance(audio_format, dict):
        subscription_id = _opt_str(top, "", "subscriptionId")
        return _audio_format(_lowered(audio_format), "format.", subscription_id)
    # A string "data" tells 2022 audio apart from other objects sent to the wrong URL.
    if isinstance(top.get("data"), str):
        return _audio_data(top, "", "participantId", "isSilence")
    raise PacketError("packet has no kind and no known payload")


def parse_packet(raw: str | bytes | bytearray | memoryview) -> Packet:
    """Parse one ACS WebSocket frame; raise PacketError (and nothing else) if it is invalid."""
    text = _decode(raw)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PacketError(f"packet is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise PacketError("packet JSON is nested too deeply") from None
    except ValueError:  # an integer beyond sys.get_int_max_str_digits()
        raise PacketError("packet holds a number with too many digits") from None
    if not isinstance(obj, dict):
        raise PacketError(f"packet must be a JSON object, got {_show(obj)}")
    top = _lowered(obj)
    kind = top.get("kind")
    if kind is not None:
        if not isinstance(kind, str):
            raise _fail("kind", "a string", kind)
        key = kind.lower()
        if key not in _KINDS:
            raise PacketError(f"unknown packet kind {_show(kind)}")
    else:
        present = [name for name in _KINDS if top.get(name) is not None]
        if not present:
            return _legacy(top)
        if len(present) > 1:
            names = ", ".join(_KINDS[key][0] for key in present)
            raise PacketError(f"packet has no kind and several payloads: {names}")
        key = present[0]
    name, build = _KINDS[key]
    payload = top.get(key)
    if not isinstance(payload, dict):
        if payload is None:
            raise PacketError(f"{name} is missing")
        raise _fail(name, "an object", payload)
    prefix = name + "."
    return build(_lowered(payload), prefix)
