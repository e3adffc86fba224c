"""The project's commands as a newcomer runs them: help needs no configuration at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PROJECT_COMMANDS = ["demo", "serve", "simulate_call", "nginx_config"]


def _bare_environment() -> dict[str, str]:
    """The environment of a fresh shell: no DEBUG, no secrets, the project's own settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CALLSITE_", "DATABASE_URL", "REDIS_URL"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "callsite.settings"
    return env


def _manage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env or _bare_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_the_project_commands_without_debug_or_a_secret_key() -> None:
    result = _manage("help")
    assert result.returncode == 0, result.stderr
    for command in PROJECT_COMMANDS:
        assert command in result.stdout
    assert "settings are not properly configured" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [*PROJECT_COMMANDS, "migrate", "createsuperuser", "check"])
def test_every_command_explains_itself_without_debug_or_a_secret_key(command: str) -> None:
    result = _manage(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: manage.py {command}")


def test_a_command_that_runs_the_checks_names_the_missing_key() -> None:
    """Help needs no key; anything that checks the configuration stops and says why."""
    result = _manage("migrate", "--plan")
    assert result.returncode != 0
    assert "(callsite.E010) DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off" in (
        result.stderr
    )


def test_recordings_in_azure_without_a_connection_string_stop_the_checks() -> None:
    env = {**_bare_environment(), "DJANGO_DEBUG": "1", "CALLSITE_RECORDINGS_STORAGE": "azure"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert (
        "(callsite.E010) CALLSITE_RECORDINGS_STORAGE=azure needs "
        "CALLSITE_RECORDINGS_AZURE_CONNECTION_STRING"
    ) in result.stderr
    assert _manage("check", "--help", env=env).returncode == 0


def test_simulate_call_reads_its_token_from_a_file(tmp_path: Path) -> None:
    """The shared secret can come from a file, so it is never on a command line `ps` shows."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    missing = _manage("simulate_call", "--token-file", str(tmp_path / "missing"))
    assert missing.returncode != 0
    assert "cannot read --token-file" in missing.stderr
    blank = _manage("simulate_call", "--token-file", str(empty))
    assert blank.returncode != 0
    assert "is empty" in blank.stderr
    both = _manage("simulate_call", "--token", "x" * 20, "--token-file", str(empty))
    assert "either --token or --token-file" in both.stderr
