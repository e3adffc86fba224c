"""Recordings in storage and in the database: chunks, renditions, silencing, deletion.

Every function here is synchronous (ORM and storage I/O): the audio path calls them through
``db_write``/``db_call``, off its event loop. Storage names:

    call-<call id>/track-<recording id>/<start tick>.flac   a chunk, as received
    call-<call id>/track-<recording id>.flac                the assembled track
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from streaming.models import Recording, RecordingChunk, RecordingKind, Utterance
from streaming.recording import codec
from streaming.redaction.core import TimeSpan

logger = logging.getLogger(__name__)

BLOCK = 64 * 1024  # bytes read at a time when a file is served


def storage() -> Storage:
    return storages["recordings"]


def _replace(name: str, data: bytes) -> str:
    """Write ``data`` at ``name``, replacing what is there; the name written."""
    where = storage()
    if where.exists(name):
        where.delete(name)
    return where.save(name, ContentFile(data))


def _read(name: str) -> bytes:
    with storage().open(name, "rb") as file:
        return bytes(file.read())


@dataclass(frozen=True)
class TrackKey:
    """Which track of which call a chunk belongs to."""

    call_id: int
    track: str  # the participant's raw id; "" for a mixed stream
    participant_id: int | None


def recording_for(key: TrackKey, sample_rate: int) -> Recording:
    kind = RecordingKind.PARTICIPANT if key.track else RecordingKind.MIXED
    recording, _ = Recording.objects.get_or_create(
        call_id=key.call_id,
        track=key.track,
        defaults={"kind": kind, "participant_id": key.participant_id, "sample_rate": sample_rate},
    )
    return recording


def track_end(*, call_id: int, track: str) -> int:
    """Where a track's stored chunks end on the call's timeline (ticks; 0: none stored)."""
    chunk = (
        RecordingChunk.objects.filter(recording__call_id=call_id, recording__track=track)
        .order_by("-start_ticks")
        .first()
    )
    return (
        0 if chunk is None else chunk.start_ticks + codec.to_ticks(chunk.samples, chunk.sample_rate)
    )


def save_chunk(*, key: TrackKey, start_ticks: int, sample_rate: int, pcm: bytes | bytearray) -> int:
    """Store a chunk of one track; its row's id. A chunk at a start already stored (a stream
    resumed over what was kept) replaces it."""
    samples = np.frombuffer(bytes(pcm), dtype="<i2")
    recording = recording_for(key, sample_rate)
    name = _replace(
        f"call-{key.call_id}/track-{recording.pk}/{start_ticks:015d}.flac",
        codec.encode(samples, sample_rate),
    )
    with transaction.atomic():
        chunk, created = RecordingChunk.objects.select_for_update().get_or_create(
            recording=recording,
            start_ticks=start_ticks,
            defaults={"samples": len(samples), "sample_rate": sample_rate, "file": name},
        )
        if not created:
            if chunk.file.name != name:
                storage().delete(str(chunk.file.name))
            chunk.samples, chunk.sample_rate, chunk.file.name = len(samples), sample_rate, name
            chunk.save(update_fields=["samples", "sample_rate", "file"])
    return chunk.pk


def redacted_spans(call_id: int) -> list[TimeSpan]:
    """The time spans redaction masked in the call's stored utterances."""
    spans = []
    for record in Utterance.objects.filter(call_id=call_id, redacted=True).values_list(
        "redaction", flat=True
    ):
        for t in (record or {}).get("times", []):
            spans.append(TimeSpan(str(t["kind"]), int(t["start_ticks"]), int(t["end_ticks"])))
    return spans


def _silence(samples: np.ndarray, rate: int, start_ticks: int, spans: Iterable[TimeSpan]) -> int:
    """Zero ``samples`` (starting at ``start_ticks``) over ``spans``; how many spans hit."""
    hit = 0
    for span in spans:
        first = max(0, codec.to_samples(span.start_ticks - start_ticks, rate))
        last = min(len(samples), codec.to_samples(span.end_ticks - start_ticks, rate) + 1)
        if first < last:
            samples[first:last] = 0
            hit += 1
    return hit


def _track(recording: Recording, rate: int, length: int, spans: Sequence[TimeSpan]) -> np.ndarray:
    """One track's chunks laid on the call's timeline; silence where nothing was received."""
    samples = np.zeros(length, dtype=np.int16)
    for chunk in recording.chunks.order_by("start_ticks"):
        data, chunk_rate = codec.decode(_read(str(chunk.file.name)))
        data = codec.resample(data, chunk_rate, rate)
        at = codec.to_samples(chunk.start_ticks, rate)
        if at < length:
            data = data[: length - at]
            samples[at : at + len(data)] = data
    _silence(samples, rate, 0, spans)
    return samples


