"""The loop that delivers alerts: takes due deliveries from the outbox, tries each, records.

Each server process runs one (started by the first ACS stream or supervisor socket it
serves, unless ``CALLSITE_ALERT_DELIVERY`` is off); ``manage.py deliver_alerts`` runs the
same rounds on its own. Tries run in a thread, so a slow receiver never holds the event
loop; several workers share the outbox safely (``streaming.services.delivery``).
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from streaming.db import db_call
from streaming.delivery import sending
from streaming.services import delivery as outbox
from streaming.tasks import LoopTask

logger = logging.getLogger(__name__)

BATCH = 20


def _log(job: sending.DeliveryJob, outcome: sending.Outcome, state: str) -> None:
    # The destination by id and kind only: its URL may be a credential, its secret is one.
    what = f"alert {job.notice.id} (call {job.notice.call_id}) to {job.kind} destination"
    if outcome.ok:
        logger.info("%s: delivered (try %d)", what, job.attempt)
    elif state == "failed":
        logger.warning("%s: given up after try %d: %s", what, job.attempt, outcome.error)
    else:
        logger.info("%s: try %d failed, will retry: %s", what, job.attempt, outcome.error)


def deliver_due() -> int:
    """One round, blocking (the management command): returns how many were tried."""
    jobs = outbox.deliveries_claim(limit=BATCH)
    for job in jobs:
        outcome = sending.send(job)
        _log(job, outcome, outbox.delivery_record(job=job, outcome=outcome))
    return len(jobs)


class DeliveryWorker:
    def __init__(self) -> None:
        self.rounds = LoopTask(self._run, "alert deliveries")

    def ensure_running(self) -> None:
        """Start the worker in this event loop, unless it runs there already or is off."""
        if settings.CALLSITE_ALERT_DELIVERY:
            self.rounds.ensure()

    async def round(self) -> int:
        jobs = await db_call(outbox.deliveries_claim, limit=BATCH)
        for job in jobs:
            outcome = await asyncio.to_thread(sending.send, job)
            state = await db_call(outbox.delivery_record, job=job, outcome=outcome)
            _log(job, outcome, state)
        return len(jobs)

    async def _run(self) -> None:
        while True:
            tried = 0
            try:
                tried = await self.round()
            except Exception:
                logger.exception("alert deliveries: a round failed")
            if tried < BATCH:
                await asyncio.sleep(settings.CALLSITE_ALERT_DELIVERY_POLL_SECONDS)


DELIVERIES = DeliveryWorker()
