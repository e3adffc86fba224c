"""Redaction through the real ASGI application: with CALLSITE_REDACT=on, a call whose ACS
finals and recognizer output hold a card number, an IBAN, an e-mail address and a phone
number keeps none of them anywhere: no table, no dashboard socket message, no export, no
search result, no admin page."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.apps import apps
from django.contrib.auth.models import User
from django.db import models
from django.test import Client

from simulator import wire
from streaming.models import Call, Utterance
from tests.helpers import (
    acs_socket,
    audio_data,
    audio_metadata,
    page_socket,
    quiet_frame,
    tone_frame,
    transcription_data,
    transcription_metadata,
    wait_for_event,
)

pytestmark = pytest.mark.django_db(transaction=True)

CALL = "redacted-call"
CUSTOMER = "4:+15555550123"
CALLER_AUDIO = "8:acs:agent-audio"
SPOKEN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def spoken(digits: str) -> str:
    return " ".join(SPOKEN[int(d)] for d in digits)


CARD = "4532015112830366"
RECOGNIZER_CARD = "5555555555554444"
IBAN = "GB82WEST12345698765432"
RECOGNIZER_IBAN = "DE89370400440532013000"
EMAIL = "john.smith@example.com"
PHONE = "6502530000"
RECOGNIZER_PHONE = "4155552671"  # phonenumbers' own valid example, read digit by digit

ACS_FINALS = [
    "My card number is 4532 0151 1283 0366, expiry next year.",
    "The IBAN is GB82 WEST 1234 5698 7654 32 thanks.",
    "Write to john.smith@example.com please.",
    "Call me back on +1 650-253-0000 tonight.",
]
RECOGNIZER_SCRIPT = [
    f"my card is {spoken(RECOGNIZER_CARD)} okay",
    "account DE89 3704 0044 0532 0130 00 please",
    "email jane dot doe at example dot com",
    f"my number is {spoken(RECOGNIZER_PHONE)} thanks",
]
# Every form a secret could be kept in: digits, grouped digits, spoken, the e-mail's parts.
SECRETS = [
    CARD,
    RECOGNIZER_CARD,
    IBAN.lower(),
    RECOGNIZER_IBAN.lower(),
    EMAIL,
    "jane.doe",
    "janedotdoe",
    PHONE,
    RECOGNIZER_PHONE,
    "45320151",  # the card's first half, as an interim would carry it
    "55555555",
    re.sub(r"\s", "", spoken(RECOGNIZER_CARD[:6])),
    re.sub(r"\s", "", spoken(RECOGNIZER_PHONE[:6])),
]


def leaks(haystack: str) -> list[str]:
    """The secrets found in ``haystack``, as written or run together without separators."""
    squeezed = re.sub(r"[\s\-.,+()/\\]", "", haystack.lower())
    found = [s for s in SECRETS if s in haystack.lower() or s.replace(".", "") in squeezed]
    return found


def _acs_words(text: str, offset: int) -> list[dict[str, Any]]:
    return [
        {"text": w, "offset": offset + i * 1_000_000, "duration": 900_000}
        for i, w in enumerate(text.split())
    ]


async def _stream_the_call(ws: Any) -> None:
    """ACS transcription (an interim, then four finals) and unmixed audio that the fake
    recognizer turns into four more finals, with interims along the way."""
    await ws.send_to(text_data=transcription_metadata(CALL))
    await ws.send_to(
        text_data=transcription_data(
            "My card number is 4532 0151 12", status="Intermediate", offset=5_000_000
        )
    )
    for n, text in enumerate(ACS_FINALS):
        offset = (n + 1) * 100_000_000
        await ws.send_to(
            text_data=transcription_data(
                text, offset=offset, speaker=CUSTOMER, words=_acs_words(text, offset)
            )
        )
    await ws.send_to(text_data=audio_metadata())
    index = 0
    for _ in RECOGNIZER_SCRIPT:
        for _ in range(25):
            await ws.send_to(text_data=audio_data(tone_frame(), index=index, speaker=CALLER_AUDIO))
            index += 1
        for _ in range(12):
            await ws.send_to(
                text_data=audio_data(quiet_frame(), index=index, speaker=CALLER_AUDIO, silent=True)
            )
            index += 1


def _text_columns() -> list[tuple[type[models.Model], list[str]]]:
    """Every model with its text-holding columns (char, text, JSON), found by introspection."""
    found = []
    for model in apps.get_models():
        names = [
            f.attname
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.JSONField)
        ]
        if names:
            found.append((model, names))
    return found


def _every_stored_text() -> list[tuple[str, str]]:
    rows = []
    for model, names in _text_columns():
        for values in model._default_manager.values_list(*names):
            for name, value in zip(names, values, strict=True):
                rows.append((f"{model._meta.label}.{name}", str(value)))
    return rows


def _pages(call_id: int, supervisor: User, admin: User) -> dict[str, str]:
    """The API, all five exports, search results and admin pages of the call."""
    client = Client()
    client.force_login(supervisor)
    pages: dict[str, str] = {}
    for path in [
        f"/api/calls/{call_id}/",
        f"/api/calls/{call_id}/utterances/",
        f"/api/calls/{call_id}/transcript/",
        *(f"/api/calls/{call_id}/transcript.{fmt}" for fmt in ("json", "csv", "txt", "srt", "vtt")),
        f"/calls/{call_id}/",
        "/history/?q=card",
        "/api/calls/?q=card",
    ]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        pages[path] = response.content.decode()
    for secret in (CARD, EMAIL, "4532", "example"):
        found = client.get("/api/calls/", {"q": secret}).json()
        pages[f"search {secret}"] = str(found)
        assert found["count"] == 0, f"searching {secret!r} found the call"
    staff = Client()
    staff.force_login(admin)
    utterance_ids = list(Utterance.objects.filter(call_id=call_id).values_list("pk", flat=True))
    for path in [
        "/admin/streaming/utterance/",
        "/admin/streaming/utterance/?q=card",
        f"/admin/streaming/call/{call_id}/change/",
        *(f"/admin/streaming/utterance/{pk}/change/" for pk in utterance_ids),
    ]:
        response = staff.get(path)
        assert response.status_code == 200, (path, response.status_code)
        pages[path] = response.content.decode()
    return pages


async def test_nothing_said_that_is_pii_is_kept_anywhere(
    settings: Any, supervisor: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.CALLSITE_REDACT = "on"
    settings.CALLSITE_FAKE_RECOGNIZER = "script=" + "|".join(RECOGNIZER_SCRIPT)
    settings.CALLSITE_RECORDING = "on"
    settings.CALLSITE_RECORDING_CHUNK_SECONDS = 1
    admin = await database_sync_to_async(User.objects.create_superuser)(
        "root", password="root-password-123"
    )
    ws = acs_socket(CALL)
    assert (await ws.connect())[0]
    await ws.send_to(text_data=transcription_metadata(CALL))
    call_id = (await Call.objects.aget(connection_id=CALL)).pk
    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call_id}/")
    wall = await page_socket(supervisor, "/ws/dashboard/")
    assert (await page.connect())[0]
    assert (await wall.connect())[0]
    received: list[str] = []

    def finals_seen(message: dict[str, Any]) -> bool:
        received.append(str(message))
        return sum("'caption.final'" in m for m in received) >= 8

    await _stream_the_call(ws)
    await wait_for_event(page, finals_seen, within=30)
    await ws.disconnect()
    # What the sockets got after the last final, up to the call's end.
    for socket in (page, wall):
        while not await socket.receive_nothing(timeout=0.5):
            received.append(str(await socket.receive_json_from()))
    await page.disconnect()
    await wall.disconnect()

    assert any("'caption.interim'" in m and "[number]" in m for m in received)
    leaked = [(m[:200], leaks(m)) for m in received if leaks(m)]
    assert not leaked, leaked

    utterances = [u async for u in Utterance.objects.filter(call_id=call_id)]
    assert len(utterances) == 8
    assert all(u.redacted for u in utterances), [(u.text, u.redaction) for u in utterances]
    kinds = sorted({k for u in utterances for k in u.redaction["kinds"]})
    assert kinds == ["card", "email", "iban", "phone"]
    recognized = [u for u in utterances if u.source == "recognizer"]
    assert all(u.redaction["times"] for u in recognized)

    stored = await database_sync_to_async(_every_stored_text)()
    assert any("[card]" in value for _, value in stored)
    leaked_rows = [(column, leaks(value)) for column, value in stored if leaks(value)]
    assert not leaked_rows, leaked_rows

    pages = await database_sync_to_async(_pages)(call_id, supervisor, admin)
    assert "[card]" in pages[f"/api/calls/{call_id}/transcript.txt"]
    assert '"redacted": true' in pages[f"/api/calls/{call_id}/transcript.json"]
    leaked_pages = [(path, leaks(body)) for path, body in pages.items() if leaks(body)]
    assert not leaked_pages, leaked_pages
    assert not leaks(caplog.text), leaks(caplog.text)

    # The recording is silent wherever something was masked, in every track and the mix.
    spans = [t for u in recognized for t in u.redaction["times"]]
    tracks = await database_sync_to_async(_recorded_tracks)(call_id)
    assert len(tracks) == 2  # the caller's audio, and the mix
    for name, (samples, rate) in tracks.items():
        assert samples.any(), f"{name}: nothing recorded"
        for span in spans:
            first = span["start_ticks"] * rate // 10_000_000
            last = span["end_ticks"] * rate // 10_000_000
            assert not samples[first:last].any(), (name, span)


def _recorded_tracks(call_id: int) -> dict[str, Any]:
    from streaming.models import Recording
    from streaming.recording import codec, store

    tracks = {}
    for recording in Recording.objects.filter(call_id=call_id).exclude(file=""):
        with store.storage().open(str(recording.file.name), "rb") as file:
            tracks[recording.track or "mixed"] = codec.decode(file.read())
    return tracks


async def test_acs_text_acs_was_asked_to_redact_is_kept_as_sent(settings: Any) -> None:
    """ACS redacts when its options say so: its text is stored as sent, marked by ACS."""
    settings.CALLSITE_REDACT = "on"
    ws = acs_socket("acs-redacts")
    assert (await ws.connect())[0]
    metadata = wire.transcription_metadata(
        call_connection_id="acs-redacts",
        piiRedactionOptions={"enable": True, "redactionType": "maskWithCharacter"},
    )
    await ws.send_to(text_data=metadata)
    await ws.send_to(text_data=transcription_data("My card is ****************."))
    await ws.disconnect()
    stored = await Utterance.objects.aget(call__connection_id="acs-redacts")
    assert (stored.text, stored.redacted, stored.redaction["by"]) == (
        "My card is ****************.",
        True,
        "acs",
    )


async def test_with_redaction_off_nothing_is_masked_or_marked() -> None:
    ws = acs_socket("not-redacted")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=transcription_metadata("not-redacted"))
    await ws.send_to(text_data=transcription_data(ACS_FINALS[0]))
    await ws.disconnect()
    stored = await Utterance.objects.aget(call__connection_id="not-redacted")
    assert (stored.text, stored.redacted, stored.redaction) == (ACS_FINALS[0], None, {})


async def test_dtmf_digits_stay_masked_under_redaction_whatever_dtmf_says(settings: Any) -> None:
    settings.CALLSITE_REDACT = "on"
    settings.CALLSITE_DTMF_DIGITS = "keep"
    ws = acs_socket("dtmf-redacted")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=audio_metadata())
    await ws.send_to(text_data=wire.dtmf_data("7", participant=CUSTOMER))
    await ws.disconnect()
    call = await Call.objects.aget(connection_id="dtmf-redacted")
    tones = [e.data async for e in call.events.filter(type="DtmfData")]
    assert [(t["tone"], t["masked"]) for t in tones] == [("•", True)]