def _write_rendition(recording: Recording, samples: np.ndarray, rate: int) -> None:
    data = codec.encode(samples, rate)
    recording.file.name = _replace(f"call-{recording.call_id}/track-{recording.pk}.flac", data)
    recording.size = len(data)
    recording.sample_rate = rate
    recording.duration_ticks = codec.to_ticks(len(samples), rate)
    recording.assembled_at = timezone.now()
    recording.save(update_fields=["file", "size", "sample_rate", "duration_ticks", "assembled_at"])


def assemble(*, call_id: int, spans: Sequence[TimeSpan] = ()) -> int:
    """Build the call's renditions from its chunks: one FLAC per track from the call's first
    audio to its last, and a mix of the participants' tracks; how many were written.

    Redacted spans (the utterances' and ``spans``) are silent in every rendition.
    """
    received = list(Recording.objects.filter(call_id=call_id, chunks__isnull=False).distinct())
    if not received:
        return 0
    chunks = RecordingChunk.objects.filter(recording__call_id=call_id)
    rate = max(chunks.values_list("sample_rate", flat=True))
    end = max(c.start_ticks + codec.to_ticks(c.samples, c.sample_rate) for c in chunks)
    length = codec.to_samples(end, rate)
    silenced = [*redacted_spans(call_id), *spans]
    mix = np.zeros(length, dtype=np.int32)
    participants = 0
    for recording in received:
        samples = _track(recording, rate, length, silenced)
        _write_rendition(recording, samples, rate)
        if recording.kind == RecordingKind.PARTICIPANT:
            mix += samples
            participants += 1
    written = len(received)
    if participants and not any(r.kind == RecordingKind.MIXED for r in received):
        mixed, _ = Recording.objects.get_or_create(
            call_id=call_id, track="", defaults={"kind": RecordingKind.MIXED, "sample_rate": rate}
        )
        _write_rendition(mixed, np.clip(mix, -32768, 32767).astype(np.int16), rate)
        written += 1
    logger.info(
        "call %s: %d recording(s) assembled, %.1f s each", call_id, written, end / 10_000_000
    )
    return written


def silence(*, call_id: int, times: Sequence[TimeSpan]) -> int:
    """Silence the call's stored audio over ``times``: every chunk they touch is rewritten,
    and the renditions are built again if they were; how many spans touched stored audio."""
    if not times:
        return 0
    hit: set[TimeSpan] = set()
    overlapping = Q()
    for span in times:
        overlapping |= Q(start_ticks__lt=span.end_ticks)
    for chunk in RecordingChunk.objects.filter(recording__call_id=call_id).filter(overlapping):
        data, rate = codec.decode(_read(str(chunk.file.name)))
        touched = [s for s in times if _silence(data, rate, chunk.start_ticks, [s])]
        if touched:
            _replace(str(chunk.file.name), codec.encode(data, rate))
            hit.update(touched)
    if Recording.objects.filter(call_id=call_id, assembled_at__isnull=False).exists():
        assemble(call_id=call_id, spans=times)
    return len(hit)


def delete(*, call_ids: Iterable[int], dry_run: bool) -> int:
    """Delete the recordings of ``call_ids`` (files and rows); how many tracks there were."""
    recordings = Recording.objects.filter(call_id__in=list(call_ids))
    count = recordings.count()
    if dry_run or not count:
        return count
    where = storage()
    names = [
        *RecordingChunk.objects.filter(recording__in=recordings).values_list("file", flat=True),
        *recordings.exclude(file="").values_list("file", flat=True),
    ]
    for name in names:
        if name and where.exists(name):
            where.delete(name)
    recordings.delete()
    return count


def _blocks(name: str, start: int, length: int) -> Generator[bytes]:
    """The bytes asked for, in blocks: from Azure Blob and S3 by a ranged download (a seek in a
    long call's track costs what it reads, not the whole file), from other storages by a seek."""
    where = storage()
    backend = type(where).__module__
    if backend == "storages.backends.azure_storage":
        downloader = where.client.download_blob(  # type: ignore[attr-defined]
            where._get_valid_path(name),  # type: ignore[attr-defined]
            offset=start,
            length=length,
        )
        yield from downloader.chunks()
        return
    if backend == "storages.backends.s3":
        from storages.utils import clean_name

        key = where._normalize_name(clean_name(name))  # type: ignore[attr-defined]
        answer = where.bucket.Object(key).get(  # type: ignore[attr-defined]
            Range=f"bytes={start}-{start + length - 1}"
        )
        yield from answer["Body"].iter_chunks(BLOCK)
        return
    with where.open(name, "rb") as file:
        file.seek(start)
        left = length
        while left > 0 and (block := file.read(min(BLOCK, left))):
            left -= len(block)
            yield block


def _next_block(blocks: Generator[bytes]) -> bytes:
    return next(blocks, b"")


async def read_bytes(name: str, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of a stored file from ``start``, in blocks, read off the event loop."""
    blocks = await sync_to_async(_blocks, thread_sensitive=False)(name, start, length)
    try:
        while block := await sync_to_async(_next_block, thread_sensitive=False)(blocks):
            yield block
    finally:
        await sync_to_async(blocks.close, thread_sensitive=False)()
