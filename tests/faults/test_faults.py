"""Faults injected into a running deployment: every final sent is stored exactly once.

Each test runs ``python -m callsite.server`` on its own PostgreSQL cluster and
``redis-server`` (tests/faults/conftest.py), plays an ACS call over a real socket, breaks
something mid-call, and then counts the call's utterances in the database, and what a
supervisor's call page showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.faults.conftest import Cluster, metric, wait_until
from tests.faults.disposable import RedisProcess
from tests.helpers import (
    audio_data,
    audio_metadata,
    tone_frame,
    transcription_data,
    transcription_metadata,
)
from tests.servers import DaphneServer

pytestmark = pytest.mark.live_server

SECONDS = 10_000_000  # ticks


def final(n: int, call: str = "") -> str:
    speaker = "4:+15551230000" if n % 2 else "8:acs:agent-1"
    return transcription_data(
        f"{call}final number {n}", offset=n * 2 * SECONDS, duration=SECONDS, speaker=speaker
    )


def expected(count: int, call: str = "") -> list[str]:
    return [f"{call}final number {n}" for n in range(1, count + 1)]


async def acs(server: DaphneServer, call: str, *, metadata: str | None = None) -> ClientConnection:
    ws = await connect(
        f"{server.ws_url}/ws/acs/?token={settings.CALLSITE_ACS_SHARED_SECRET}",
        additional_headers={"x-ms-call-connection-id": call},
        proxy=None,
    )
    await ws.send(metadata if metadata is not None else transcription_metadata(call))
    return ws


async def page(
    server: DaphneServer, cluster: Cluster, path: str, **options: Any
) -> ClientConnection:
    return await connect(
        f"{server.ws_url}{path}",
        additional_headers={"Cookie": cluster.cookie},
        origin="http://localhost",  # type: ignore[arg-type]
        proxy=None,
        **options,
    )


def api_get(server: DaphneServer, cluster: Cluster, path: str) -> int:
    request = urllib.request.Request(server.http_url + path, headers={"Cookie": cluster.cookie})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def stored(cluster: Cluster, database: str, call: str) -> list[str]:
    rows = cluster.pg.query(
        "SELECT u.text FROM streaming_utterance u JOIN streaming_call c ON c.id = u.call_id"
        f" WHERE c.connection_id = '{call}' ORDER BY u.seq",
        database,
    )
    return [str(r[0]) for r in rows]


def call_id(cluster: Cluster, database: str, call: str) -> int:
    rows = cluster.pg.query(
        f"SELECT id FROM streaming_call WHERE connection_id = '{call}'", database
    )
    return int(rows[0][0])  # type: ignore[call-overload]


async def call_page(server: DaphneServer, cluster: Cluster, database: str, call: str) -> PageReader:
    """A supervisor's page of the call, read in the background."""
    return PageReader(
        await page(server, cluster, f"/ws/dashboard/calls/{call_id(cluster, database, call)}/")
    )


async def until_stored(
    cluster: Cluster, database: str, call: str, count: int, within: float = 30
) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        texts = await asyncio.to_thread(stored, cluster, database, call)
        if len(texts) >= count or time.monotonic() > deadline:
            return texts
        await asyncio.sleep(0.2)


async def call_under_way(
    server: DaphneServer, cluster: Cluster, database: str, call: str
) -> tuple[ClientConnection, PageReader]:
    """A call's ACS socket with finals 1-3 stored, and a supervisor's page showing them."""
    ws = await acs(server, call)
    for n in (1, 2, 3):
        await ws.send(final(n))
    await until_stored(cluster, database, call, 3)
    reader = await call_page(server, cluster, database, call)
    await reader.until(3)
    return ws, reader


