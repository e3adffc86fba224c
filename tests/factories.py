"""Test data made the way the product makes it: calls through ``streaming.services`` (so what
pages and the API read is what ingest stores), users in the groups the app creates, sessions
the sockets accept.

Synchronous, like the services; async tests wrap them in ``database_sync_to_async``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.test import Client

from dashboard.models import Team, TeamAddress
from dashboard.permissions import SUPERVISORS_GROUP
from streaming import services
from streaming.acs.packets import Word
from streaming.models import Call, CallAnalytics, CallState
from streaming.sentiment import Judgement
from streaming.units import TICKS_PER_SECOND

AGENT = "8:acs:resource_agent-1"


@dataclass(frozen=True)
class Said:
    """One utterance to store: who, what, when (seconds from the stream's start)."""

    speaker: str | None
    text: str
    start: float | None
    seconds: float = 1.0
    confidence: float | None = 0.9
    source: str = "recognizer"
    sentiment: str | None = None  # ACS's sentiment (source "acs")
    language: str | None = None


def make_call(
    connection_id: str,
    *,
    people: Iterable[str] = (),
    said: Sequence[Said] = (),
    caller: str = "",
    alerts: int | Sequence[str] = 0,
    analytics: dict[str, Any] | None = None,
    started: datetime | None = None,
    length: timedelta | None = None,
) -> int:
    """A call as ingest stores it; returns its id.

    ``people`` join it as participants; ``said`` is stored as finals (with words, one per
    token, at the utterance's start); ``alerts`` is a number of dead-air alerts or a list of
    alert kinds; ``analytics`` are stored as its figures. With ``started`` the call started
    then; with ``length`` as well it ended that long after.
    """
    call_id = services.call_stream_opened(connection_id=connection_id)["id"]
    for raw_id in people:
        services.participant_ensure(call_id=call_id, raw_id=raw_id)
    for s in said:
        offset = None if s.start is None else round(s.start * TICKS_PER_SECOND)
        ticks = round(s.seconds * TICKS_PER_SECOND)
        words = [Word(w, offset, ticks, s.confidence) for w in s.text.split()]
        services.utterance_record(
            call_id=call_id,
            participant_raw_id=s.speaker,
            text=s.text,
            confidence=s.confidence,
            offset_ticks=offset,
            duration_ticks=ticks if offset is not None else None,
            words=words,
            source=s.source,
            sentiment=Judgement(s.sentiment, None, "acs") if s.sentiment else None,
            language=s.language,
        )
    kinds = ["dead_air"] * alerts if isinstance(alerts, int) else list(alerts)
    for n, kind in enumerate(kinds):
        services.alert_record(
            call_id=call_id,
            rule_id=None,
            kind=kind,
            message=f"{kind} alert {n}",
            at_ms=1000 * n,
            episode=f"{kind}-{n}",
        )
    if analytics is not None:
        CallAnalytics.objects.create(call_id=call_id, **analytics)
    fields: dict[str, Any] = {}
    if caller:
        fields["caller"] = caller
    if started is not None:
        fields["started_at"] = started
        if length is not None:
            fields.update(state=CallState.ENDED, ended_at=started + length)
    if fields:
        Call.objects.filter(pk=call_id).update(**fields)
    return call_id


def user_in(name: str, *groups: str) -> User:
    """A user (password ``<name>-password-123``) in the named groups."""
    user = User.objects.create_user(name, password=f"{name}-password-123")
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user


def team_supervisor(name: str, *addresses: str) -> User:
    """A supervisor of a team of their own that looks after ``addresses``."""
    user = user_in(name, SUPERVISORS_GROUP)
    team = Team.objects.create(name=f"{name}'s team")
    team.members.add(user)
    for address in addresses:
        TeamAddress.objects.create(team=team, address=address)
    return user


def session_cookie(user: User) -> str:
    """A ``Cookie`` header value that logs ``user`` in (for sockets and raw HTTP)."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def make_recording(call_id: int, tracks: dict[str, Any], sample_rate: int = 16000) -> int:
    """Record ``tracks`` (raw id -> 16-bit samples from the call's first audio) on a call the
    way the audio path does (a chunk per track, then the assembly); the mix's id."""
    import numpy as np

    from streaming.models import Recording, RecordingKind
    from streaming.recording import store

    for raw_id, samples in tracks.items():
        key = store.TrackKey(call_id, raw_id, None)
        pcm = np.asarray(samples, dtype="<i2").tobytes()
        store.save_chunk(key=key, start_ticks=0, sample_rate=sample_rate, pcm=pcm)
    store.assemble(call_id=call_id)
    return Recording.objects.get(call_id=call_id, kind=RecordingKind.MIXED).pk
