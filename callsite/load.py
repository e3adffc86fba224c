"""Whether this worker is over capacity, from how late its event loop runs.

A worker past what it can carry falls behind on every call it holds: frames wait, captions
wait, and new handshakes time out unseen. So the loop measures itself, every 100 ms, two
ways, each smoothed over about a second:

- how busy it is: the share of the time its thread spent working (CPU time over wall time).
  This rises before anything is late, so it is the one that keeps the calls held on time:
  past ``CALLSITE_SHED_LOOP_BUSY_PERCENT`` (70) the worker is over capacity, and back under
  10 points below it;
  A stream taken shows its cost only once it streams, and the smoothing takes a second to
  follow: so a new stream is also refused when the streams taken in the last
  ``RECENT_SECONDS``, each costing what an open stream costs on average now, would take
  the loop past the limit (once 20 streams have settled, enough to say what one costs). A
  rush of calls stops at the limit instead of a second past it;
- how late it runs: a wake-up scheduled, and how late it came. This catches a worker that
  is not given its core (a crowded machine) however little it works itself. A single stall
  counts as twice the limit at most, so it takes lag that lasts, four late wake-ups in a row
  at least, not one pause. Past ``CALLSITE_SHED_LOOP_LAG_MS`` (50) the worker is over
  capacity, and back under at half of it.

While over capacity new ACS streams are refused at the handshake with HTTP 503
(``callsite/server.py``; nginx tries the next worker), each refusal counted
(``callsite_ingest_streams_shed_total``) and logged, and ``/readyz`` answers 503 "over
capacity", so the proxy sends new work elsewhere while the calls already here keep up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

PERIOD = 0.1
SMOOTHING = 0.2  # weight of the newest sample: about a second of memory at 10 samples a second
BUSY_MARGIN = 0.1  # over capacity past the busy limit, back under 10 points below it
RECENT_SECONDS = 1.5  # how long a new stream's cost takes to show in the smoothed figure
SETTLED_ENOUGH = 20  # streams older than that it takes to say what a stream costs


class LoadMonitor:
    def __init__(
        self,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_ms = 50.0  # 0: lag measured, never a reason to refuse
        self.busy_limit = 0.7  # 0: busyness measured, never a reason to refuse
        self.lag_ms = 0.0
        self.busy = 0.0
        self.overloaded = False
        self.reason = ""
        self.since = 0.0
        self.longest_ms = 0.0  # the longest single stall seen, for /metrics
        self.handle: asyncio.TimerHandle | None = None
        self.cpu_clock = cpu_clock
        self.wall_clock = wall_clock
        self.last = (0.0, 0.0)
        self.taken: deque[float] = deque()  # when streams were taken, the last few seconds

    def start(self, limit_ms: float, busy_percent: float = 70) -> None:
        """Start measuring in the running event loop (a server calls this once it runs)."""
        self.limit_ms = limit_ms
        self.busy_limit = busy_percent / 100
        loop = asyncio.get_event_loop()
        self.last = (self.cpu_clock(), self.wall_clock())
        self.handle = loop.call_later(PERIOD, self._tick, loop, loop.time() + PERIOD)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        self.sample((loop.time() - due) * 1000)
        self.handle = loop.call_later(PERIOD, self._tick, loop, loop.time() + PERIOD)

    def sample(self, late_ms: float) -> None:
        """Take one measurement: the wake-up came ``late_ms`` late."""
        late_ms = max(0.0, late_ms)
        cpu, wall = self.cpu_clock(), self.wall_clock()
        (last_cpu, last_wall), self.last = self.last, (cpu, wall)
        if wall > last_wall:
            busy = min(1.0, max(0.0, (cpu - last_cpu) / (wall - last_wall)))
            self.busy += SMOOTHING * (busy - self.busy)
        self.longest_ms = max(self.longest_ms, late_ms)
        # One long stall (a worker's first request imports half of Django; a collection)
        # counts as twice the limit at most: only lag that lasts makes a worker over capacity.
        sample = min(late_ms, 2 * self.limit_ms) if self.limit_ms > 0 else late_ms
        self.lag_ms += SMOOTHING * (sample - self.lag_ms)
        if not self.overloaded:
            if 0 < self.limit_ms < self.lag_ms:
                self._over(f"its event loop runs {self.lag_ms:.0f} ms late "
                           f"(limit {self.limit_ms:.0f} ms)")
            elif 0 < self.busy_limit < self.busy:
                self._over(f"its event loop is busy {self.busy:.0%} of the time "
                           f"(limit {self.busy_limit:.0%})")
        elif (self.limit_ms <= 0 or self.lag_ms < self.limit_ms / 2) and (
            self.busy_limit <= 0 or self.busy < self.busy_limit - BUSY_MARGIN
        ):
            self.overloaded = False
            self.reason = ""
            logger.warning(
                "back under capacity after %.1f s: the event loop runs %.0f ms late, "
                "busy %.0f%% of the time",
                time.monotonic() - self.since,
                self.lag_ms,
                self.busy * 100,
            )

    def refusal(self, open_streams: int) -> str:
        """Why a new stream should be refused now, with ``open_streams`` open; "" to take it."""
        if self.overloaded:
            return self.reason
        if self.busy_limit <= 0:
            return ""
        now = self.wall_clock()
        while self.taken and self.taken[0] < now - RECENT_SECONDS:
            self.taken.popleft()
        recent = len(self.taken)
        settled = open_streams - recent  # streams whose cost the figure shows
        if not recent or settled < SETTLED_ENOUGH:  # a worker starting: handshakes, not streams
            return ""
        projected = self.busy * (1 + (recent + 1) / settled)
        if projected > self.busy_limit:
            return (
                f"its event loop is busy {self.busy:.0%} of the time and the {recent} "
                f"stream(s) it took in the last {RECENT_SECONDS:g} s will take it past "
                f"{self.busy_limit:.0%}"
            )
        return ""

    def took(self) -> None:
        """A new stream was taken: its cost is counted until the figure shows it."""
        self.taken.append(self.wall_clock())

    def _over(self, reason: str) -> None:
        self.overloaded = True
        self.reason = reason
        self.since = time.monotonic()
        logger.warning("over capacity: %s; new ACS streams are refused until it catches up", reason)

    def render(self) -> str:
        """The loop's figures in Prometheus' text format (``/metrics``)."""
        return "".join(
            f"# HELP {name} {text}\n# TYPE {name} gauge\n{name} {value}\n"
            for name, text, value in (
                ("callsite_event_loop_lag_seconds",
                 "How late the event loop runs, smoothed over about a second.",
                 round(self.lag_ms / 1000, 4)),
                ("callsite_event_loop_longest_stall_seconds",
                 "The longest the event loop has been late, since the worker started.",
                 round(self.longest_ms / 1000, 4)),
                ("callsite_event_loop_busy_ratio",
                 "The share of time the event loop is working, smoothed over about a second.",
                 round(self.busy, 3)),
                ("callsite_over_capacity",
                 "1 while new ACS streams are refused (CALLSITE_SHED_LOOP_*), else 0.",
                 int(self.overloaded)),
            )
        )  # fmt: skip

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


LOAD = LoadMonitor()
