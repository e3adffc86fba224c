"""Run Callsite on this machine with a simulated call, for a first look.

Migrates the database, creates (or re-keys) a supervisor login with a fresh random password,
starts the server and streams the demo call to it over and over until Ctrl-C or SIGTERM. By
default that is the two-speaker audio call (one WAV per participant, as unmixed ACS audio)
recognised by the configured recognizer.

The demo supervisor is in the Supervisors and Staff groups (Staff see every call, so any call
streamed into the demo shows on the wall) and may edit the alert rules in the admin.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.permissions import STAFF_GROUP, SUPERVISORS_GROUP
from simulator import DEFAULT_SCRIPT, DEMO_AUDIO_SCRIPT

ROOT = Path(settings.BASE_DIR)
DEMO_AUDIO = DEMO_AUDIO_SCRIPT
ANOTHER_CALL = DEFAULT_SCRIPT
# The ACS shared secret of the running demo, for `manage.py simulate_call --token-file`: a
# secret on a command line is visible to every user of the machine in `ps`.
SECRET_FILE = Path(os.environ.get("CALLSITE_DEMO_SECRET_FILE") or ROOT / "var" / "demo-acs-secret")
ALERT_RULE_PERMISSIONS = ["view_alertrule", "add_alertrule", "change_alertrule", "delete_alertrule"]
PR_SET_PDEATHSIG = 1
# How long the server may take to drain after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 5
# The agent of every simulated call (simulator/calls/): "this is Dana".
DEMO_AGENT = "8:acs:5f0c2a91-3d4e-4b6a-9c1f-7e2d8b3a6c40_0000002a-7d1e-4c2b-a0f3-9b8e6d5c4a31"
DEMO_AGENT_NAME = "Dana Whitfield"


class Stop(Exception):
    """SIGTERM arrived: stop as Ctrl-C does."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


