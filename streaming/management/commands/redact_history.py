"""``manage.py redact_history``: apply the redaction rules in force to every stored utterance."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from streaming.redaction.history import tones_mask, utterances_redact


class Command(BaseCommand):
    help = (
        "Re-redact stored utterances with the rules in force (CALLSITE_REDACT_*), in "
        "batches; safe to stop and run again. --dry-run only counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="utterances per batch")
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would change; change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.CALLSITE_REDACT != "on":
            raise CommandError(
                "CALLSITE_REDACT is off: set CALLSITE_REDACT=on (and the rules) to redact history"
            )
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        dry = options["dry_run"]

        def progress(checked: int, total: int, changed: int) -> None:
            verb = "would change" if dry else "changed"
            self.stdout.write(f"checked {checked}/{total} utterances, {verb} {changed}")

        run = utterances_redact(batch_size=options["batch_size"], dry_run=dry, progress=progress)
        tones = tones_mask(batch_size=options["batch_size"], dry_run=dry)
        if dry:
            self.stdout.write(f"dry run: {run.changed} of {run.checked} utterances would change")
            self.stdout.write(f"dry run: {tones} DTMF tones kept as pressed would be masked")
        else:
            self.stdout.write(
                self.style.SUCCESS(f"done: {run.changed} of {run.checked} utterances re-redacted")
            )
            self.stdout.write(f"{tones} DTMF tones kept as pressed masked")
