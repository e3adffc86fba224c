"""Database writes that outlast a database restart.

PostgreSQL restarting (a failover, a minor upgrade) or SQLite answering "database is locked"
fails a write with ``OperationalError`` or ``InterfaceError``. For a final utterance that
would be a lost line of the transcript, so ingest retries such writes with a growing pause,
for at most ``CALLSITE_DB_RETRY_SECONDS`` in all. Every write retried this way is idempotent
(utterances carry a dedupe key unique per call), so a write that committed but whose answer
was lost is not stored twice when it is tried again.

Each attempt runs through ``database_sync_to_async``, which closes a connection that an error
left unusable before and after the call, so the next attempt connects afresh. Other errors
are not retried: trying a bug again does not fix it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError

from streaming.db import db_call
from streaming.metrics import INGEST

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

RETRYABLE = (OperationalError, InterfaceError)
FIRST_PAUSE = 0.1
MAX_PAUSE = 2.0


class RetriesExhausted(Exception):
    """A database write kept failing for longer than the retry bound."""


async def db_write(what: str, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in the ORM thread, retrying database outages for a bounded time.

    ``what`` names the write in the log ("call 42: final utterance"). Raises
    :class:`RetriesExhausted` (chained to the last error) once the bound has passed.
    """
    bound = float(settings.CALLSITE_DB_RETRY_SECONDS)
    deadline = time.monotonic() + bound
    pause = FIRST_PAUSE
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await db_call(func, *args, **kwargs)
        except RETRYABLE as error:
            left = deadline - time.monotonic()
            if left <= 0:
                logger.error(
                    "%s: database still failing after %d attempts over %.0f s: %s",
                    what,
                    attempt,
                    bound,
                    error,
                )
                raise RetriesExhausted(f"{what}: {error}") from error
            if attempt == 1:
                logger.warning(
                    "%s: database error, retrying for up to %.0f s: %s", what, bound, error
                )
            INGEST.db_retries += 1
            await asyncio.sleep(min(pause, left))
            pause = min(MAX_PAUSE, pause * 2)
            continue
        if attempt > 1:
            logger.warning("%s: stored after %d attempts", what, attempt)
        return result
