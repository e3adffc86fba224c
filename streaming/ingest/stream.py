"""One ACS stream of one call, and everything it holds: the one owner of a stream.

The socket (``streaming.ingest.consumer``) authenticates, reads frames and hands each packet
here. The stream owns the participants it has met, the call's live figures
(``streaming.live``), the audio path (``streaming.audio``) and every database crossing the
stream makes. A final or interim result takes one road whichever way it came, ACS
transcription or a recognizer: :meth:`AcsStream.phrase`.

    consumer ─► stream ─► services ─► events
                  └─► audio ─► recognizer ─► stream.phrase
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import unicodedata
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from channels.layers import get_channel_layer

from streaming import sentiment, services
from streaming.acs.packets import (
    AudioData,
    AudioMetadata,
    DtmfData,
    Packet,
    TranscriptionData,
    TranscriptionMetadata,
)
from streaming.audio.path import CallAudio
from streaming.audio.timeline import ActivitySecond
from streaming.db import db_call
from streaming.delivery.worker import DELIVERIES
from streaming.events import (
    CallPayload,
    CaptionPayload,
    ParticipantPayload,
    asend_event,
    call_group,
    caption_interim,
    listen_group,
    streams_group,
)
from streaming.live.heartbeat import WATCH, worker_name
from streaming.live.registry import LIVE, LiveCall
from streaming.metrics import INGEST
from streaming.recognizers import RecognizerError, get_recognizer
from streaming.recording.store import assemble as assemble_recordings
from streaming.recording.store import track_end as recording_end
from streaming.redaction.applied import acs_redacts, recording_silence, redact_phrase
from streaming.redaction.core import TimeSpan
from streaming.retry import RetriesExhausted, db_write
from streaming.speech import Phrase
from streaming.tasks import spawn
from streaming.units import TICKS_PER_MS, TICKS_PER_SECOND

logger = logging.getLogger(__name__)

MAX_REMEMBERED = 1000  # speakers a stream remembers (those refused past the cap too)
Reject = Callable[..., None]


class AcsStream:
    """One ACS WebSocket stream of a call; see the module docstring."""

    def __init__(
        self, *, call: CallPayload, stream_id: int, connection_id: str, reject: Reject
    ) -> None:
        self.call_id = call["id"]
        self.bidirectional = call["bidirectional"]
        self.stream_id = stream_id
        self.connection_id = connection_id
        self.label = f"call {connection_id}"
        self.reject = reject
        self.opened_at = datetime.now(UTC)  # tick 0 of ACS transcription's offsets
        self.started = datetime.fromisoformat(call["started_at"]) if call["started_at"] else None
        self.participants: dict[str, ParticipantPayload | None] = {}
        self.live: LiveCall | None = None
        self.audio: CallAudio | None = None
        # Whether ACS was asked to redact its transcription's text (TranscriptionMetadata).
        self.acs_redacts = acs_redacts(call["transcription_options"])
        # Paused for payment (streaming.automation.secure_pause): told through the layer.
        self.paused = call["secure_pause_since"] is not None
        self.dropped_while_paused = 0
        self.pause_channel = ""
        self.pause_listener: asyncio.Task[None] | None = None
        self.listen_until = 0.0  # time.monotonic() until which listeners get the audio

    @classmethod
    async def open(cls, *, connection_id: str, correlation_id: str, reject: Reject) -> AcsStream:
        """Record the stream (creating the call on first sight) and start its heartbeat.

        Raises ``RetriesExhausted`` when the database stays away: the socket is refused, and
        ACS tries again.
        """
        call, stream_id = await db_write(
            f"call {connection_id}: stream opened",
            services.stream_opened,
            connection_id=connection_id,
            correlation_id=correlation_id,
            worker=worker_name(),
        )
        stream = cls(call=call, stream_id=stream_id, connection_id=connection_id, reject=reject)
        stream.live = await LIVE.attach(stream.call_id, stream.label, stream.started)
        await stream._follow_secure_pause()
        WATCH.hold(stream_id, stream.live)
        DELIVERIES.ensure_running()
        return stream

    # --- pause for payment ---------------------------------------------------------------------

    async def _follow_secure_pause(self) -> None:
        """Listen for what is asked of the call's audio (pause for payment, listening in),
        whichever worker it was asked on."""
        layer = get_channel_layer()
        if layer is None:
            return
        self.pause_channel = await layer.new_channel("pause.")
        await layer.group_add(streams_group(self.call_id), self.pause_channel)
        # Not spawn(): a stopping server waits for spawned tasks, and this one never ends.
        self.pause_listener = asyncio.get_running_loop().create_task(self._pause_messages(layer))

    async def _pause_messages(self, layer: Any) -> None:
        while True:
            message = await layer.receive(self.pause_channel)
            try:
                if message.get("type") == "secure_pause":
                    await self.set_paused(bool(message.get("paused")))
                elif message.get("type") == "listen.wanted":
                    self.listened(float(message.get("seconds") or 0))
            except Exception:
                logger.exception("%s: handling %s failed", self.label, message.get("type"))

    # --- listening in ----------------------------------------------------------------------------

    def listened(self, seconds: float) -> None:
        """Someone listens to the call: send its audio for ``seconds`` more (a listening page
        asks again every few seconds, so audio stops soon after the last one left)."""
        self.listen_until = time.monotonic() + min(max(seconds, 0.0), 60.0)
        if self.audio is not None:
            self.audio.listen = self.heard

    def heard(self, key: str, rate: int, at_ticks: int, pcm: bytes) -> None:
        """A tenth of a second of one stream's audio for the call's listeners: sent in the
        background, dropped for a listener whose channel is full (never buffered here)."""
        if time.monotonic() > self.listen_until:
            if self.audio is not None:
                self.audio.listen = None
            return
        layer = get_channel_layer()
        if layer is None:
            return
        message = {
            "type": "listen.audio",
            "track": key,
            "rate": rate,
            "at_ticks": at_ticks,
            "sent_at": time.time(),
            "pcm": pcm,
        }
        spawn(layer.group_send(listen_group(self.call_id), message), f"{self.label}: listen-in")

    async def set_paused(self, paused: bool) -> None:
        """Pause (or resume) recording and recognition from the next frame on."""
        if paused == self.paused:
            return
        self.paused = paused
        at = self.audio.pause(paused) if self.audio is not None else 0
        what = "paused for payment" if paused else "resumed after payment"
        dropped = self.dropped_while_paused if not paused else 0
        self.dropped_while_paused = 0
        logger.info(
            "%s: %s at %.2f s%s",
            self.label,
            what,
            at / TICKS_PER_SECOND,
            f" ({dropped} ACS transcription result(s) dropped)" if dropped else "",
        )
        await db_call(
            services.call_event_record,
            call_id=self.call_id,
            type="secure_pause.started" if paused else "secure_pause.ended",
            data={"at_ticks": at, "stream_id": self.stream_id},
            message=what,
        )

    async def _stop_following_pause(self) -> None:
        if self.pause_listener is not None:
            self.pause_listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pause_listener
        layer = get_channel_layer()
        if layer is not None and self.pause_channel:
            with contextlib.suppress(Exception):
                await layer.group_discard(streams_group(self.call_id), self.pause_channel)

    # --- packets -------------------------------------------------------------------------------

    def audio_frame(self, packet: AudioData) -> Coroutine[Any, Any, None] | None:
        """The hot path, 50 frames a second per participant: a coroutine only when needed."""
        if self.audio is None:
            self.reject("AudioData before a usable AudioMetadata", hostile=False)
            return None
        return self.audio.frame(packet)

    async def packet(self, packet: Packet) -> None:
        """Any packet but audio frames."""
        if isinstance(packet, TranscriptionData):
            if self.paused:  # what ACS heard while paused for payment is not kept
                self.dropped_while_paused += 1
                return
            await self.phrase(Phrase.from_transcription(packet, self.opened_at))
        elif isinstance(packet, TranscriptionMetadata):
            self.acs_redacts = acs_redacts(packet.options)
            await db_write(
                f"{self.label}: transcription metadata",
                services.call_transcription_started,
                call_id=self.call_id,
                metadata=packet,
            )
        elif isinstance(packet, AudioMetadata):
            await self._audio_path().metadata(packet)
        elif isinstance(packet, DtmfData):
            await self._dtmf(packet)

    def _audio_path(self) -> CallAudio:
        """The stream's audio path, built on its first media packet."""
        if self.audio is None:
            try:
                recognizer = get_recognizer()
            except RecognizerError as error:
                logger.error("%s: no speech recognition: %s", self.label, error.reason)
                recognizer = None
            self.audio = CallAudio(
                host=self,
                call_id=self.call_id,
                label=self.label,
                recognizer=recognizer,
                reject=self.reject,
            )
            if self.live is not None:
                self.live.audio_paths.append(self.audio)
            if self.paused:
                self.audio.pause(True)
            if time.monotonic() < self.listen_until:
                self.audio.listen = self.heard
        return self.audio

    async def _dtmf(self, packet: DtmfData) -> None:
        """Store and show a tone; its digit is never logged (a card number typed on a keypad)."""
        stored = await db_write(
            f"{self.label}: DTMF tone",
            services.call_tone_record,
            call_id=self.call_id,
            tone=packet.data,
            participant_raw_id=packet.participant_raw_id,
            at=packet.timestamp,
        )
        if stored is not None:
            logger.info("%s: DTMF tone from %s", self.label, packet.participant_raw_id or "?")
        if stored is not None and self.live is not None:
            try:
                await LIVE.tone_stored(self.live, stored)
            except Exception:
                logger.exception("%s: could not check the DTMF rules", self.label)

    # --- phrases: ACS transcription and recognizers alike --------------------------------------

    async def phrase(self, phrase: Phrase) -> None:
        """Every result, final or interim, ACS's or a recognizer's: redacted here (when
        CALLSITE_REDACT=on) before anything is stored, sent, indexed or logged."""
        phrase = redact_phrase(phrase, acs_redacted=self.acs_redacts)
        if phrase.final:
            await self._final(phrase)
        else:
            await self._interim(phrase)

    async def _final(self, phrase: Phrase) -> None:
        """Store a final once; a new one is counted and timed by the live figures."""
        await self._interim_speaking(phrase, False)
        judgement = sentiment.judge(phrase.text, phrase.sentiment, final=True)
        try:
            caption, created = await db_write(
                f"{self.label}: final utterance",
                services.utterance_record,
                call_id=self.call_id,
                participant_raw_id=phrase.speaker,
                text=phrase.text,
                confidence=phrase.confidence,
                offset_ticks=phrase.offset_ticks,
                duration_ticks=phrase.duration_ticks,
                words=phrase.words,
                source=phrase.source,
                sentiment=judgement,
                language=phrase.language,
                redaction=phrase.redaction,
            )
        except Exception:
            # Retries ran out (or a bug): the text goes to the log in full, to be recovered.
            INGEST.finals_lost += 1
            logger.exception(
                "%s: final utterance NOT stored (participant %s, offset %s): %r",
                self.label,
                phrase.speaker,
                phrase.offset_ticks,
                phrase.text,
            )
            return
        if caption["participant"] is not None:
            self.participants[caption["participant"]["raw_id"]] = caption["participant"]
        if created and phrase.redaction and phrase.redaction.get("times"):
            await self._silence(phrase.redaction["times"])
        if created and self.live is not None:
            try:
                await LIVE.final_stored(self.live, caption, phrase.speech_end)
            except Exception:
                logger.exception("%s: handling a stored final failed", self.label)

    async def _silence(self, times: object) -> None:
        """Silence the stored audio where a stored final had something masked (off the event
        loop: it rewrites stored files)."""
        spans = [
            TimeSpan(str(t["kind"]), int(t["start_ticks"]), int(t["end_ticks"]))
            for t in (times if isinstance(times, list) else [])
        ]
        if self.audio is not None:
            self.audio.silence(spans)
        try:
            await db_call(recording_silence, call_id=self.call_id, times=spans)
        except Exception:
            logger.exception("%s: silencing the recording over redacted words failed", self.label)

    async def _interim(self, phrase: Phrase) -> None:
        """Relay an interim result (never stored); its span is talk for the live figures."""
        participant = phrase.participant
        if participant is None and phrase.speaker:
            try:
                participant = await self._participant(phrase.speaker)
            except Exception as error:
                # An interim result is replaced by the next one within a second: it is not
                # worth waiting for the database.
                logger.warning("%s: interim result not relayed: %s", self.label, error)
                return
        judgement = sentiment.judge(phrase.text, phrase.sentiment, final=False)
        caption: CaptionPayload = {
            "call_id": self.call_id,
            "utterance_id": None,
            "participant": participant,
            "text": unicodedata.normalize("NFC", phrase.text),
            "confidence": phrase.confidence,
            "offset_ticks": phrase.offset_ticks,
            "duration_ticks": phrase.duration_ticks,
            "words": services.words_payload(phrase.words),
            "final": False,
            "seq": None,
            "sentiment": judgement.sentiment if judgement else None,
            "sentiment_score": judgement.score if judgement else None,
            "sentiment_source": judgement.source if judgement else None,
            "language": phrase.language,
            "redacted": services.redacted_of(phrase.redaction),
        }
        if self.live is not None:
            self.live.add_interim(caption)
        if phrase.text:  # an empty interim only says that speech goes on: nothing to show
            await asend_event((call_group(self.call_id),), caption_interim(caption))
        await self._interim_speaking(phrase, True, participant)

    async def _interim_speaking(
        self, phrase: Phrase, speaking: bool, participant: ParticipantPayload | None = None
    ) -> None:
        """Speaking now, for speakers whose audio this stream does not hear: from interims
        (speech goes on) to their final (it ended)."""
        key = phrase.speaker
        live = self.live
        if not key or live is None or (self.audio is not None and key in self.audio.streams):
            return
        if speaking:
            live.interim_speaking[key] = time.monotonic()
        else:
            live.interim_speaking.pop(key, None)
        end = (phrase.offset_ticks or 0) + (phrase.duration_ticks or 0)
        at_ms = (phrase.offset_ticks or 0) // TICKS_PER_MS if speaking else end // TICKS_PER_MS
        await LIVE.speaking(live, live.set_speaking(key, participant, speaking, at_ms))

    async def _participant(self, raw_id: str) -> ParticipantPayload | None:
        """The participant of ``raw_id``; None past the call's bound of participants."""
        if raw_id in self.participants:
            return self.participants[raw_id]
        found = await db_call(services.participant_ensure, call_id=self.call_id, raw_id=raw_id)
        if found is not None or len(self.participants) < MAX_REMEMBERED:
            self.participants[raw_id] = found  # ids refused past the cap: a bounded memory
        return found

    # --- what the audio path asks of its stream (streaming.audio.path.AudioHost) -----------------

    async def audio_started(self, sample_rate: int, origin: datetime) -> datetime:
        return await db_call(
            services.call_audio_started,
            call_id=self.call_id,
            sample_rate=sample_rate,
            origin=origin,
        )

    async def audio_participant(self, raw_id: str) -> ParticipantPayload | None:
        return await self._participant(raw_id)

    async def resume_point(self, key: str) -> int | None:
        return await db_call(services.stream_resume_point, call_id=self.call_id, stream=key)

    async def recorded_until(self, key: str) -> int:
        return await db_call(recording_end, call_id=self.call_id, track=key)

    async def recognizer_attached(self) -> None:
        await db_call(services.call_recognizer_attached, call_id=self.call_id)

    def gap(self, key: str, start: int, end: int, reason: str) -> None:
        kind = "audio.gap" if reason == "no audio received" else "recognition.gap"
        data: dict[str, object] = {
            "stream": key,
            "start_ticks": start,
            "end_ticks": end,
            "reason": reason,
        }
        spawn(
            db_call(
                services.call_event_record,
                call_id=self.call_id,
                type=kind,
                data=data,
                is_failure=True,
                message=reason,
            ),
            f"{self.label}: recording a gap",
        )

    def talk(
        self, key: str, participant: ParticipantPayload | None, seconds: Sequence[ActivitySecond]
    ) -> None:
        if self.live is not None:
            self.live.add_activity(key, participant, seconds)

    def speaking(
        self, key: str, participant: ParticipantPayload | None, speaking: bool, at_ticks: int
    ) -> None:
        if self.live is None:
            return
        payload = self.live.set_speaking(key, participant, speaking, at_ticks // TICKS_PER_MS)
        if payload is not None:
            spawn(LIVE.speaking(self.live, payload), f"{self.label}: speaking changed")

    # --- the end -------------------------------------------------------------------------------

    async def finish(self, code: int) -> None:
        """Store the last finals and talk time, then record that the stream closed."""
        await self._stop_following_pause()
        if self.audio is not None:
            try:
                await self.audio.close()
            except Exception:
                logger.exception("%s: closing the audio path failed", self.label)
            if self.audio.recorded:
                try:
                    await db_call(assemble_recordings, call_id=self.call_id)
                except Exception:
                    logger.exception("%s: assembling the call's recordings failed", self.label)
        if self.live is not None and self.audio in self.live.audio_paths:
            self.live.audio_paths.remove(self.audio)
        WATCH.release(self.stream_id)
        # If the database stays away, the failure is logged; the call's state is put right by
        # its next stream or Call Automation callback.
        call = None
        with contextlib.suppress(RetriesExhausted):
            call = await db_write(
                f"{self.label}: stream closed",
                services.call_stream_closed,
                call_id=self.call_id,
                stream_id=self.stream_id,
            )
        if self.live is not None:
            try:
                await LIVE.detach(self.live, call)
            except Exception:
                logger.exception("%s: saving the final figures failed", self.label)
        logger.info("ACS stream closed for %s (code %s)", self.label, code)
