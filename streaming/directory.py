"""Names of the people behind raw ids: the hook the agent directory plugs into.

Participants are labelled from their raw id (``streaming.acs.identities``: "Agent 4a31"),
unless someone registered here knows better. The dashboard app registers its agent
directory (``dashboard.agents``) when it starts, so ``streaming`` never imports it; without
one (a process that only runs the ingest), labels are the raw id's.
"""

from __future__ import annotations

from collections.abc import Callable

# raw id -> the agent's name, or None when the directory does not know it.
Lookup = Callable[[str], str | None]

_lookup: Lookup | None = None


def register(lookup: Lookup | None) -> None:
    """Use ``lookup`` for every participant labelled from now on (None: none)."""
    global _lookup
    _lookup = lookup


def agent_name(raw_id: str) -> str | None:
    """The directory's name for ``raw_id`` (an ACS raw id, or ``4:+1555...``), if any."""
    if _lookup is None or not raw_id:
        return None
    return _lookup(raw_id)
