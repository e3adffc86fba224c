"""Recordings through the real ACS socket and the real API: two WAVs streamed as unmixed ACS
audio come back sample for sample, each at its place on the call's timeline (a gap as
silence), mixed, served in the byte ranges asked for, to the right people, with an audit; in local
files, in Azure Blob and in S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from channels.db import database_sync_to_async
from django.test import AsyncClient

from callsite.env import recordings_storage_from_env
from streaming.models import Call, Recording, RecordingAccess, RecordingChunk, RecordingKind
from streaming.recording import codec, store
from streaming.redaction.core import TimeSpan
from streaming.retention import purge
from streaming.units import TICKS_PER_SECOND
from tests.factories import team_supervisor
from tests.helpers import acs_socket, audio_data, audio_metadata
from tests.services import require
from tests.standins.object_stores import azurite_blob, azurite_installed, s3_server

pytestmark = pytest.mark.django_db(transaction=True)

AUDIO = Path(__file__).resolve().parents[3] / "simulator" / "calls" / "audio"
AGENT, CUSTOMER = "8:acs:agent-recorded", "4:+15555550199"
RATE, FRAME = 16000, 320  # samples in a 20 ms frame
SECONDS = 4
CUSTOMER_LATE_FRAMES = 50  # the customer's audio starts a second into the call
GAP_AT, GAP_FRAMES = 100, 25  # the agent's audio stops for half a second, two seconds in


def _wav(name: str) -> np.ndarray:
    samples, rate = soundfile.read(AUDIO / f"{name}.wav", dtype="int16")
    assert rate == RATE
    return np.asarray(samples[RATE : RATE * (1 + SECONDS)])  # past the first second's quiet


@pytest.fixture(params=["files", "azure", "s3"])
def recordings_storage(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Each test that records runs three times: with local files, with Azure Blob (Azurite)
    and with S3 (moto's server), configured as production configures them."""
    kind = request.param
    if kind == "files":
        yield kind
        return
    if kind == "azure":
        require(azurite_installed(), "Azurite is not installed (make azurite)")
    with azurite_blob() if kind == "azure" else s3_server() as environ:
        settings.STORAGES = {
            **settings.STORAGES,
            "recordings": recordings_storage_from_env(base_dir=Path("."), environ=environ),
        }
        yield kind


@pytest.fixture
def recording_on(settings: Any, recordings_storage: str) -> None:
    settings.CALLSITE_RECORDING = "on"
    settings.CALLSITE_RECORDING_CHUNK_SECONDS = 1


async def _stream(call: str, frames: list[tuple[int, str, np.ndarray]]) -> None:
    """Send ``(frame index, speaker, samples)`` as ACS sends unmixed audio, then close."""
    ws = acs_socket(call)
    connected, _ = await ws.connect()
    assert connected
    await ws.send_to(text_data=audio_metadata(RATE))
    for index, speaker, samples in frames:
        await ws.send_to(text_data=audio_data(samples.tobytes(), index=index, speaker=speaker))
    await ws.disconnect()


def _call_frames(agent: np.ndarray, customer: np.ndarray) -> list[tuple[int, str, np.ndarray]]:
    frames = []
    for index in range(SECONDS * 50):
        if not GAP_AT <= index < GAP_AT + GAP_FRAMES:
            frames.append((index, AGENT, agent[index * FRAME : (index + 1) * FRAME]))
        if index >= CUSTOMER_LATE_FRAMES:
            frames.append((index, CUSTOMER, customer[index * FRAME : (index + 1) * FRAME]))
    return frames


def _stored(recording: Recording) -> np.ndarray:
    with store.storage().open(str(recording.file.name), "rb") as file:
        samples, rate = codec.decode(file.read())
    assert rate == RATE
    return samples


@database_sync_to_async
def _size(name: str) -> int:
    return store.storage().size(name)


@database_sync_to_async
def _exists(name: str) -> bool:
    return store.storage().exists(name)


@pytest.fixture
async def recorded_call(recording_on: None) -> dict[str, Any]:
    agent, customer = _wav("agent"), _wav("customer")
    await _stream("recorded-call", _call_frames(agent, customer))
    call = await Call.objects.aget(connection_id="recorded-call")
    return {"call": call, "agent": agent, "customer": customer}


