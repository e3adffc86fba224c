"""Background work on the event loop: tasks that must not vanish, and process-wide loops.

A task nobody keeps a reference to can be collected mid-run, and an exception nobody awaits
is lost; :func:`spawn` keeps both. :class:`LoopTask` is a process-wide background loop (the
live figures' tick, the stream heartbeats) started in whichever event loop needs it: each
test, and each server process, has its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

_RUNNING: set[asyncio.Task[Any]] = set()


def spawn(work: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
    """Run ``work`` in the background; a failure is logged with ``what`` it was doing."""
    task = asyncio.get_running_loop().create_task(work, name=what)
    _RUNNING.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed: %s", task.get_name(), task.exception())


def running() -> set[asyncio.Task[Any]]:
    """The background tasks still running (a stopping server waits for them)."""
    return set(_RUNNING)


class LoopTask:
    """One background loop per event loop, started again in a new one (tests run one each)."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self.run = run
        self.name = name
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def ensure(self) -> None:
        """Start the loop in the running event loop, unless it runs there already."""
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop = loop
            self.task = loop.create_task(self.run(), name=self.name)
