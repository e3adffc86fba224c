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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeAlias

from streaming.acs.reading import (
    UNSTORABLE,
    JsonMap,
    PacketError,
    lowered,
    opt_bool,
    opt_confidence,
    opt_int,
    opt_str,
    opt_time,
    participant_id,
    refusal,
    req_str,
    show,
    stored_str,
)

MAX_PACKET_BYTES = 1_048_576


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
    """First packet on a transcription socket.

    ``options`` is what the transcription was asked for, when the packet says (newer ACS):
    ``sentiment`` (bool), ``pii_redaction`` (``{"enable", "redaction_type"}``),
    ``summarization`` (``{"enable_end_call_summary", "locale"}``) and ``locales`` (list);
    absent keys were not said.
    """

    subscription_id: str | None
    locale: str | None
    call_connection_id: str | None
    correlation_id: str | None
    speech_model_endpoint_id: str | None
    options: dict[str, object] = field(default_factory=dict)


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
    sentiment: str | None  # one of SENTIMENTS; another value ACS may add is dropped
    language: str | None

    @property
    def is_final(self) -> bool:
        return self.result_status is ResultStatus.FINAL


Packet: TypeAlias = AudioMetadata | AudioData | DtmfData | TranscriptionMetadata | TranscriptionData

_STATUSES = {"final": ResultStatus.FINAL, "intermediate": ResultStatus.INTERMEDIATE}
SENTIMENTS = frozenset({"positive", "neutral", "negative", "mixed"})
MAX_LANGUAGE = 35  # Utterance.language; BCP 47 tags are short
MAX_OPTION_TEXT = 100  # a locale or redaction type in the options


def _audio_format(m: JsonMap, p: str, subscription_id: str | None) -> AudioMetadata:
    length = m.get("length")
    # The 2022 preview sent a float length (100.1); it is advisory, so drop it instead of failing.
    if type(length) is float and math.isfinite(length) and length >= 0 and not length.is_integer():
        frame_bytes = None
    else:
        frame_bytes = opt_int(m, p, "length")
    encoding = opt_str(m, p, "encoding")
    channels = opt_int(m, p, "channels", 1)
    sample_rate = opt_int(m, p, "sampleRate", 1)
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
    return _audio_format(m, p, opt_str(m, p, "subscriptionId"))


def _audio_data(
    m: JsonMap, p: str, participant: str = "participantRawID", silent: str = "silent"
) -> AudioData:
    return AudioData(
        data=req_str(m, p, "data"),
        timestamp=opt_time(m, p),
        participant_raw_id=participant_id(m, p, participant),
        silent=opt_bool(m, p, silent),
    )


def _dtmf_data(m: JsonMap, p: str) -> DtmfData:
    return DtmfData(req_str(m, p, "data"), opt_time(m, p), participant_id(m, p))


def _option_text(m: JsonMap, p: str, name: str) -> str | None:
    value = stored_str(m, p, name)
    if value is not None and len(value) > MAX_OPTION_TEXT:
        raise refusal(p + name, f"at most {MAX_OPTION_TEXT} characters", value)
    return value


def _option_object(m: JsonMap, p: str, name: str) -> JsonMap | None:
    value = m.get(name.lower())
    if value is None:
        return None
    if not isinstance(value, dict):
        raise refusal(p + name, "an object", value)
    return lowered(value)


def _transcription_options(m: JsonMap, p: str) -> dict[str, object]:
    """What a ``TranscriptionMetadata`` says the transcription was asked for."""
    options: dict[str, object] = {}
    if m.get("enablesentimentanalysis") is not None:
        options["sentiment"] = opt_bool(m, p, "enableSentimentAnalysis")
    pii = _option_object(m, p, "piiRedactionOptions")
    if pii is not None:
        pp = p + "piiRedactionOptions."
        options["pii_redaction"] = {
            "enable": opt_bool(pii, pp, "enable"),
            "redaction_type": _option_text(pii, pp, "redactionType"),
        }
    summary = _option_object(m, p, "summarizationOptions")
    if summary is not None:
        sp = p + "summarizationOptions."
        options["summarization"] = {
            "enable_end_call_summary": opt_bool(summary, sp, "enableEndCallSummary"),
            "locale": _option_text(summary, sp, "locale"),
        }
    locales = m.get("locales")
    if locales is not None:
        if not isinstance(locales, list) or len(locales) > 20:
            raise refusal(p + "locales", "an array of at most 20 locales", locales)
        found = []
        for index, locale in enumerate(locales):
            if not isinstance(locale, str) or len(locale) > MAX_OPTION_TEXT:
                raise refusal(f"{p}locales[{index}]", "a locale", locale)
            found.append(locale)
        options["locales"] = found
    return options


