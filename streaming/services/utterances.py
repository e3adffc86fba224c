"""Participants and what they said: finals stored exactly once, in the call's event order."""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import F

from streaming import directory, events
from streaming.acs.identities import MAX_LABEL, identity_from_raw_id
from streaming.acs.packets import Word
from streaming.events import (
    CaptionPayload,
    ParticipantPayload,
    WordPayload,
)
from streaming.metrics import INGEST
from streaming.models import (
    Call,
    Participant,
    ParticipantRole,
    Utterance,
)
from streaming.selectors import (
    caption_payload,
    participant_payload,
)
from streaming.sentiment import Judgement

logger = logging.getLogger(__name__)

# Participants one call may have: a contact-centre call has a handful; a stream naming
# thousands of made-up raw ids must not make a call's list (sent to every page) unbounded.
MAX_PARTICIPANTS = 100
_CAPPED_CALLS: OrderedDict[int, None] = OrderedDict()  # calls whose cap this process logged


def participant_ensure(*, call_id: int, raw_id: str) -> ParticipantPayload | None:
    """Return the call's participant for ``raw_id``, creating it on first sight; None once the
    call already has ``MAX_PARTICIPANTS`` others (the id is not stored)."""
    with transaction.atomic():
        participant = participant_get_or_create(call_id=call_id, raw_id=raw_id)
    return participant_payload(participant) if participant is not None else None


def participant_get_or_create(*, call_id: int, raw_id: str) -> Participant | None:
    """The participant for ``raw_id``, created (and announced on commit) on first sight.

    A call has at most ``MAX_PARTICIPANTS``: past it a new raw id gets no participant (what
    it says is kept, without a speaker), counted and logged, so no stream can make a call's
    participant list, and what every page is sent of it, grow without bound.
    """
    found = Participant.objects.filter(call_id=call_id, raw_id=raw_id).first()
    if found is not None:
        return found
    if Participant.objects.filter(call_id=call_id).count() >= MAX_PARTICIPANTS:
        INGEST.capped += 1
        if call_id not in _CAPPED_CALLS:  # once a call: a stream of made-up ids, one line
            _CAPPED_CALLS[call_id] = None
            if len(_CAPPED_CALLS) > 1000:
                _CAPPED_CALLS.popitem(last=False)
            logger.warning(
                "call %s: participant %r not added, nor any more: the call already has %d "
                "participants (what they say is stored; each counted at "
                "callsite_ingest_capped_total)",
                call_id,
                raw_id[:60],
                MAX_PARTICIPANTS,
            )
        return None
    identity = identity_from_raw_id(raw_id)
    name = _caller_name(call_id, raw_id)
    # The agent directory's name wins over ACS's display name and the raw id's label, and
    # whoever it lists is an agent (an agent's phone number is no customer).
    agent = directory.agent_name(raw_id)
    participant, created = Participant.objects.get_or_create(
        call_id=call_id,
        raw_id=raw_id,
        defaults={
            "kind": identity.kind,
            "role": ParticipantRole.AGENT if agent else identity.role,
            "display_label": (agent or name or identity.label)[:MAX_LABEL],
            "display_name": name,
        },
    )
    if created:
        event = events.call_participant(call_id, participant_payload(participant))
        transaction.on_commit(partial(events.send_event, events.groups_for_call(call_id), event))
    return participant


def _caller_name(call_id: int, raw_id: str) -> str:
    """The caller's display name from ``IncomingCall``, if ``raw_id`` is the caller."""
    caller, name = Call.objects.filter(pk=call_id).values_list(
        "caller", "caller_display_name"
    ).first() or ("", "")
    if not name or not caller or raw_id not in (caller, f"4:{caller}"):
        return ""
    return " ".join(name.split())[:MAX_LABEL]


def call_next_seq(call_id: int) -> int:
    """The call's next event sequence number, inside the caller's transaction.

    The update locks the call's row until commit, so a call's events commit in ``seq`` order
    and a browser resuming after ``seq`` *n* misses nothing that commits later.
    """
    Call.objects.filter(pk=call_id).update(last_seq=F("last_seq") + 1)
    return Call.objects.filter(pk=call_id).values_list("last_seq", flat=True).get()


def utterance_dedupe_key(
    *, source: str, participant_raw_id: str | None, offset_ticks: int | None, text: str
) -> str:
    """What identifies a final result whatever the packet that carried it.

    The offset pins a phrase in the stream; packets without one fall back to a digest of the
    text, which still collapses exact replays.
    """
    speaker = participant_raw_id or ""
    if offset_ticks is not None:
        anchor = f"t{offset_ticks}"
    else:
        anchor = "h" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    key = f"{source}|{anchor}|{speaker}"
    return key[:400]


def words_payload(words: Sequence[Word]) -> list[WordPayload]:
    return [
        {
            "text": unicodedata.normalize("NFC", w.text),
            "offset": w.offset,
            "duration": w.duration,
            "confidence": w.confidence,
        }
        for w in words
    ]