def _expected(recorded: dict[str, Any]) -> dict[str, np.ndarray]:
    agent = recorded["agent"].copy()
    agent[GAP_AT * FRAME : (GAP_AT + GAP_FRAMES) * FRAME] = 0  # nothing was received there
    customer = recorded["customer"].copy()
    customer[: CUSTOMER_LATE_FRAMES * FRAME] = 0  # not yet on the call
    mixed = np.clip(agent.astype(np.int32) + customer, -32768, 32767).astype(np.int16)
    return {AGENT: agent, CUSTOMER: customer, "": mixed}


async def test_each_track_holds_what_was_sent_at_its_place_on_the_timeline(
    recorded_call: dict[str, Any],
) -> None:
    expected = _expected(recorded_call)
    recordings = [
        r async for r in Recording.objects.filter(call=recorded_call["call"]).order_by("track")
    ]
    assert {r.track: r.kind for r in recordings} == {
        "": RecordingKind.MIXED,
        AGENT: RecordingKind.PARTICIPANT,
        CUSTOMER: RecordingKind.PARTICIPANT,
    }
    for recording in recordings:
        samples = await database_sync_to_async(_stored)(recording)
        want = expected[recording.track]
        assert len(samples) == len(want), recording
        mismatched = np.flatnonzero(samples != want)
        assert not len(mismatched), f"{recording}: {len(mismatched)} samples differ"
        assert recording.duration_ticks == SECONDS * TICKS_PER_SECOND
        assert recording.size == (await _size(str(recording.file.name)))
    # The participant tracks were written as they came, in chunks of a second at most (the
    # gap sealed one early), each at its place.
    agent_chunks = [
        c.start_ticks
        async for c in RecordingChunk.objects.filter(recording__track=AGENT).order_by("start_ticks")
    ]
    assert agent_chunks == [0, TICKS_PER_SECOND, 2 * TICKS_PER_SECOND + GAP_FRAMES * 200_000,
                            3 * TICKS_PER_SECOND + GAP_FRAMES * 200_000]  # fmt: skip


async def _client_for(user_name: str, *addresses: str) -> AsyncClient:
    """A browser's session of a supervisor whose team looks after ``addresses``, through the
    ASGI application (where the files are streamed from)."""
    client = AsyncClient()
    await client.aforce_login(await database_sync_to_async(team_supervisor)(user_name, *addresses))
    return client


async def _body(response: Any) -> bytes:
    return b"".join([block async for block in response.streaming_content])


