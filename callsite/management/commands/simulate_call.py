"""``manage.py simulate_call``: stream simulated ACS calls to a Callsite endpoint.

A call is a transcription script, an audio script, or WAV files given with ``--wav``. A thin
wrapper around :func:`simulator.simulate_calls`; see ``docs/simulator.md``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator import (
    DEFAULT_SCRIPT,
    MIXED,
    SAMPLE_RATES,
    AudioScript,
    CallResult,
    CallsFailedError,
    Script,
    ScriptError,
    SimulatorError,
    audio_script_from_wavs,
    load_audio_script,
    load_call_script,
    script_kind,
    simulate_calls,
)

DEFAULT_URL = "ws://127.0.0.1:8000/ws/acs/"
TOKEN_ENV = "CALLSITE_ACS_SHARED_SECRET"


class Command(BaseCommand):
    """Parse options, load the script or WAVs and run rounds of :func:`simulate_calls`."""

    help = "Stream simulated ACS calls (transcription or audio) to a Callsite WebSocket endpoint."
    # A client of the server: the server's own configuration checks say nothing about it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
        parser.add_argument(
            "--token",
            help=f"shared secret sent as ?token= (default: ${TOKEN_ENV}); a value given here "
            "is visible to every user of the machine in `ps`: prefer the variable or --token-file",
        )
        parser.add_argument(
            "--token-file", help="read the shared secret from this file (its first line)"
        )
        parser.add_argument(
            "--script",
            help=f"TOML call script, transcription or audio (default: {DEFAULT_SCRIPT.name})",
        )
        parser.add_argument(
            "--wav",
            action="append",
            default=[],
            help="16-bit mono WAV, one per participant (repeat); instead of --script",
        )
        parser.add_argument(
            "--raw-id",
            action="append",
            default=[],
            help="participantRawID for each --wav, in order (default: agent, then customers)",
        )
        parser.add_argument(
            "--mixed", action="store_true", help="send one mixed stream instead of one per WAV"
        )
        parser.add_argument(
            "--sample-rate",
            type=int,
            help="16000 or 24000 (default: the script's, or 16000); WAVs are resampled to it",
        )
        parser.add_argument(
            "--no-resample",
            action="store_true",
            help="fail on a WAV at another rate instead of resampling it",
        )
        parser.add_argument("--calls", type=int, default=1, help="concurrent calls per round")
        parser.add_argument(
            "--speed", type=float, default=1.0, help="1.0 = real time, 0 = as fast as possible"
        )
        parser.add_argument("--repeat", type=int, default=1, help="rounds to run; 0 = forever")
        parser.add_argument(
            "--stagger", type=float, default=0.5, help="seconds between call starts (at 1x)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        calls, repeat = options["calls"], options["repeat"]
        speed, stagger = options["speed"], options["stagger"]
        # Validated here rather than with argparse types so call_command() gets the same checks.
        if calls < 1:
            raise CommandError("--calls must be at least 1")
        if repeat < 0:
            raise CommandError("--repeat must be 0 (forever) or more")
        if math.isnan(speed):
            raise CommandError("--speed must be a number")
        if not (stagger >= 0 and math.isfinite(stagger)):
            raise CommandError("--stagger must be a number of seconds >= 0")
        script = self._load(options)
        token = self._token(options)
        if token is None:
            self.stderr.write(f"No --token and no ${TOKEN_ENV}: connecting without a token.")

        rounds = itertools.count(1) if repeat == 0 else range(1, repeat + 1)
        self._completed = self._finals = self._frames = self._packets = 0
        self._started = time.monotonic()
        if isinstance(script, AudioScript):
            what = (
                f"audio, {script.mode}, {len(script.tracks)} stream(s) at {script.sample_rate} Hz, "
                f"{script.duration:.1f} s"
            )
        else:
            what = f"{len(script.turns)} turns"
        self.stdout.write(
            f"Streaming {script.title!r} ({what}) to {options['url']}: "
            f"{calls} call(s) per round, speed {speed:g}"
        )
        try:
            for number in rounds:
                prefix = f"[round {number}] " if repeat != 1 else ""
                try:
                    results = asyncio.run(
                        simulate_calls(
                            options["url"],
                            script=script,
                            calls=calls,
                            token=token,
                            speed=speed,
                            stagger=stagger,
                            progress=self._reporter(prefix),
                        )
                    )
                except CallsFailedError as exc:
                    self._count(exc.results)
                    self._summary()
                    raise CommandError(str(exc)) from exc
                except SimulatorError as exc:
                    raise CommandError(str(exc)) from exc
                self._count(results)
        except KeyboardInterrupt:
            self.stdout.write("Interrupted.")
        self._summary()

    def _token(self, options: dict[str, Any]) -> str | None:
        """The shared secret: --token, else --token-file, else the environment."""
        if options["token"] and options.get("token_file"):
            raise CommandError("give either --token or --token-file, not both")
        if options.get("token_file"):
            try:
                with open(options["token_file"], encoding="utf-8") as secret:
                    token = secret.readline().strip()
            except OSError as error:
                raise CommandError(
                    f"cannot read --token-file {options['token_file']}: {error.strerror}"
                ) from error
            if not token:
                raise CommandError(f"--token-file {options['token_file']} is empty")
            return token
        return options["token"] or os.environ.get(TOKEN_ENV) or None

    def _load(self, options: dict[str, Any]) -> Script | AudioScript:
        """The call to play: WAVs, or a script of either kind, with the audio options applied."""
        wavs, raw_ids, rate = options["wav"], options["raw_id"], options["sample_rate"]
        mixed, no_resample = options["mixed"], options["no_resample"]
        if rate is not None and rate not in SAMPLE_RATES:
            raise CommandError("--sample-rate must be 16000 or 24000")
        try:
            if wavs:
                if options["script"]:
                    raise CommandError("give either --script or --wav, not both")
                return audio_script_from_wavs(
                    wavs,
                    mixed=mixed,
                    sample_rate=rate or SAMPLE_RATES[0],
                    resample=not no_resample,
                    raw_ids=raw_ids or None,
                )
            if raw_ids:
                raise CommandError("--raw-id names the participants of --wav files")
            path = options["script"] or DEFAULT_SCRIPT
            if mixed or rate or no_resample:
                if script_kind(path) != "audio":
                    raise CommandError(
                        "--mixed, --sample-rate and --no-resample are for audio calls; "
                        f"{path} is a transcription script"
                    )
                return load_audio_script(
                    path,
                    mode=MIXED if mixed else None,
                    sample_rate=rate,
                    resample=False if no_resample else None,
                )
            return load_call_script(path)
        except ScriptError as exc:
            raise CommandError(str(exc)) from exc

    def _reporter(self, prefix: str) -> Callable[[str], None]:
        def report(line: str) -> None:
            self.stdout.write(prefix + line)

        return report

    def _count(self, results: list[CallResult]) -> None:
        # Running totals rather than a list: the demo loop may run for days.
        self._completed += len(results)
        self._finals += sum(r.finals_sent for r in results)
        self._frames += sum(r.frames_sent for r in results)
        self._packets += sum(r.packets_sent for r in results)

    def _summary(self) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"{self._completed} call(s) completed: {self._finals} finals, "
                f"{self._frames} audio frames, "
                f"{self._packets} packets in {time.monotonic() - self._started:.1f} s"
            )
        )
