"""Retention: what is deleted of calls older than a number of days (``manage.py purge``, and
the daily run when ``CALLSITE_PURGE_DAILY`` is on). docs/history.md, "Retention".

Each kind has its own age: ``utterances`` (what was said), ``analytics`` (talk-time figures,
per-second talk, alerts), ``events`` (call events such as DTMF and gaps, supervisor actions),
``recordings`` (through :func:`recordings_delete`, the one place recordings are purged) and
``calls`` (the call itself, with everything left of it). A call's age is counted from its end
(from its creation if it never ended). Rows go in batches, each its own transaction, so a
purge of years of history neither holds long locks nor needs the memory of all of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction
from django.db.models import Q

from streaming.models import (
    Alert,
    Call,
    CallAnalytics,
    CallEvent,
    ControlAction,
    TalkSecond,
    Utterance,
)
from streaming.recording import store as recordings_store
from streaming.tasks import LoopTask

logger = logging.getLogger(__name__)

KINDS = ("utterances", "analytics", "events", "recordings", "calls")
MODELS: Mapping[str, tuple[type[models.Model], ...]] = {
    "utterances": (Utterance,),
    "analytics": (CallAnalytics, TalkSecond, Alert),
    "events": (CallEvent, ControlAction),
    "calls": (Call,),
}
Progress = Callable[[str], None]


def calls_older_than(cutoff: datetime) -> models.QuerySet[Call]:
    """Calls that ended before ``cutoff`` (or, never ended, were created before it)."""
    return Call.objects.filter(
        Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, created_at__lt=cutoff)
    )


def _rows(model: type[models.Model], cutoff: datetime) -> models.QuerySet[models.Model]:
    old = calls_older_than(cutoff)
    if model is Call:
        return old
    return model._default_manager.filter(call__in=old.values("pk"))


def recordings_delete(*, call_ids: Iterable[int], dry_run: bool) -> int:
    """Delete the stored recordings of ``call_ids`` (their files too); how many tracks.

    The one place retention reaches recordings (a call purged whole has its recordings'
    files deleted here first).
    """
    return recordings_store.delete(call_ids=call_ids, dry_run=dry_run)


def purge(
    days: Mapping[str, int],
    *,
    now: datetime,
    batch_size: int = 1000,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Delete (or, dry, count) each kind's rows of calls older than its days (0: keep for
    ever); returns the rows per kind. Whole calls go last, after their parts."""
    say = progress or (lambda _line: None)
    done: dict[str, int] = {}
    for kind in KINDS:
        age = days.get(kind, 0)
        if age <= 0:
            continue
        cutoff = now - timedelta(days=age)
        if kind == "recordings":
            ids = calls_older_than(cutoff).values_list("pk", flat=True).iterator()
            done[kind] = recordings_delete(call_ids=ids, dry_run=dry_run)
            say(f"recordings older than {age} days: {done[kind]}")
            continue
        done[kind] = 0
        for model in MODELS[kind]:
            done[kind] += _purge_model(model, cutoff, age, batch_size, dry_run, say)
    return done


def _purge_model(
    model: type[models.Model],
    cutoff: datetime,
    age: int,
    batch_size: int,
    dry_run: bool,
    say: Progress,
) -> int:
    name = model._meta.verbose_name_plural
    total = _rows(model, cutoff).count()
    if dry_run or not total:
        say(f"{name} older than {age} days: {total}" + (" (dry run)" if dry_run else ""))
        return total
    deleted = 0
    while True:
        with transaction.atomic():
            batch = _rows(model, cutoff).order_by("pk").values_list("pk", flat=True)
            pks = list(batch[:batch_size])
            if not pks:
                break
            if model is Call:  # the rows would go with the call, the files would stay
                recordings_delete(call_ids=pks, dry_run=False)
            model._default_manager.filter(pk__in=pks).delete()
        deleted += len(pks)
        say(f"{name} older than {age} days: deleted {deleted}/{total} ({_bar(deleted, total)})")
    return deleted


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = min(width, done * width // max(total, 1))
    return "#" * filled + "." * (width - filled)


def retention_days() -> dict[str, int]:
    """Each kind's days from the settings (CALLSITE_RETAIN_*_DAYS; 0: keep for ever)."""
    return {kind: int(getattr(settings, f"CALLSITE_RETAIN_{kind.upper()}_DAYS")) for kind in KINDS}


PURGE_LOCK = "callsite:purge:daily"


def purge_daily(*, now: datetime) -> dict[str, int] | None:
    """The daily purge, once a day across every worker sharing the cache: None when another
    worker (or this one) already ran it within the last day."""
    if not cache.add(PURGE_LOCK, now.isoformat(), timeout=23 * 3600):
        return None
    done = purge(retention_days(), now=now)
    logger.info(
        "daily purge: %s", ", ".join(f"{k} {n}" for k, n in done.items()) or "nothing to keep"
    )
    return done


PURGE_CHECK_SECONDS = 3600.0  # how often a server looks whether the day's purge is due


async def purge_daily_loop(every: float = PURGE_CHECK_SECONDS) -> None:
    """Run the daily purge when due, checking every ``every`` seconds, for ever; a failure
    is logged and tried again at the next check."""
    from channels.db import database_sync_to_async
    from django.utils import timezone

    while True:
        try:
            await database_sync_to_async(purge_daily)(now=timezone.now())
        except Exception:
            logger.exception("daily purge failed; tried again in %.0f s", every)
        await asyncio.sleep(every)


DAILY_PURGE = LoopTask(purge_daily_loop, "daily purge")


def daily_purge_start() -> bool:
    """Start the daily purge in the running event loop when CALLSITE_PURGE_DAILY is on."""
    if not settings.CALLSITE_PURGE_DAILY:
        return False
    DAILY_PURGE.ensure()
    return True