class PageReader:
    """Reads a call page's socket in the background: the snapshot's and live finals."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.texts: list[str] = []
        self.seqs: list[int] = []
        self.snapshots = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message["type"] == "snapshot":
                self.snapshots += 1
                for caption in message["captions"]:
                    self._add(caption)
            elif message["type"] == "caption.final":
                self._add(message["caption"])

    def _add(self, caption: dict[str, Any]) -> None:
        self.texts.append(caption["text"])
        self.seqs.append(caption["seq"])

    async def until(self, count: int, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while len(self.texts) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


def tally(sent: list[str], stored_texts: list[str]) -> dict[str, int]:
    """Finals sent (distinct), stored, lost (sent, not stored) and doubled (stored twice)."""
    return {
        "finals_sent": len(set(sent)),
        "finals_stored": len(stored_texts),
        "finals_lost": len(set(sent) - set(stored_texts)),
        "finals_doubled": len(stored_texts) - len(set(stored_texts)),
    }


def assert_no_consumer_crashed(server: DaphneServer) -> None:
    log = server.output()
    assert "Exception inside application" not in log, log[-5000:]


# --- Redis --------------------------------------------------------------------------------------


def test_redis_restart_mid_call(
    cluster: Cluster,
    database: str,
    redis: RedisProcess,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
) -> None:
    """Redis dies for about two seconds mid-call: ingest goes on, the page resumes by itself."""
    server = server_factory()
    call, total = "redis-restart", 40
    outage: list[float] = []
    api_status: list[int] = []

    async def scenario() -> PageReader:
        ws, reader = await call_under_way(server, cluster, database, call)
        for n in range(4, total + 1):
            if n == 12:
                await asyncio.to_thread(redis.kill)
                outage.append(time.monotonic())
            if n == 20:  # the API counts requests in the Redis cache: it still answers
                api_status.append(await asyncio.to_thread(api_get, server, cluster, "/api/calls/"))
            if n == 30:
                await asyncio.to_thread(redis.start)
                outage.append(time.monotonic())
            await ws.send(final(n))
            await asyncio.sleep(0.1)
        assert await until_stored(cluster, database, call, total) == expected(total)
        await reader.until(total)
        await ws.close()
        await reader.close()
        return reader

    reader = asyncio.run(scenario())
    report(
        fault="Redis killed mid-call, started again",
        outage_seconds=round(outage[1] - outage[0], 1),
        page_shown=len(reader.texts),
        **tally(expected(total), stored(cluster, database, call)),
    )
    assert stored(cluster, database, call) == expected(total)  # each once, none lost
    # The page missed what was published while Redis was down, then filled the hole from the
    # database when the next final arrived: each once, in order.
    assert reader.texts == expected(total)
    assert reader.seqs == sorted(set(reader.seqs))  # alerts take sequence numbers too
    assert api_status == [200]
    assert_no_consumer_crashed(server)


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_mid_call(
    cluster: Cluster,
    database: str,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
    mode: str,
) -> None:
    """PostgreSQL restarts (``fast``: sessions ended; ``immediate``: a crash) mid-call.

    Finals sent while it is down are retried until it is back: none lost, none doubled,
    and the ACS socket stays open throughout.
    """
    server = server_factory()
    call, total = f"pg-restart-{mode}", 40
    outage: list[float] = []

    async def scenario() -> PageReader:
        ws, reader = await call_under_way(server, cluster, database, call)
        restart = None
        for n in range(4, total + 1):
            if n == 10:
                outage.append(time.monotonic())
                restart = asyncio.create_task(
                    asyncio.to_thread(cluster.pg.restart, mode=mode, down_for=2.0)
                )
                restart.add_done_callback(lambda _: outage.append(time.monotonic()))
            await ws.send(final(n))
            await asyncio.sleep(0.1)
        assert restart is not None
        await restart
        texts = await until_stored(cluster, database, call, total, within=40)
        assert texts == expected(total)
        # The socket was never closed by the server.
        await ws.send(final(total + 1))
        await until_stored(cluster, database, call, total + 1)
        await ws.close()
        await reader.until(total + 1)
        await reader.close()
        return reader

    reader = asyncio.run(scenario())
    report(
        fault=f"PostgreSQL restarted mid-call (pg_ctl stop -m {mode}, 2 s down, start)",
        outage_seconds=round(outage[1] - outage[0], 1),
        db_retries=metric(server, "callsite_ingest_db_retries_total"),
        page_shown=len(reader.texts),
        **tally(expected(total + 1), stored(cluster, database, call)),
    )
    assert stored(cluster, database, call) == expected(total + 1)
    assert reader.texts == expected(total + 1)
    assert_no_consumer_crashed(server)
    assert "final utterance NOT stored" not in server.output()
    assert "database error, retrying" in server.output()


# --- ACS reconnects -----------------------------------------------------------------------------


def test_acs_reconnect_replays_without_duplicates(
    cluster: Cluster,
    database: str,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
) -> None:
    """The stream's TCP connection dies without a close; ACS reconnects and replays it all."""
    server = server_factory()
    call = "acs-replay"

    async def scenario() -> None:
        ws = await acs(server, call)
        for n in range(1, 11):
            await ws.send(final(n))
        ws.transport.abort()  # no close frame: a network cut
        again = await acs(server, call)
        for n in range(1, 16):  # the replay, then the rest of the call
            await again.send(final(n))
        assert await until_stored(cluster, database, call, 15) == expected(15)
        await again.close()

    asyncio.run(scenario())
    time.sleep(0.5)
    report(
        fault="ACS connection cut (no close frame), reconnected, 10 finals replayed",
        frames_sent=25,
        **tally(expected(15), stored(cluster, database, call)),
    )
    assert stored(cluster, database, call) == expected(15)
    assert_no_consumer_crashed(server)