async def test_range_requests_get_exactly_the_bytes_asked_for_and_are_audited(
    recorded_call: dict[str, Any], recordings_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = recorded_call["call"]
    client = await _client_for("rana", AGENT)
    listing = await client.get(f"/api/calls/{call.pk}/recordings/")
    assert listing.status_code == 200
    tracks = listing.json()["results"]
    assert [t["kind"] for t in tracks] == ["mixed", "participant", "participant"]
    mixed = tracks[0]
    assert mixed["duration_seconds"] == SECONDS
    url = mixed["url"]
    recording = await Recording.objects.aget(pk=mixed["id"])
    whole = await database_sync_to_async(
        lambda: store.storage().open(str(recording.file.name), "rb").read()
    )()

    def get(**headers: str) -> Any:
        return client.get(url, headers=headers)

    if recordings_storage != "files":
        # Azure Blob and S3 are read by ranged downloads, never by fetching the whole file.
        def whole_file(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the whole file was downloaded to serve a range")

        monkeypatch.setattr(type(store.storage()), "_open", whole_file)

    full = await get()
    assert full.status_code == 200
    assert full["Content-Type"] == "audio/flac"
    assert full["Accept-Ranges"] == "bytes"
    assert await _body(full) == whole

    cases = [
        ("bytes=100-199", 100, 199),
        ("bytes=0-", 0, len(whole) - 1),
        ("bytes=-50", len(whole) - 50, len(whole) - 1),
        (f"bytes={len(whole) - 10}-{len(whole) + 500}", len(whole) - 10, len(whole) - 1),
    ]
    for asked, first, last in cases:
        part = await get(Range=asked)
        assert part.status_code == 206, asked
        assert part["Content-Range"] == f"bytes {first}-{last}/{len(whole)}", asked
        assert int(part["Content-Length"]) == last - first + 1
        assert await _body(part) == whole[first : last + 1], asked

    beyond = await get(Range=f"bytes={len(whole)}-")
    assert beyond.status_code == 416
    assert beyond["Content-Range"] == f"bytes */{len(whole)}"

    download = await client.get(url + "?download=1")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    audit = [
        (a.username, a.how, a.byte_range, a.status)
        async for a in RecordingAccess.objects.order_by("pk")
    ]
    assert audit == [
        ("rana", "listen", "", 200),
        *[("rana", "listen", asked, 206) for asked, _, _ in cases],
        ("rana", "listen", f"bytes={len(whole)}-", 416),
        ("rana", "download", "", 200),
    ]


async def test_another_teams_supervisor_finds_no_recording(
    recorded_call: dict[str, Any],
) -> None:
    call = recorded_call["call"]
    recording = await Recording.objects.filter(call=call).afirst()
    assert recording is not None
    outsider = await _client_for("otto", "8:acs:someone-else")
    for path in (
        f"/api/calls/{call.pk}/recordings/",
        f"/api/calls/{call.pk}/recordings/{recording.pk}.flac",
    ):
        answer = await outsider.get(path)
        assert answer.status_code == 404, path
    assert not await RecordingAccess.objects.aexists()
    anonymous = await AsyncClient().get(f"/api/calls/{call.pk}/recordings/{recording.pk}.flac")
    assert anonymous.status_code == 401


async def test_a_stream_resumed_on_another_socket_continues_the_same_track(
    recording_on: None,
) -> None:
    agent = _wav("agent")
    frames = [(i, AGENT, agent[i * FRAME : (i + 1) * FRAME]) for i in range(SECONDS * 50)]
    await _stream("resumed-call", frames[:70])  # the first worker's socket closes at 1.4 s
    await _stream("resumed-call", frames[70:])  # ACS reconnects, to another worker
    recording = await Recording.objects.aget(call__connection_id="resumed-call", track=AGENT)
    stored = await database_sync_to_async(_stored)(recording)
    differ = np.flatnonzero(stored != agent)
    assert not len(differ), f"{len(differ)} samples differ, from {differ[0] / RATE:.3f} s"


async def test_recording_off_keeps_no_audio(settings: Any) -> None:
    settings.CALLSITE_RECORDING = "off"
    await _stream("unrecorded-call", _call_frames(_wav("agent"), _wav("customer")))
    assert not await Recording.objects.aexists()
    assert not await RecordingChunk.objects.aexists()


async def test_silencing_a_span_silences_every_track_and_the_mix(
    recorded_call: dict[str, Any],
) -> None:
    call = recorded_call["call"]
    span = TimeSpan("card", int(1.5 * TICKS_PER_SECOND), int(1.75 * TICKS_PER_SECOND))
    touched = await database_sync_to_async(store.silence)(call_id=call.pk, times=[span])
    assert touched == 1
    expected = _expected(recorded_call)
    first, last = int(1.5 * RATE), int(1.75 * RATE) + 1
    async for recording in Recording.objects.filter(call=call):
        samples = await database_sync_to_async(_stored)(recording)
        assert not samples[first:last].any(), recording
        want = expected[recording.track]
        assert np.array_equal(samples[:first], want[:first])
        assert np.array_equal(samples[last:], want[last:])


async def test_purging_recordings_deletes_their_files(recorded_call: dict[str, Any]) -> None:
    call = recorded_call["call"]
    names = [str(r.file.name) async for r in Recording.objects.filter(call=call)]
    names += [str(c.file.name) async for c in RecordingChunk.objects.filter(recording__call=call)]
    assert all([await _exists(n) for n in names])

    def run(dry_run: bool) -> dict[str, int]:
        Call.objects.filter(pk=call.pk).update(ended_at=call.created_at)
        return purge({"recordings": 1}, now=call.created_at.replace(year=2100), dry_run=dry_run)

    assert await database_sync_to_async(run)(True) == {"recordings": 3}
    assert all([await _exists(n) for n in names])
    assert await database_sync_to_async(run)(False) == {"recordings": 3}
    assert not any([await _exists(n) for n in names])
    assert not await Recording.objects.aexists()
    assert await Call.objects.filter(pk=call.pk).aexists()
