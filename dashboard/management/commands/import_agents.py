"""``manage.py import_agents agents.csv [--dry-run]``: load the agent directory from a CSV.

Columns ``name,team,supervisor,addresses`` (a header row; ``team`` and ``supervisor`` may be
empty; ``addresses`` are ACS raw ids and phone numbers separated by ``;``). Agents are
matched by name; each listed agent's addresses become exactly those given. Prints what was
created and updated; with any error, prints every one with its line and saves nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.agents import agents_import


class Command(BaseCommand):
    help = "Create or update agents from a CSV file (name,team,supervisor,addresses)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The CSV file (UTF-8), or - for standard input.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; save nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {path}: {error}") from error
        report = agents_import(text, dry_run=options["dry_run"])
        if report.errors:
            for line in report.errors:
                self.stderr.write(line)
            raise CommandError(f"{len(report.errors)} errors: nothing was saved")
        for line in report.lines(dry_run=options["dry_run"]):
            self.stdout.write(line)