def _transcription_metadata(m: JsonMap, p: str) -> TranscriptionMetadata:
    return TranscriptionMetadata(
        subscription_id=opt_str(m, p, "subscriptionId"),
        locale=opt_str(m, p, "locale"),
        call_connection_id=opt_str(m, p, "callConnectionId"),
        correlation_id=opt_str(m, p, "correlationId"),
        speech_model_endpoint_id=opt_str(m, p, "speechRecognitionModelEndpointId"),
        options=_transcription_options(m, p),
    )


def _words(value: object, p: str) -> tuple[Word, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise refusal(p + "words", "an array", value)
    words = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise refusal(f"{p}words[{index}]", "an object", item)
        wp = f"{p}words[{index}]."
        w = lowered(item)
        text = req_str(w, wp, "text")
        if UNSTORABLE.search(text):
            raise refusal(wp + "text", "text without NUL characters or lone surrogates", text)
        words.append(Word(text, opt_int(w, wp, "offset"), opt_int(w, wp, "duration")))
    return tuple(words)


def _transcription_data(m: JsonMap, p: str) -> TranscriptionData:
    status_text = req_str(m, p, "resultStatus")
    status = _STATUSES.get(status_text.lower())
    if status is None:
        raise refusal(p + "resultStatus", "'Final' or 'Intermediate'", status_text)
    sentiment_result = m.get("sentimentanalysisresult")
    sentiment = None
    if isinstance(sentiment_result, dict):
        sp = p + "sentimentAnalysisResult."
        sentiment = opt_str(lowered(sentiment_result), sp, "sentiment")
    elif sentiment_result is not None:
        raise refusal(p + "sentimentAnalysisResult", "an object", sentiment_result)
    if sentiment is not None and sentiment.lower() not in SENTIMENTS:
        sentiment = None  # a value this version does not know: the text still counts
    language = stored_str(m, p, "languageIdentified")
    if language is not None and len(language) > MAX_LANGUAGE:
        raise refusal(p + "languageIdentified", f"at most {MAX_LANGUAGE} characters", language)
    text_format = opt_str(m, p, "format")
    text = req_str(m, p, "text")
    if UNSTORABLE.search(text):
        raise refusal(p + "text", "text without NUL characters or lone surrogates", text)
    return TranscriptionData(
        text=text,
        format="display" if text_format is None else text_format.lower(),
        confidence=opt_confidence(m, p),
        offset=opt_int(m, p, "offset"),
        duration=opt_int(m, p, "duration"),
        words=_words(m.get("words"), p),
        participant_raw_id=participant_id(m, p),
        result_status=status,
        # Lower-cased like format: the documented values are lower-case and get compared.
        sentiment=None if sentiment is None else sentiment.lower(),
        language=language or None,
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
        subscription_id = opt_str(top, "", "subscriptionId")
        return _audio_format(lowered(audio_format), "format.", subscription_id)
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
        raise PacketError(f"packet must be a JSON object, got {show(obj)}")
    top = lowered(obj)
    kind = top.get("kind")
    if kind is not None:
        if not isinstance(kind, str):
            raise refusal("kind", "a string", kind)
        key = kind.lower()
        if key not in _KINDS:
            raise PacketError(f"unknown packet kind {show(kind)}")
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
        raise refusal(name, "an object", payload)
    prefix = name + "."
    return build(lowered(payload), prefix)