# --- SIGTERM ------------------------------------------------------------------------------------


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return False
    except OSError:
        return True


def test_sigterm_drains_sockets_and_stores_pending_finals(
    cluster: Cluster,
    database: str,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
) -> None:
    """SIGTERM: the server stops listening, closes its sockets with 1012, stores the speech
    still in the recognizer, and exits 0."""
    server = server_factory()
    text_call, audio_call = "drain-text", "drain-audio"
    speaker = "4:+15551230000"
    signalled: list[float] = []

    async def scenario() -> tuple[int | None, int | None, int | None]:
        text_ws = await acs(server, text_call)
        for n in range(1, 6):
            await text_ws.send(final(n))
        audio_ws = await acs(server, audio_call, metadata=audio_metadata(16000))
        tone = tone_frame()
        for i in range(60):  # 1.2 s of speech with no pause after it: no final yet
            await audio_ws.send(audio_data(tone, index=i, speaker=speaker, silent=False))
        assert await until_stored(cluster, database, text_call, 5) == expected(5)
        reader = await call_page(server, cluster, database, text_call)
        await reader.until(5)
        await asyncio.sleep(0.5)  # the audio frames are handled
        assert stored(cluster, database, audio_call) == []

        server.process.send_signal(signal.SIGTERM)
        signalled.append(time.monotonic())
        codes = []
        for ws in (text_ws, audio_ws, reader.ws):
            try:
                await asyncio.wait_for(ws.wait_closed(), 15)
            finally:
                codes.append(ws.close_code)
        await reader.close()
        return codes[0], codes[1], codes[2]

    codes = asyncio.run(scenario())
    assert codes == (1012, 1012, 1012)
    assert _refused(server.port), "still listening while draining"
    assert server.process.wait(30) == 0
    drained = time.monotonic() - signalled[0]
    report(
        fault="SIGTERM with 2 ACS streams and a page open, speech pending in the recognizer",
        close_codes=list(codes),
        exit_seconds=round(drained, 2),
        **tally(
            [*expected(5), "utterance 1"],
            stored(cluster, database, text_call) + stored(cluster, database, audio_call),
        ),
    )
    log = server.output()
    assert "every connection finished" in log, log[-3000:]
    assert stored(cluster, database, text_call) == expected(5)
    # The speech the recognizer held when the signal came was finished and stored.
    assert stored(cluster, database, audio_call) == ["utterance 1"]
    ended = cluster.pg.query(
        "SELECT connection_id, state FROM streaming_call ORDER BY connection_id", database
    )
    assert ended == [(audio_call, "ended"), (text_call, "ended")]


# --- A worker killed mid-call, with recording on ------------------------------------------------

RECORDED_AGENT = "8:acs:agent-recorded"
RATE, FRAME = 16000, 320  # samples in a 20 ms frame


def _recording(cluster: Cluster, database: str, call: str) -> tuple[str, int]:
    """The agent's assembled track (its file's name, '' until assembled) and its stored chunks."""
    rows = cluster.pg.query(
        "SELECT r.file, r.assembled_at IS NOT NULL,"
        " (SELECT count(*) FROM streaming_recordingchunk ch WHERE ch.recording_id = r.id)"
        " FROM streaming_recording r JOIN streaming_call c ON c.id = r.call_id"
        f" WHERE c.connection_id = '{call}' AND r.track = '{RECORDED_AGENT}'",
        database,
    )
    if not rows:
        return "", 0
    file, assembled, chunks = rows[0]
    return (str(file) if assembled else ""), int(chunks)  # type: ignore[call-overload]


