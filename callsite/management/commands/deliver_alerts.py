"""``manage.py deliver_alerts``: deliver the alerts waiting in the outbox (webhooks, chat,
e-mail), in rounds, until stopped; ``--once`` for one round.

Server processes deliver on their own (``CALLSITE_ALERT_DELIVERY``, on by default); this
command is for a deployment that turns that off and runs delivery as its own service, and for
a one-off round (cron, or after an outage of the receiver).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from streaming.delivery.worker import deliver_due


class Command(BaseCommand):
    help = "Deliver pending alerts to their rules' webhooks, chat webhooks and e-mail."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="One round, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            tried = 0
            while (n := deliver_due()) > 0:
                tried += n
                if n < 20:
                    break
            self.stdout.write(f"{tried} deliveries tried")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write("delivering alerts; stop with Ctrl-C or SIGTERM")
        while not stop.is_set():
            if deliver_due() == 0:
                stop.wait(settings.CALLSITE_ALERT_DELIVERY_POLL_SECONDS)
        self.stdout.write("stopped")
