"""What ACS says besides words, through the real ASGI application: sentiment and language,
transcription options, DTMF tones and who is speaking now."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core import serializers
from django.test import Client

from simulator import wire
from streaming.history.exports import FORMATS, render
from streaming.history.transcripts import transcript_for_call
from streaming.models import Alert, AlertRule, Call, CallEvent, Utterance
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

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acs-packets"
SHARED = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "acs-packets"
SENTIMENT_PACKET = "sdk-js_transcription_data_final_sentiment_language.json"


def _fixture_paths() -> list[Path]:
    """The recorded packet with sentiment and language, from tests/fixtures and, when the
    shared folder is beside the checkout, from there too."""
    paths = [FIXTURES / SENTIMENT_PACKET]
    if (SHARED / SENTIMENT_PACKET).exists():
        paths.append(SHARED / SENTIMENT_PACKET)
    return paths


async def _call_id(connection_id: str) -> int:
    return (await Call.objects.aget(connection_id=connection_id)).pk


def _exports(call_id: int) -> dict[str, str]:
    transcript = transcript_for_call(call_id)
    assert transcript is not None
    return {fmt: render(transcript, fmt)[0] for fmt in FORMATS}


@pytest.mark.parametrize("path", _fixture_paths(), ids=lambda p: p.parent.parent.parent.name)
async def test_recorded_sentiment_and_language_are_kept_everywhere(
    path: Path, supervisor: User
) -> None:
    """The recorded final with sentimentAnalysisResult and languageIdentified is stored with
    both, and both reach the page socket, the API and every export format."""
    ws = acs_socket("sentiment-call")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=transcription_metadata("sentiment-call"))
    call_id = await _call_id("sentiment-call")
    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call_id}/")
    assert (await page.connect())[0]
    packet = await asyncio.to_thread(path.read_text)
    await ws.send_to(text_data=packet)
    final = await wait_for_event(page, lambda m: m["type"] == "caption.final")
    caption = final["caption"]
    assert (caption["sentiment"], caption["sentiment_source"]) == ("neutral", "acs")
    assert caption["language"] == "en-US"
    stored = await Utterance.objects.aget(call_id=call_id)
    assert (stored.sentiment, stored.sentiment_source, stored.language) == (
        "neutral",
        "acs",
        "en-US",
    )
    await ws.disconnect()
    await page.disconnect()

    def read() -> tuple[Any, dict[str, str]]:
        client = Client()
        client.force_login(supervisor)
        api = client.get(f"/api/calls/{call_id}/utterances/").json()
        return api, _exports(call_id)

    api, exports = await database_sync_to_async(read)()
    (row,) = api["results"] if isinstance(api, dict) else api
    assert (row["sentiment"], row["sentiment_source"], row["language"]) == (
        "neutral",
        "acs",
        "en-US",
    )
    line = json.loads(exports["json"])["lines"][0]
    assert (line["sentiment"], line["sentiment_source"], line["language"]) == (
        "neutral",
        "acs",
        "en-US",
    )
    assert exports["csv"].splitlines()[1].endswith(",speech,neutral,acs,en-US,")
    assert "[neutral, en-US]: Hello everyone." in exports["txt"]
    assert "[neutral, en-US]: Hello everyone." in exports["srt"]
    assert "<c.neutral><lang en-US>Hello everyone.</lang></c>" in exports["vtt"]


async def test_the_lexicon_scores_an_angry_final_negative_and_says_so(supervisor: User) -> None:
    """A final without ACS sentiment is scored offline (CALLSITE_SENTIMENT=lexicon, the
    default), marked as the lexicon's; an interim is relayed with the sentiment ACS gave."""
    ws = acs_socket("angry-call")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=transcription_metadata("angry-call"))
    call_id = await _call_id("angry-call")
    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call_id}/")
    assert (await page.connect())[0]
    interim = wire.transcription_data(
        "this is",
        final=False,
        offset=10_000_000,
        duration=5_000_000,
        participant="4:+15555550123",
        sentimentAnalysisResult={"sentiment": "Negative"},
    )
    await ws.send_to(text_data=interim)
    relayed = await wait_for_event(page, lambda m: m["type"] == "caption.interim")
    assert relayed["caption"]["sentiment"] == "negative"
    assert relayed["caption"]["sentiment_source"] == "acs"
    await ws.send_to(
        text_data=transcription_data("This is ridiculous, I am furious and I hate this service!")
    )
    final = await wait_for_event(page, lambda m: m["type"] == "caption.final")
    assert final["caption"]["sentiment"] == "negative"
    assert final["caption"]["sentiment_source"] == "lexicon"
    assert final["caption"]["sentiment_score"] < -0.5
    await ws.disconnect()
    await page.disconnect()