def test_a_worker_killed_mid_call_keeps_the_recording_and_the_next_one_continues_it(
    cluster: Cluster,
    database: str,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
    tmp_path: Path,
) -> None:
    """SIGKILL, recording on: what the dead worker had stored stays, its open chunk is lost
    (a silent gap, never more than a chunk), and the stream ACS resumes on another worker
    continues the same track at its place on the call's timeline."""
    import numpy as np
    import soundfile

    from simulator import DEMO_DIR

    recordings = tmp_path / "recordings"
    env = {
        "CALLSITE_RECORDING": "on",
        "CALLSITE_RECORDING_CHUNK_SECONDS": "1",
        "CALLSITE_RECORDINGS_DIR": str(recordings),
    }
    call = "killed-while-recording"
    agent, rate = soundfile.read(DEMO_DIR / "audio" / "agent.wav", dtype="int16")
    assert rate == RATE
    agent = np.asarray(agent[: 5 * RATE])
    assert agent.any()

    def frames(first: int, last: int) -> list[str]:
        return [
            audio_data(
                agent[i * FRAME : (i + 1) * FRAME].tobytes(), index=i, speaker=RECORDED_AGENT
            )
            for i in range(first, last)
        ]

    async def scenario() -> None:
        first = await asyncio.to_thread(server_factory, **env)
        # 2.5 s of the agent's audio: two one-second chunks stored, half a second still open.
        ws = await acs(first, call, metadata=audio_metadata(RATE))
        for message in frames(0, 125):
            await ws.send(message)
        await asyncio.to_thread(
            wait_until,
            lambda: _recording(cluster, database, call)[1] >= 2,
            within=30,
            what="two chunks stored",
        )
        before.append(_recording(cluster, database, call)[1])
        first.stop(kill=True)
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(ws.wait_closed(), 10)
        # ACS reconnects to another worker; 3 s to 5 s of the call follow (what was sent
        # while it reconnected never arrived).
        second.append(await asyncio.to_thread(server_factory, **env))
        ws = await acs(second[0], call, metadata=audio_metadata(RATE))
        for message in frames(150, 250):
            await ws.send(message)
        await ws.close()
        await asyncio.to_thread(
            wait_until,
            lambda: bool(_recording(cluster, database, call)[0]),
            within=30,
            what="the track assembled",
        )

    second: list[DaphneServer] = []
    before: list[int] = []  # the chunks stored when the worker was killed
    asyncio.run(scenario())
    name, _ = _recording(cluster, database, call)
    samples, stored_rate = soundfile.read(recordings / name, dtype="int16")
    assert stored_rate == RATE
    kept = 2 * RATE  # the chunks stored before the kill
    resumed = 3 * RATE
    lost = round(float(np.count_nonzero(samples[kept:resumed] == 0)) / RATE, 2)
    report(
        fault="worker killed (SIGKILL) mid-call with recording on, the stream resumed on another",
        chunks_at_kill=before[0],
        seconds_sent=4.5,
        seconds_kept=round((kept + len(samples) - resumed) / RATE, 2),
        seconds_lost_with_the_worker=0.5,  # received, in its open chunk
        gap_silent_seconds=lost,
    )
    assert len(samples) == 5 * RATE, len(samples) / RATE
    assert np.array_equal(samples[:kept], agent[:kept]), "what was stored before the kill changed"
    assert not samples[kept:resumed].any(), "the lost stretch is not silence"
    assert np.array_equal(samples[resumed:], agent[resumed:]), "the resumed stream is misplaced"
    assert_no_consumer_crashed(second[0])


# --- A slow supervisor --------------------------------------------------------------------------


