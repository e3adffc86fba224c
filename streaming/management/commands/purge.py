"""``manage.py purge``: delete what retention no longer keeps (docs/history.md, "Retention")."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from streaming.retention import KINDS, purge, retention_days


class Command(BaseCommand):
    help = (
        "Delete utterances, analytics, events, recordings and (with --only calls) whole calls "
        "of calls that ended more than --older-than DAYS ago; without it, each kind's "
        "CALLSITE_RETAIN_*_DAYS. --dry-run counts first and deletes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, metavar="DAYS", help="age in days, for every kind chosen"
        )
        parser.add_argument(
            "--only",
            default="utterances,analytics,events,recordings",
            help=f"comma-separated kinds among {', '.join(KINDS)} "
            "(default: all but calls, which keeps each call's own row)",
        )
        parser.add_argument("--batch-size", type=int, default=1000, help="rows per batch")
        parser.add_argument("--dry-run", action="store_true", help="count; delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = [k.strip() for k in options["only"].split(",") if k.strip()]
        unknown = sorted(set(chosen) - set(KINDS))
        if unknown:
            raise CommandError(
                f"unknown kinds {', '.join(unknown)}: choose among {', '.join(KINDS)}"
            )
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        older = options["older_than"]
        if older is not None and older < 1:
            raise CommandError("--older-than must be at least 1 day")
        if older is not None:
            days = dict.fromkeys(chosen, older)
        else:
            days = {kind: d for kind, d in retention_days().items() if kind in chosen and d > 0}
            if not days:
                raise CommandError(
                    "nothing to purge: give --older-than DAYS or set CALLSITE_RETAIN_*_DAYS"
                )
        done = purge(
            days,
            now=timezone.now(),
            batch_size=options["batch_size"],
            dry_run=options["dry_run"],
            progress=self.stdout.write,
        )
        summary = ", ".join(f"{kind} {n}" for kind, n in done.items())
        if options["dry_run"]:
            self.stdout.write(f"dry run, would delete: {summary}")
        else:
            self.stdout.write(self.style.SUCCESS(f"deleted: {summary}"))
