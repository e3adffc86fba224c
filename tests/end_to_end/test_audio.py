"""End to end: the demo call's WAVs, streamed as unmixed ACS audio, through a real Daphne
process running a real recognizer (whisper, the default, and sphinx), to stored utterances with
the right speakers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from simulator import DEMO_AUDIO_DIR, load_call_script, stream_call
from streaming.models import Call, CallEvent, CallState, TalkSecond, TranscriptSource, Utterance
from streaming.recognizers.evaluation import normalize, word_errors
from tests.conftest import DaphneServer

pytestmark = pytest.mark.live_server

DEMO = DEMO_AUDIO_DIR
SPEED = 2.0  # the 47 s call in about 24 s: 4x real time for one decoder of two speakers, a
# margin of 2-3x below what sphinx decodes on a busy core
AZURE_SPEED = 2.0  # the Speech SDK uploads audio at a bounded pace
TICKS = 10_000_000


def reference_turns() -> list[tuple[str, float, float, str]]:
    turns = []
    for line in (DEMO / "transcript.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            speaker, start, end, text = line.split("\t", 3)
            turns.append((speaker, float(start), float(end), text))
    return turns


# Each embedded backend: the server's environment (whisper with nothing configured: an empty
# CALLSITE_RECOGNIZER is the default), and how much of the demo call's words may be wrong.
BACKENDS = {
    "whisper": ({"CALLSITE_RECOGNIZER": ""}, 0.1),
    "sphinx": ({"CALLSITE_RECOGNIZER": "sphinx", "CALLSITE_SPHINX_WORKERS": "1"}, 0.3),
}


def recognizer_worker_pids(server: DaphneServer) -> list[int]:
    """Decoder processes the server started (its children running a recognizer worker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server.process.pid and b"streaming.recognizers." in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_for(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def stream_demo(server: DaphneServer, call_id: str, speed: float = SPEED) -> None:
    asyncio.run(
        stream_call(
            f"{server.ws_url}/ws/acs/",
            call_connection_id=call_id,
            script=load_call_script(DEMO / "two_speaker_call.toml"),
            token=settings.CALLSITE_ACS_SHARED_SECRET,
            speed=speed,
        )
    )


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_unmixed_wavs_become_utterances_of_the_right_speakers(
    daphne_factory: Any, backend: str
) -> None:
    environment, tolerated = BACKENDS[backend]
    server = daphne_factory(**environment)
    stream_demo(server, "live-audio-1")
    assert wait_for(
        lambda: Call.objects.filter(connection_id="live-audio-1", state=CallState.ENDED).exists()
    ), server.output()
    call = Call.objects.get(connection_id="live-audio-1")
    assert call.transcript_source == TranscriptSource.RECOGNIZER
    utterances = list(
        Utterance.objects.filter(call=call).select_related("participant").order_by("offset_ticks")
    )
    turns = reference_turns()
    assert len(utterances) >= len(turns) - 2, [u.text for u in utterances]
    # Each utterance lies within a reference turn of its own speaker.
    for utterance in utterances:
        assert utterance.offset_ticks is not None
        assert utterance.duration_ticks is not None
        start = utterance.offset_ticks / TICKS
        end = start + utterance.duration_ticks / TICKS
        overlap, speaker = max(
            (max(0.0, min(end, t_end) - max(start, t_start)), who)
            for who, t_start, t_end, _ in turns
        )
        assert overlap > 0, (utterance.text, start, end)
        assert utterance.participant is not None
        assert utterance.participant.role == speaker, (utterance.text, start, end)
        assert 0 < (utterance.confidence or 0) <= 1
        assert utterance.words
        assert all(0 < w["confidence"] <= 1 for w in utterance.words)
        # Word times lie within the utterance, in order, on the call's timeline.
        offsets = [w["offset"] for w in utterance.words]
        assert offsets == sorted(offsets)
        end_ticks = utterance.offset_ticks + utterance.duration_ticks
        assert all(utterance.offset_ticks <= o <= end_ticks for o in offsets)
    # And the words are mostly right.
    for role in ("agent", "customer"):
        said = normalize(" ".join(t[3] for t in turns if t[0] == role))
        heard = normalize(
            " ".join(u.text for u in utterances if u.participant and u.participant.role == role)
        )
        assert word_errors(said, heard) / len(said) < tolerated, (
            role,
            " ".join(heard),
            server.output()[-3000:],
        )
    # Talk time for both streams, for the whole call (46.9 s).
    seconds = TalkSecond.objects.filter(call=call)
    assert set(seconds.values_list("stream", flat=True)) == {
        p.raw_id for p in call.participants.all()
    }
    assert seconds.filter(stream__startswith="4:").count() == 47


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(
    ("fault", "reason"),
    [(signal.SIGKILL, "exited"), (signal.SIGSTOP, "answered nothing")],
    ids=["crashed", "hung"],
)
def test_a_killed_recognizer_process_costs_a_marked_gap_not_the_call(
    daphne_factory: Any, fault: signal.Signals, reason: str, backend: str
) -> None:
    """The decoder process dies (SIGKILL) or hangs (SIGSTOP: the watchdog kills it)."""
    prefix = f"CALLSITE_{backend.upper()}_"
    server = daphne_factory(
        CALLSITE_RECOGNIZER=backend,
        **{f"{prefix}WORKERS": "1", f"{prefix}WATCHDOG_SECONDS": "2"},
    )
    killed: list[int] = []

    def kill_when_the_call_is_under_way() -> None:
        # Break the decoder a few seconds into the call (after the first turn is stored).
        if wait_for(lambda: Utterance.objects.filter(call__connection_id="live-audio-2").exists()):
            for pid in recognizer_worker_pids(server):
                os.kill(pid, fault)
                killed.append(pid)

    killer = threading.Thread(target=kill_when_the_call_is_under_way)
    killer.start()
    stream_demo(server, "live-audio-2")
    killer.join()
    assert killed, "no decoder process was found to kill"
    assert wait_for(
        lambda: Call.objects.filter(connection_id="live-audio-2", state=CallState.ENDED).exists()
    ), server.output()
    call = Call.objects.get(connection_id="live-audio-2")
    gaps = CallEvent.objects.filter(call=call, type="recognition.gap")
    assert gaps.exists(), server.output()
    assert all(reason in g.result_message for g in gaps), [g.result_message for g in gaps]
    engine = {"whisper": "whisper", "sphinx": "pocketsphinx"}[backend]
    assert all(f"the {engine} worker" in g.result_message for g in gaps)
    # Recognition went on after the crash: the call's last turns were still transcribed.
    last_gap_end = max(g.data["end_ticks"] for g in gaps)
    later = Utterance.objects.filter(call=call, offset_ticks__gt=last_gap_end)
    assert later.count() >= 3, server.output()
    assert set(recognizer_worker_pids(server)) & set(killed) == set()
    assert "restarting" in server.output()


def test_the_azure_backend_does_the_same_against_the_speech_standin(
    daphne_factory: Any,
) -> None:
    """Real Speech SDK in the server, the stand-in as the service: speakers and words stored."""
    from tests.standins.speech import ScriptedPhrase, SpeechStandIn

    turns = reference_turns()
    script = [ScriptedPhrase(text, start, end, speaker=None) for _, start, end, text in turns]
    with SpeechStandIn(script, voiced_only=True) as service:
        server = daphne_factory(CALLSITE_RECOGNIZER="azure", SPEECH_ENDPOINT=service.url)
        stream_demo(server, "live-audio-azure", AZURE_SPEED)
        assert wait_for(
            lambda: Call.objects.filter(
                connection_id="live-audio-azure", state=CallState.ENDED
            ).exists(),
            timeout=60,
        ), server.output()
        sessions = len(service.connections)
    call = Call.objects.get(connection_id="live-audio-azure")
    stored = [
        (u.participant.role if u.participant else None, u.text)
        for u in Utterance.objects.filter(call=call)
        .select_related("participant")
        .order_by("offset_ticks")
    ]
    # Every turn, exactly once, under its own speaker (one SDK session per participant).
    assert stored == [(speaker, text) for speaker, _, _, text in turns], server.output()
    assert sessions >= 2
    first = Utterance.objects.filter(call=call).order_by("offset_ticks").first()
    assert first is not None
    assert first.offset_ticks == round(turns[0][1] * TICKS)
    assert first.confidence == pytest.approx(0.9)
    assert [w["text"] for w in first.words][:3] == ["thank", "you", "for"]


def test_a_model_whose_hash_does_not_match_stops_start_up(
    transactional_db: Any, tmp_path: Path, doctored_model: Path
) -> None:
    """The server refuses to start, naming the model file and the hash it expected."""
    from streaming.recognizers.whisper import PACKAGED_SHA256
    from tests.servers import start_server

    environment = {
        "CALLSITE_RECOGNIZER": "whisper",
        "CALLSITE_WHISPER_MODEL": str(doctored_model),
        "CALLSITE_WHISPER_SHA256": PACKAGED_SHA256,
    }
    with pytest.raises(RuntimeError, match="exited with") as refused:
        start_server(environment, log_dir=tmp_path)
    output = str(refused.value)
    assert str(doctored_model / "model.bin") in output
    assert f"expected {PACKAGED_SHA256}" in output
