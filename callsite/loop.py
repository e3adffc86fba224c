"""Which event loop the server runs on: uvloop, or asyncio's own (``CALLSITE_EVENT_LOOP``).

Daphne runs Twisted's reactor on an asyncio event loop that it creates when ``daphne.server``
is imported, so the choice is made by installing an event loop policy before that import
(``callsite.server`` does it first thing). uvloop implements the same asyncio API on libuv;
the reactor uses only ``add_reader``/``add_writer``, timers and ``call_soon``, which it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from callsite.env import ImproperlyConfiguredEnv, env_str

CHOICES = ("uvloop", "asyncio")


def install_event_loop_policy(environ: Mapping[str, str] | None = None) -> str:
    """Install the configured loop's policy; return its name."""
    choice = env_str("CALLSITE_EVENT_LOOP", "uvloop", environ=environ).lower()
    if choice not in CHOICES:
        raise ImproperlyConfiguredEnv(
            f"CALLSITE_EVENT_LOOP must be one of {', '.join(CHOICES)}, got {choice!r}"
        )
    if choice == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return choice