async def test_no_sentiment_is_kept_when_turned_off(settings: Any) -> None:
    settings.CALLSITE_SENTIMENT = "none"
    ws = acs_socket("no-sentiment")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=(FIXTURES / SENTIMENT_PACKET).read_text())
    await ws.send_to(text_data=transcription_data("I am furious!", offset=50_000_000))
    await ws.disconnect()
    rows = [u async for u in Utterance.objects.filter(call__connection_id="no-sentiment")]
    assert [(u.sentiment, u.sentiment_source) for u in rows] == [("", ""), ("", "")]
    assert {u.language for u in rows} == {"en-US", ""}


async def test_negative_finals_in_a_row_raise_a_sentiment_alert() -> None:
    """A customer negative for three finals fires a sentiment rule, once per run."""
    await AlertRule.objects.acreate(
        name="Customer negative for 3 finals", kind="sentiment", finals=3, speaker_role="customer"
    )
    await AlertRule.objects.acreate(
        name="Agent negative", kind="sentiment", finals=1, speaker_role="agent"
    )
    ws = acs_socket("negative-run")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=transcription_metadata("negative-run"))
    for n, text in enumerate(
        ["This is awful.", "I hate waiting.", "Terrible, horrible service.", "Still awful."]
    ):
        await ws.send_to(text_data=transcription_data(text, offset=(n + 1) * 20_000_000))
    await ws.disconnect()
    alerts = [a async for a in Alert.objects.filter(call__connection_id="negative-run")]
    assert [a.kind for a in alerts] == ["sentiment"]
    assert "negative for 3 finals" in alerts[0].message


async def test_transcription_options_from_the_metadata_are_kept(supervisor: User) -> None:
    """What the metadata says transcription was asked for is kept on the call and shown."""
    ws = acs_socket("options-call")
    assert (await ws.connect())[0]
    metadata = wire.transcription_metadata(
        call_connection_id="options-call",
        enableSentimentAnalysis=True,
        piiRedactionOptions={"enable": True, "redactionType": "maskWithCharacter"},
        summarizationOptions={"enableEndCallSummary": True, "locale": "en-US"},
        locales=["en-US", "es-ES"],
        speechRecognitionModelEndpointId="0000a000-9999-5555-ae00-cd00e0bc0001",
    )
    await ws.send_to(text_data=metadata)
    await ws.disconnect()
    call = await Call.objects.aget(connection_id="options-call")
    assert call.transcription_options == {
        "sentiment": True,
        "pii_redaction": {"enable": True, "redaction_type": "maskWithCharacter"},
        "summarization": {"enable_end_call_summary": True, "locale": "en-US"},
        "locales": ["en-US", "es-ES"],
        "speech_model_endpoint_id": "0000a000-9999-5555-ae00-cd00e0bc0001",
    }

    def detail() -> Any:
        client = Client()
        client.force_login(supervisor)
        return client.get(f"/api/calls/{call.pk}/").json()

    assert (await database_sync_to_async(detail)())["transcription_options"]["locales"] == [
        "en-US",
        "es-ES",
    ]


TONES = "4192738605*#"


async def test_dtmf_tones_are_shown_masked_and_no_digit_is_kept(
    supervisor: User, caplog: pytest.LogCaptureFixture
) -> None:
    """Each tone reaches the call page within a second, masked; under the default setting
    no digit is in the database, the logs or any export."""
    caplog.set_level(logging.DEBUG)
    ws = acs_socket("dtmf-call")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=audio_metadata())
    call_id = await _call_id("dtmf-call")
    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call_id}/")
    assert (await page.connect())[0]
    start = wire.frame_time(datetime.now(UTC), 0)
    await ws.send_to(text_data=audio_data(tone_frame(), speaker="4:+15555550199", timestamp=start))
    base = datetime.fromisoformat(start.replace("Z", "+00:00"))
    for n, tone in enumerate(TONES):
        at = base + timedelta(milliseconds=300 * (n + 1))
        sent = time.monotonic()
        await ws.send_to(text_data=wire.dtmf_data(tone, at=at, participant="4:+15555550199"))
        shown = await wait_for_event(page, lambda m: m["type"] == "dtmf.tone", within=1.0)
        assert time.monotonic() - sent < 1.0
        assert shown["tone"]["tone"] == "•"
        assert shown["tone"]["masked"] is True
        assert shown["tone"]["participant"]["raw_id"] == "4:+15555550199"
        assert shown["tone"]["offset_ticks"] == 300 * (n + 1) * 10_000
    # A replay (ACS reconnecting) is one tone.
    first = base + timedelta(milliseconds=300)
    await ws.send_to(text_data=wire.dtmf_data("4", at=first, participant="4:+15555550199"))
    await ws.disconnect()
    await page.disconnect()

    def stored() -> tuple[str, dict[str, str], int]:
        dump = serializers.serialize("json", [*Call.objects.all(), *CallEvent.objects.all()])
        return dump, _exports(call_id), CallEvent.objects.filter(type="DtmfData").count()

    dump, exports, count = await database_sync_to_async(stored)()
    assert count == len(TONES)
    records = json.loads(dump)
    kept = [r["fields"]["data"] for r in records if r["fields"].get("type") == "DtmfData"]
    assert [k["tone"] for k in kept] == ["•"] * len(TONES)
    texts = [json.dumps(r["fields"], ensure_ascii=False) for r in records]
    for tone in TONES:
        assert not any(f'"{tone}"' in text for text in texts), tone
    assert TONES not in dump
    dtmf_logs = [r.getMessage() for r in caplog.records if "DTMF" in r.getMessage()]
    assert len(dtmf_logs) == len(TONES)
    assert all(m.endswith("DTMF tone from 4:+15555550199") for m in dtmf_logs)
    for fmt, body in exports.items():
        assert body.count("[DTMF •]") == len(TONES), fmt
        for tone in "*#":
            assert f"[DTMF {tone}]" not in body, fmt
    csv_rows = [row for row in exports["csv"].splitlines() if ",dtmf," in row]
    assert len(csv_rows) == len(TONES)


