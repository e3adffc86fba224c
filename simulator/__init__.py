"""Simulate ACS calls against Callsite's ingest WebSocket: transcription or audio.

A *transcription script* is a TOML file describing a conversation (the format is in
``simulator.scripts`` and docs/simulator.md).

:func:`plan_packets` turns a script into timed JSON packets shaped like ACS's
(``TranscriptionMetadata`` first, then ``Intermediate`` and ``Final``
``TranscriptionData``); :func:`send_packets` replays any such plan over a WebSocket
in real time (or faster), and :func:`stream_call` / :func:`simulate_calls` combine the
two for one or many concurrent calls.

An *audio script* (``[call] kind = "audio"``) names WAV files instead, one per participant
(unmixed) or one for the whole call (mixed); :func:`load_audio_script` reads it and
:func:`audio_script_from_wavs` builds the same thing from WAV paths. :func:`plan_audio_packets`
lays it out as ``AudioMetadata`` then one 20 ms ``AudioData`` frame per participant per tick,
which the same sender plays. Frames are encoded once per script and shared by every call
that plays it; only the timestamp is formatted per call. See ``docs/simulator.md``.

The package needs no Django: ``python -c "import simulator"`` works anywhere. Its parts:
``scripts`` (transcription scripts), ``audio`` (audio scripts and WAVs), ``plan`` (packets on a
schedule), ``send`` (playing them), and ``wire``, the one encoder of ACS's wire format.
"""

from simulator.audio import (
    AUDIO_MODES,
    DEFAULT_AGENT_RAW_ID,
    DEFAULT_SAMPLE_RATE,
    DEMO_AUDIO_DIR,
    DEMO_AUDIO_MIXED_SCRIPT,
    DEMO_AUDIO_SCRIPT,
    MIXED,
    SAMPLE_RATES,
    UNMIXED,
    AudioScript,
    AudioTrack,
    audio_script_from_wavs,
    default_raw_ids,
    load_audio_script,
    load_call_script,
    mix_pcm,
    read_wav,
    resample_pcm,
    script_kind,
)
from simulator.plan import (
    FINAL_DELAY,
    INTERMEDIATE_SECONDS,
    INTERMEDIATE_WORDS,
    AudioPlan,
    ScheduledPacket,
    plan_audio_packets,
    plan_packets,
)
from simulator.scripts import (
    DEFAULT_CONFIDENCE,
    DEFAULT_LOCALE,
    DEFAULT_PAUSE,
    DEFAULT_SCRIPT,
    DEFAULT_WPM,
    DEMO_DIR,
    MAX_WPM,
    Script,
    ScriptError,
    Speaker,
    Turn,
    load_script,
)
from simulator.send import (
    AUDIO_PROGRESS_SECONDS,
    CallResult,
    CallsFailedError,
    SimulatorError,
    send_packets,
    simulate_calls,
    stream_call,
)
from simulator.wire import (
    AUDIO_DATA,
    AUDIO_METADATA,
    SILENT_BELOW_DBFS,
    TRANSCRIPTION_DATA,
    TRANSCRIPTION_METADATA,
)

__all__ = [
    "AUDIO_DATA",
    "AUDIO_METADATA",
    "AUDIO_MODES",
    "AUDIO_PROGRESS_SECONDS",
    "DEFAULT_AGENT_RAW_ID",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_LOCALE",
    "DEFAULT_PAUSE",
    "DEFAULT_SAMPLE_RATE",
    "DEFAULT_SCRIPT",
    "DEFAULT_WPM",
    "DEMO_AUDIO_DIR",
    "DEMO_AUDIO_MIXED_SCRIPT",
    "DEMO_AUDIO_SCRIPT",
    "DEMO_DIR",
    "FINAL_DELAY",
    "INTERMEDIATE_SECONDS",
    "INTERMEDIATE_WORDS",
    "MAX_WPM",
    "MIXED",
    "SAMPLE_RATES",
    "SILENT_BELOW_DBFS",
    "TRANSCRIPTION_DATA",
    "TRANSCRIPTION_METADATA",
    "UNMIXED",
    "AudioPlan",
    "AudioScript",
    "AudioTrack",
    "CallResult",
    "CallsFailedError",
    "ScheduledPacket",
    "Script",
    "ScriptError",
    "SimulatorError",
    "Speaker",
    "Turn",
    "audio_script_from_wavs",
    "default_raw_ids",
    "load_audio_script",
    "load_call_script",
    "load_script",
    "mix_pcm",
    "plan_audio_packets",
    "plan_packets",
    "read_wav",
    "resample_pcm",
    "script_kind",
    "send_packets",
    "simulate_calls",
    "stream_call",
]