def test_slow_supervisor_neither_stalls_ingest_nor_loses_captions(
    cluster: Cluster,
    database: str,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
) -> None:
    """A page that stops reading (its TCP window full) while 150 finals arrive."""
    server = server_factory()
    call, total = "slow-page", 150
    words = " ".join(["word"] * 40)

    async def scenario() -> tuple[list[str], list[str], list[int], list[str], list[str]]:
        ws = await acs(server, call)
        await ws.send(final(1))
        await until_stored(cluster, database, call, 1)
        path = f"/ws/dashboard/calls/{call_id(cluster, database, call)}/"
        # The slow page reads its snapshot, then nothing: the client library stops reading
        # from the socket once 2 messages wait, so the kernel's buffers and then the server's
        # fill up.
        slow = await page(server, cluster, path, max_queue=2)
        assert json.loads(await slow.recv())["type"] == "snapshot"
        fast = PageReader(await page(server, cluster, path))
        await fast.until(1)
        for n in range(2, total + 1):
            await ws.send(
                transcription_data(f"line {n} {words}", offset=n * 2 * SECONDS, duration=SECONDS)
            )
            await asyncio.sleep(0.02)
        # Ingest did not wait for the slow page: everything is stored and on the fast page
        # while the slow page has still read nothing.
        texts = await until_stored(cluster, database, call, total)
        await fast.until(total)
        fast_texts = list(fast.texts)
        assert fast.seqs == sorted(set(fast.seqs)), "the fast page got finals out of order"
        # Now the slow page reads what waited for it, in order.
        slow_texts: list[str] = []
        slow_seqs: list[int] = []
        while len(slow_texts) < total - 1:
            message = json.loads(await asyncio.wait_for(slow.recv(), 10))
            if message["type"] == "caption.final":
                slow_texts.append(message["caption"]["text"])
                slow_seqs.append(message["caption"]["seq"])
        await slow.close()
        # A page that lost its socket comes back with ?after= and gets only what it missed.
        resumed = await page(server, cluster, f"{path}?after={fast.seqs[-11]}")
        snapshot = json.loads(await resumed.recv())
        assert snapshot["type"] == "snapshot"
        resumed_texts = [c["text"] for c in snapshot["captions"]]
        await resumed.close()
        await fast.close()
        await ws.close()
        return texts, fast_texts, slow_seqs, slow_texts, resumed_texts

    texts, fast_texts, slow_seqs, slow_texts, resumed_texts = asyncio.run(scenario())
    report(
        fault="a supervisor page stops reading while 150 finals (about 400 bytes each) arrive",
        fast_page_shown=len(fast_texts),
        slow_page_shown_after_stall=len(slow_texts),
        resumed_with_after=len(resumed_texts),
        **tally(
            ["final number 1", *(f"line {n}" for n in range(2, total + 1))],
            [t.split(" word")[0] for t in texts],
        ),
    )
    assert len(texts) == total
    assert len(set(texts)) == total
    assert fast_texts == texts
    assert slow_texts == texts[1:]  # everything after its snapshot, each once, in order
    assert slow_seqs == sorted(set(slow_seqs))
    assert resumed_texts == texts[-10:]
    assert_no_consumer_crashed(server)


def test_page_that_never_reads_is_dropped_and_resumes_without_loss(
    cluster: Cluster,
    database: str,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
) -> None:
    """A page that stops reading for good: the worker drops it once its backlog passes the
    limit, instead of holding ever more for it; the page comes back and misses nothing."""
    limit = 64 * 1024
    server = server_factory(CALLSITE_WS_MAX_BACKLOG_BYTES=str(limit))
    call, most = "never-reads", 3000
    words = " ".join(["word"] * 200)  # about 1 KB a final

    async def scenario() -> dict[str, Any]:
        ws = await acs(server, call)
        await ws.send(final(1))
        await until_stored(cluster, database, call, 1)
        path = f"/ws/dashboard/calls/{call_id(cluster, database, call)}/"
        # A small receive buffer, so that the backlog builds up in the server soon.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", server.port))
        slow = await page(server, cluster, path, max_queue=2, sock=raw)
        snapshot = json.loads(await slow.recv())
        assert snapshot["type"] == "snapshot"
        fast = PageReader(await page(server, cluster, path))
        await fast.until(1)
        sent, dropped_at = 1, 0
        while sent < most and not dropped_at:
            sent += 1
            await ws.send(transcription_data(f"line {sent} {words}", offset=sent * 2 * SECONDS))
            if sent % 25 == 0:  # at the pace the server stores them
                await until_stored(cluster, database, call, sent)
                if metric(server, "callsite_websocket_slow_readers_dropped_total") >= 1:
                    dropped_at = sent
        # The call goes on after the drop.
        for _ in range(20):
            sent += 1
            await ws.send(transcription_data(f"line {sent} {words}", offset=sent * 2 * SECONDS))
        texts = await until_stored(cluster, database, call, sent)
        await fast.until(sent)
        # The slow page reads what reached it before the drop, then finds its socket closed.
        slow_texts: list[str] = []
        slow_seqs = [snapshot["captions"][-1]["seq"]]
        with pytest.raises(ConnectionClosed):  # noqa: PT012 - the close comes after the backlog
            while True:
                message = json.loads(await asyncio.wait_for(slow.recv(), 10))
                if message["type"] == "caption.final":
                    slow_texts.append(message["caption"]["text"])
                    slow_seqs.append(message["caption"]["seq"])
        # It comes back as call.js does, with ?after=<the last seq it has>.
        resumed = await page(server, cluster, f"{path}?after={slow_seqs[-1]}", max_size=None)
        again = json.loads(await resumed.recv())
        await resumed.close()
        await fast.close()
        await ws.close()
        return {
            "sent": sent,
            "dropped_at": dropped_at,
            "texts": texts,
            "fast": list(fast.texts),
            "slow": slow_texts,
            "slow_seqs": slow_seqs,
            "resumed": [c["text"] for c in again["captions"]],
            "dropped": metric(server, "callsite_websocket_slow_readers_dropped_total"),
        }

    result = asyncio.run(scenario())
    texts = result["texts"]
    sent = ["final number 1", *(f"line {n}" for n in range(2, result["sent"] + 1))]
    report(
        fault="a page never reads again while 1 KB finals arrive (backlog limit 64 KiB)",
        dropped_after_finals=result["dropped_at"],
        slow_page_shown_before_drop=len(result["slow"]),
        resumed_with_after=len(result["resumed"]),
        fast_page_shown=len(result["fast"]),
        **tally(sent, [t.split(" word")[0] for t in texts]),
    )
    assert result["dropped_at"], f"the page was not dropped after {result['sent']} finals"
    assert result["dropped"] == 1
    assert [t.split(" word")[0] for t in texts] == sent
    assert result["fast"] == texts
    # What the page had before the drop and what it got back on resuming: every final after
    # its snapshot, once, in order.
    assert result["slow"] + result["resumed"] == texts[1:]
    assert result["slow_seqs"] == sorted(set(result["slow_seqs"]))
    assert "is not reading" in server.output()
    assert_no_consumer_crashed(server)