def utterance_record(
    *,
    call_id: int,
    participant_raw_id: str | None,
    text: str,
    confidence: float | None,
    offset_ticks: int | None,
    duration_ticks: int | None,
    words: Sequence[Word],
    source: str,
    sentiment: Judgement | None = None,
    language: str | None = None,
    redaction: dict[str, object] | None = None,
) -> tuple[CaptionPayload, bool]:
    """Store a final result exactly once and broadcast it after commit.

    Returns the caption and whether it was new; a replayed result returns the stored one and
    broadcasts nothing. ``sentiment`` is the result's (``streaming.sentiment.judge``);
    ``redaction`` what redaction did to it (``streaming.redaction.applied.redact_phrase``),
    None when redaction is off.
    """
    # Composed (NFC), as every query is: "é" said as e + a combining accent is found as "é".
    text = unicodedata.normalize("NFC", text)
    key = utterance_dedupe_key(
        source=source, participant_raw_id=participant_raw_id, offset_ticks=offset_ticks, text=text
    )
    with transaction.atomic():
        participant = None
        if participant_raw_id:
            participant = participant_get_or_create(call_id=call_id, raw_id=participant_raw_id)
        existing = Utterance.objects.filter(call_id=call_id, dedupe_key=key).first()
        if existing is not None:
            return caption_payload(existing, existing.participant), False
        try:
            # The savepoint keeps the outer transaction usable if a concurrent writer (a
            # reconnected stream replaying the same packet) inserted the row first.
            with transaction.atomic():
                seq = call_next_seq(call_id)
                utterance = Utterance.objects.create(
                    seq=seq,
                    call_id=call_id,
                    participant=participant,
                    text=text,
                    confidence=confidence,
                    offset_ticks=offset_ticks,
                    duration_ticks=duration_ticks,
                    words=words_payload(words),
                    source=source,
                    dedupe_key=key,
                    sentiment=sentiment.sentiment if sentiment else "",
                    sentiment_score=sentiment.score if sentiment else None,
                    sentiment_source=sentiment.source if sentiment else "",
                    language=language or "",
                    redacted=redacted_of(redaction),
                    redaction=redaction or {},
                )
        except IntegrityError:
            existing = Utterance.objects.select_related("participant").get(
                call_id=call_id, dedupe_key=key
            )
            return caption_payload(existing, existing.participant), False
        caption = caption_payload(utterance, participant)
        transaction.on_commit(
            partial(events.send_event, (events.call_group(call_id),), events.caption_final(caption))
        )
    return caption, True


def redacted_of(redaction: dict[str, object] | None) -> bool | None:
    """True when redaction masked something (or ACS redacted), False when it found nothing."""
    if redaction is None:
        return None
    return redaction.get("by") == "acs" or bool(redaction.get("kinds"))


def participant_presence_apply(
    participant: Participant,
    *,
    muted: bool,
    on_hold: bool,
    at: datetime,
    display_name: str = "",
) -> tuple[datetime, datetime] | None:
    """Apply what ``ParticipantsUpdated`` says of a participant, inside the caller's
    transaction; returns the hold that this ends, ``(start, end)``, if it ends one.

    Holds and mutes are timed by the events' own times (ACS's clock, to the microsecond), so
    their length does not depend on when the callbacks were delivered.
    """
    hold = _Periods(participant, "held_since", "hold_ms", "longest_hold_ms", "hold_periods")
    ended = hold.apply(on_hold, at)
    _Periods(participant, "muted_since", "mute_ms", "longest_mute_ms", "mute_periods").apply(
        muted, at
    )
    participant.is_muted = muted
    participant.is_on_hold = on_hold
    participant.in_call = True
    fields = ["is_muted", "is_on_hold", "in_call", *_Periods.FIELDS]
    name = " ".join(display_name.split())[:MAX_LABEL]
    if name and name != participant.display_name:
        participant.display_name = name
        # The directory's name stays the label of an agent it lists.
        participant.display_label = directory.agent_name(participant.raw_id) or name
        fields += ["display_name", "display_label"]
    participant.save(update_fields=fields)
    return ended


class _Periods:
    """One kind of timed state of a participant (on hold, muted) kept in four fields:
    since when it holds, the finished periods' sum and longest, and the periods themselves
    (``[start, end]`` ISO times, ``end`` null while it goes on)."""

    FIELDS = (
        "held_since",
        "hold_ms",
        "longest_hold_ms",
        "hold_periods",
        "muted_since",
        "mute_ms",
        "longest_mute_ms",
        "mute_periods",
    )

    def __init__(
        self, participant: Participant, since: str, total: str, longest: str, periods: str
    ) -> None:
        self.p = participant
        self.since, self.total, self.longest, self.periods = since, total, longest, periods

    def apply(self, active: bool, at: datetime) -> tuple[datetime, datetime] | None:
        """Start or end a period at ``at``; the period this ends, if it ends one."""
        p, ended = self.p, None
        periods = [x for x in getattr(p, self.periods) if isinstance(x, list) and len(x) == 2]
        since: datetime | None = getattr(p, self.since)
        if active and since is None:
            setattr(p, self.since, at)
            periods.append([at.isoformat(), None])
        elif not active and since is not None:
            end = max(at, since)
            length = round((end - since).total_seconds() * 1000)
            setattr(p, self.total, getattr(p, self.total) + length)
            setattr(p, self.longest, max(getattr(p, self.longest), length))
            setattr(p, self.since, None)
            if periods and periods[-1][1] is None:
                periods[-1][1] = end.isoformat()
            ended = (since, end)
        setattr(p, self.periods, periods[-MAX_HOLD_PERIODS:])
        return ended


MAX_HOLD_PERIODS = 200  # a participant's holds (and mutes) kept for the timeline; the sums keep all