async def test_dtmf_digits_are_kept_when_asked(settings: Any) -> None:
    settings.CALLSITE_DTMF_DIGITS = "keep"
    ws = acs_socket("dtmf-keep")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=(FIXTURES / "docs_dtmf_data.json").read_text())
    await ws.disconnect()
    event = await CallEvent.objects.aget(call__connection_id="dtmf-keep", type="DtmfData")
    assert event.data["tone"] == "3"
    assert event.data["masked"] is False


async def test_a_page_sees_speaking_start_within_200_ms_of_the_first_voiced_frame(
    supervisor: User,
) -> None:
    """Unmixed frames: silence, then a voiced frame; the page socket hears that the
    participant speaks within 200 ms (not at the next 1 s tick), and that they stopped."""
    ws = acs_socket("speaking-call")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=audio_metadata())
    call_id = await _call_id("speaking-call")
    speaker = "4:+15555550142"
    for index in range(10):
        await ws.send_to(text_data=audio_data(quiet_frame(), index=index, speaker=speaker))
    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call_id}/")
    assert (await page.connect())[0]
    wall = await page_socket(supervisor, "/ws/dashboard/")
    assert (await wall.connect())[0]
    await asyncio.sleep(0.2)
    sent = time.monotonic()
    await ws.send_to(text_data=audio_data(tone_frame(), index=10, speaker=speaker))
    changed = await wait_for_event(page, lambda m: m["type"] == "speaking.changed", within=1.0)
    latency = time.monotonic() - sent
    assert latency < 0.2, f"speaking shown {latency * 1000:.0f} ms after the voiced frame"
    assert changed["speaking"] == {
        "call_id": call_id,
        "key": speaker,
        "label": "+15555550142",
        "role": "customer",
        "speaking": True,
        "at_ms": 200,
    }
    on_wall = await wait_for_event(wall, lambda m: m["type"] == "speaking.changed", within=1.0)
    assert on_wall["speaking"]["speaking"] is True
    for index in range(11, 11 + 15):
        await ws.send_to(text_data=audio_data(quiet_frame(), index=index, speaker=speaker))
    stopped = await wait_for_event(page, lambda m: m["type"] == "speaking.changed", within=1.0)
    assert stopped["speaking"]["speaking"] is False
    assert stopped["speaking"]["at_ms"] == 220
    await ws.disconnect()
    await page.disconnect()
    await wall.disconnect()


async def test_interims_say_who_speaks_on_a_transcript_driven_call(supervisor: User) -> None:
    ws = acs_socket("interim-speaking")
    assert (await ws.connect())[0]
    await ws.send_to(text_data=transcription_metadata("interim-speaking"))
    call_id = await _call_id("interim-speaking")
    page = await page_socket(supervisor, f"/ws/dashboard/calls/{call_id}/")
    assert (await page.connect())[0]
    await ws.send_to(text_data=transcription_data("so I", status="Intermediate"))
    started = await wait_for_event(page, lambda m: m["type"] == "speaking.changed", within=1.0)
    assert started["speaking"]["speaking"] is True
    await ws.send_to(text_data=transcription_data("So I called."))
    ended = await wait_for_event(page, lambda m: m["type"] == "speaking.changed", within=1.0)
    assert ended["speaking"]["speaking"] is False
    assert ended["speaking"]["at_ms"] == 2200
    await ws.disconnect()
    await page.disconnect()