# --- Frames over the size limit -----------------------------------------------------------------


def test_frame_over_the_size_limit_closes_with_1009_and_the_call_goes_on(
    cluster: Cluster,
    database: str,
    server_factory: Callable[..., DaphneServer],
    report: Callable[..., None],
) -> None:
    server = server_factory(CALLSITE_WS_MAX_MESSAGE_BYTES="65536")
    call = "oversize"

    async def scenario() -> int | None:
        ws = await acs(server, call)
        await ws.send(final(1))
        await ws.send(transcription_data("x" * 70_000))
        with pytest.raises(ConnectionClosed):  # noqa: PT012 - the close comes at some send
            for _ in range(50):
                await ws.send(final(2))
                await asyncio.sleep(0.1)
        code = ws.close_code
        again = await acs(server, call)
        for n in (2, 3):
            await again.send(final(n))
        await until_stored(cluster, database, call, 3)
        await again.close()
        return code

    code = asyncio.run(scenario())
    texts = stored(cluster, database, call)
    report(
        fault="a 70 KB frame over a 64 KiB limit, then a reconnect",
        close_codes=[code],
        **tally(expected(3), texts),
    )
    assert code == 1009
    assert texts[0] == "final number 1"
    assert texts[-2:] == ["final number 2", "final number 3"]
    assert "x" * 1000 not in "".join(texts)


def test_the_size_limit_is_on_what_peers_send_not_on_snapshots(
    cluster: Cluster, database: str, server_factory: Callable[..., DaphneServer]
) -> None:
    """A long call's snapshot is larger than the limit on incoming messages: it is sent."""
    server = server_factory(CALLSITE_WS_MAX_MESSAGE_BYTES="65536")
    call, total = "long-call", 120
    words = " ".join(["word"] * 200)

    async def scenario() -> tuple[int, list[str]]:
        ws = await acs(server, call)
        for n in range(1, total + 1):
            await ws.send(transcription_data(f"line {n} {words}", offset=n * 2 * SECONDS))
        await until_stored(cluster, database, call, total)
        path = f"/ws/dashboard/calls/{call_id(cluster, database, call)}/"
        reader = await page(server, cluster, path)
        raw = await reader.recv()
        await reader.close()
        await ws.close()
        return len(raw), [c["text"].split(" word")[0] for c in json.loads(raw)["captions"]]

    size, shown = asyncio.run(scenario())
    assert size > 65536
    assert shown == [f"line {n}" for n in range(1, total + 1)]
    assert_no_consumer_crashed(server)
