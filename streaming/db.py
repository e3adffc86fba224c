"""The event loop's one way into the ORM: a database thread, and the events it produced.

Services are synchronous and send what they changed with ``transaction.on_commit``. Called
from the event loop, they run in a database thread (``database_sync_to_async``); a send from
that thread would have to climb back into the loop with ``async_to_sync`` and wait there, and
when the loop has stopped (a server shutting down) the thread waits for ever, so the
interpreter, which joins it at exit, never exits. :func:`db_call` instead hands the thread an
outbox: events committed in the thread are collected and sent from the loop once the call
returns, in the order they were committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async

from streaming import events

P = ParamSpec("P")
T = TypeVar("T")


async def db_call(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in the database thread, then send the events it committed."""
    with events.outbox() as sent:
        result = await database_sync_to_async(func)(*args, **kwargs)
    for groups, event in sent:
        await events.asend_event(groups, event)
    return result