class Command(BaseCommand):
    help = "Start Callsite on 127.0.0.1 and stream a simulated call to it (development only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("CALLSITE_DEMO_PORT", 8000))
        )
        parser.add_argument("--username", default="supervisor")
        parser.add_argument("--calls", type=int, default=1, help="concurrent simulated calls")
        parser.add_argument("--speed", type=float, default=1.0, help="1.0 = real time")
        parser.add_argument("--no-simulator", action="store_true", help="only run the server")
        parser.add_argument(
            "--script",
            default=str(DEMO_AUDIO.relative_to(ROOT)),
            help="call script to play (default: the two-speaker audio call; "
            "simulator/calls/billing_call.toml plays ACS transcription packets instead)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if _listening(host, port):
            raise CommandError(
                f"{host}:{port} is already in use; stop what runs there or pass --port "
                "(or set CALLSITE_DEMO_PORT)."
            )
        self.stdout.write("Applying migrations...")
        call_command("migrate", interactive=False, verbosity=0)
        password = self._supervisor(options["username"])
        self._directory()
        secret = settings.CALLSITE_ACS_SHARED_SECRET or secrets.token_urlsafe(24)
        _write_secret(secret)
        env = {**os.environ, "DJANGO_DEBUG": "1", "CALLSITE_ACS_SHARED_SECRET": secret}
        drain = int(env.get("CALLSITE_DRAIN_SECONDS") or 5)
        env["CALLSITE_DRAIN_SECONDS"] = str(drain)
        # The demo records its calls (docs/recordings.md): an ended call's page plays it.
        env["CALLSITE_RECORDING"] = env.get("CALLSITE_RECORDING") or "on"
        self.recording = env["CALLSITE_RECORDING"]

        previous = signal.signal(signal.SIGTERM, _stop)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            server = _child(
                [
                    *(sys.executable, "-m", "callsite.server", "-b", host, "-p", str(port)),
                    *("-v", "0", "callsite.asgi:application"),
                ],
                env,
            )
            processes.append(server)
            self._wait_for(server, host, port)
            self.stdout.write(self.style.SUCCESS(self._banner(options, password)))
            if not options["no_simulator"]:
                # The secret reaches the simulator in its environment, not on its command line.
                processes.insert(
                    0,
                    _child(
                        [
                            *(sys.executable, "manage.py", "simulate_call"),
                            *("--url", f"ws://{host}:{port}/ws/acs/"),
                            *("--calls", str(options["calls"]), "--speed", str(options["speed"])),
                            *("--repeat", "0", "--script", options["script"]),
                        ],
                        env,
                    ),
                )
            server.wait()
            if server.returncode:
                raise CommandError(f"the server exited with code {server.returncode}")
        except (KeyboardInterrupt, Stop):
            self.stdout.write("\nStopping...")
        finally:
            signal.signal(signal.SIGTERM, previous)
            _stop_all(processes, drain + STOP_GRACE_SECONDS)

    def _banner(self, options: dict[str, Any], password: str) -> str:
        host, port = options["host"], options["port"]
        site = f"http://{host}:{port}"
        python = _shown_path(Path(sys.executable))
        another = (
            f"{python} manage.py simulate_call --url ws://{host}:{port}/ws/acs/ "
            f"--token-file {_shown_path(SECRET_FILE)} --script {_shown_path(ANOTHER_CALL)}"
        )
        return (
            "\nCallsite is running.\n"
            f"  Call wall    {site}/\n"
            f"  Username     {options['username']}\n"
            f"  Password     {password}   (new on every start)\n"
            f"  Agents       {site}/agents/   ({DEMO_AGENT_NAME}, who takes the simulated calls)\n"
            f"  History      {site}/history/\n"
            f"  Alert rules  {site}/admin/streaming/alertrule/\n"
            f"  Playing      {options['script']} (recognizer: {settings.CALLSITE_RECOGNIZER})\n"
            f"  Recordings   {self._recordings()}\n"
            f"  Another call {another}\n"
            "Press Ctrl-C to stop.\n"
        )

    recording = "off"  # CALLSITE_RECORDING as the server is given it

    def _recordings(self) -> str:
        if self.recording != "on":
            return "off (CALLSITE_RECORDING)"
        location = getattr(storages["recordings"], "location", None)
        where = _shown_path(Path(location)) if location else "the recordings storage"
        return f"on, in {where}: an ended call's page plays it"

    def _supervisor(self, username: str) -> str:
        """Create or reset the demo supervisor with a new random password; return it."""
        password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = True
        user.is_active = True
        user.save()
        user.groups.add(
            Group.objects.get(name=SUPERVISORS_GROUP), Group.objects.get(name=STAFF_GROUP)
        )
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="streaming",
                codename__in=[*ALERT_RULE_PERMISSIONS, "listen_call"],  # the demo may listen in
            )
        )
        return password

    def _directory(self) -> None:
        """The simulated calls' agent in the agent directory, so every page names her and the
        agents page follows her (kept as it is if her address is listed already)."""
        from dashboard.models import Agent, AgentAddress

        if AgentAddress.objects.filter(raw_id=DEMO_AGENT).exists():
            return
        agent, _ = Agent.objects.get_or_create(name=DEMO_AGENT_NAME)
        agent.addresses.create(address=DEMO_AGENT)

    def _wait_for(self, server: subprocess.Popen[bytes], host: str, port: int) -> None:
        deadline = time.monotonic() + 30
        while not _listening(host, port):
            if server.poll() is not None:
                raise CommandError(f"the server exited with code {server.returncode}")
            if time.monotonic() > deadline:
                raise CommandError(f"the server did not start listening on {host}:{port} in 30 s")
            time.sleep(0.2)


def _child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a child in a session of its own, told to stop if the demo dies.

    Its own session keeps Ctrl-C in the terminal from reaching it: the demo stops its
    children itself, with one SIGTERM each (a second signal would cut the server's drain).
    """
    prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None

    def die_with_parent() -> None:
        # Linux: SIGTERM this child when the demo exits, even if the demo is SIGKILLed.
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=True, preexec_fn=die_with_parent
    )


def _write_secret(secret: str) -> None:
    SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    os.chmod(SECRET_FILE, 0o600)  # an older file keeps its mode through O_CREAT


def _stop_all(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM each process (the server drains), then kill what is left after ``grace``."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _shown_path(path: Path) -> str:
    """``path`` relative to the checkout when it is inside it, as a newcomer would type it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 0.3):
            return True
    except OSError:
        return False
