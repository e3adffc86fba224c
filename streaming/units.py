"""Units Callsite measures in, and how durations are written for people.

Pure Python, importable without Django (the simulator and the recognizer worker processes
use it). Time on the wire and on a call's timeline is ACS's: 100-ns ticks. Audio comes in
20 ms frames, and talk-time analytics work in the same frames.

Every duration a person reads (the wall, the call page, history, the admin, the exports) is
whole seconds, rounded half up (so 1:59.6 reads 2:00), written ``m:ss`` under an hour and
``h:mm:ss`` from an hour on. ``static/callsite/live.js`` writes them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TICKS_PER_SECOND = 10_000_000  # ACS offsets and durations are 100-ns ticks
TICKS_PER_MS = 10_000
FRAME_MS = 20  # ACS sends one 20 ms audio frame per stream every 20 ms
FRAMES_PER_SECOND = 1000 // FRAME_MS
FRAME_TICKS = FRAME_MS * TICKS_PER_MS
# Timings past this are not plotted or counted as talk (a packet with a wild offset or
# timestamp must not make a call's figures, or a worker's memory, enormous).
MAX_CALL_SECONDS = 24 * 3600


def whole_seconds(ms: float) -> int:
    """Milliseconds to whole seconds, rounded half up (never the banker's rounding)."""
    if not math.isfinite(ms) or ms <= 0:
        return 0
    return math.floor(ms / 1000 + 0.5)


def clock(ms: float | None) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on); empty for an unknown duration."""
    if ms is None:
        return ""
    seconds = whole_seconds(ms)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def seconds_adding_up(parts_ms: Sequence[int], total_ms: int) -> list[int]:
    """Whole seconds for parts of a whole that add up to the whole's rounded seconds.

    Rounding each part on its own can lose or gain a second (0:10.5 + 0:20.5 reads
    0:11 + 0:21 of 0:31); the seconds the floors leave over go to the parts with the largest
    remainders instead.
    """
    total = whole_seconds(total_ms)
    floors = [max(0, int(p // 1000)) for p in parts_ms]
    spare = total - sum(floors)
    order = sorted(range(len(parts_ms)), key=lambda i: parts_ms[i] % 1000, reverse=True)
    for i in order[: max(0, spare)]:
        floors[i] += 1
    return floors
