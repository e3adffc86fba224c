"""Run Callsite on this machine with a simulated call, for a first look.

Migrates the database, creates (or re-keys) a supervisor login with a fresh random password,
starts Daphne and streams the demo call to it over and over until Ctrl-C. By default that is
the two-speaker audio call (one WAV per participant, as unmixed ACS audio) recognised by the
configured recognizer, pocketsphinx unless ``CALLSITE_RECOGNIZER`` says otherwise.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.permissions import SUPERVISORS_GROUP

ROOT = Path(settings.BASE_DIR)
DEMO_AUDIO = ROOT / "streaming" / "demo" / "audio" / "two_speaker_call.toml"


class Command(BaseCommand):
    help = "Start Daphne on 127.0.0.1 and stream a simulated call to it (development only)."

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
            "streaming/demo/billing_call.toml plays ACS transcription packets instead)",
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
        secret = settings.CALLSITE_ACS_SHARED_SECRET or secrets.token_urlsafe(24)
        env = {**os.environ, "DJANGO_DEBUG": "1", "CALLSITE_ACS_SHARED_SECRET": secret}

        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                host,
                "-p",
                str(port),
                "-v",
                "0",
                "callsite.asgi:application",
            ],
            cwd=ROOT,
            env=env,
        )
        simulator: subprocess.Popen[bytes] | None = None
        try:
            self._wait_for(server, host, port)
            self.stdout.write(
                self.style.SUCCESS(
                    "\nCallsite is running.\n"
                    f"  Open      http://{host}:{port}/\n"
                    f"  Username  {options['username']}\n"
                    f"  Password  {password}   (new on every start)\n"
                    f"  History   http://{host}:{port}/admin/\n"
                    f"  Playing   {options['script']}"
                    f" (recognizer: {settings.CALLSITE_RECOGNIZER})\n"
                    "Press Ctrl-C to stop.\n"
                )
            )
            if not options["no_simulator"]:
                simulator = subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "simulate_call",
                        "--url",
                        f"ws://{host}:{port}/ws/acs/",
                        "--token",
                        secret,
                        "--calls",
                        str(options["calls"]),
                        "--speed",
                        str(options["speed"]),
                        "--repeat",
                        "0",
                        "--script",
                        options["script"],
                    ],
                    cwd=ROOT,
                    env=env,
                )
            server.wait()
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")
        finally:
            for process in (simulator, server):
                if process is not None and process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()

    def _supervisor(self, username: str) -> str:
        """Create or reset the demo supervisor with a new random password; return it."""
        password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = True
        user.is_active = True
        user.save()
        user.groups.add(Group.objects.get(name=SUPERVISORS_GROUP))
        return password

    def _wait_for(self, server: subprocess.Popen[bytes], host: str, port: int) -> None:
        deadline = time.monotonic() + 30
        while not _listening(host, port):
            if server.poll() is not None:
                raise CommandError(f"Daphne exited with code {server.returncode}")
            if time.monotonic() > deadline:
                raise CommandError(f"Daphne did not start listening on {host}:{port} in 30 s")
            time.sleep(0.2)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 0.3):
            return True
    except OSError:
        return False
