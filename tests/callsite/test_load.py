"""How a worker decides it is over capacity, sample by sample (``callsite/load.py``)."""

from __future__ import annotations

import pytest

from callsite.load import LoadMonitor


class Clocks:
    """A thread's CPU clock and the wall clock, moved by hand."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0

    def spend(self, busy: float, seconds: float = 0.1) -> None:
        self.cpu += busy * seconds
        self.wall += seconds


def _monitor(clocks: Clocks, limit_ms: float = 50, busy_percent: float = 80) -> LoadMonitor:
    monitor = LoadMonitor(cpu_clock=lambda: clocks.cpu, wall_clock=lambda: clocks.wall)
    monitor.limit_ms, monitor.busy_limit = limit_ms, busy_percent / 100
    monitor.last = (clocks.cpu, clocks.wall)
    return monitor


def test_a_loop_that_stays_busy_is_over_capacity_before_it_runs_late() -> None:
    clocks = Clocks()
    monitor = _monitor(clocks)
    for _ in range(30):
        clocks.spend(0.6)
        monitor.sample(1)
    assert not monitor.overloaded
    for _ in range(30):
        clocks.spend(0.95)
        monitor.sample(2)
    assert monitor.overloaded
    assert monitor.reason.startswith("its event loop is busy")
    assert monitor.busy == pytest.approx(0.95, abs=0.01)
    # 75% is under the limit but not 10 points under it: still over capacity.
    for _ in range(30):
        clocks.spend(0.75)
        monitor.sample(2)
    assert monitor.overloaded
    for _ in range(30):
        clocks.spend(0.5)
        monitor.sample(2)
    assert not monitor.overloaded
    assert monitor.reason == ""


def test_busyness_alone_decides_when_lag_is_not_a_reason() -> None:
    clocks = Clocks()
    monitor = _monitor(clocks, limit_ms=0)
    for busy in (0.95, 0.3):
        for _ in range(30):
            clocks.spend(busy)
            monitor.sample(300 if busy > 0.9 else 0)
        assert monitor.overloaded is (busy > 0.9)


def test_one_long_stall_is_not_over_capacity_and_lag_that_lasts_is() -> None:
    clocks = Clocks()
    monitor = _monitor(clocks, busy_percent=0)
    clocks.spend(1.0, 3.0)
    monitor.sample(3000)  # an import, a collection: one wake-up three seconds late
    assert not monitor.overloaded
    assert monitor.longest_ms == 3000
    for _ in range(10):
        clocks.spend(0.1)
        monitor.sample(80)
    assert monitor.overloaded
    assert monitor.reason.endswith("ms late (limit 50 ms)")
    for _ in range(30):
        clocks.spend(0.1)
        monitor.sample(5)
    assert not monitor.overloaded


def test_limits_of_zero_measure_and_never_refuse() -> None:
    clocks = Clocks()
    monitor = _monitor(clocks, limit_ms=0, busy_percent=0)
    for _ in range(50):
        clocks.spend(1.0)
        monitor.sample(500)
    assert not monitor.overloaded
    assert monitor.busy > 0.99
    assert monitor.lag_ms > 400
    assert "callsite_event_loop_busy_ratio 1.0" in monitor.render()


def test_a_rush_is_refused_before_its_cost_shows() -> None:
    """Streams taken in the last 1.5 s count at what an open stream costs now."""
    clocks = Clocks()
    monitor = _monitor(clocks, busy_percent=70)
    for _ in range(30):
        clocks.spend(0.5)  # 50 streams, 1% each
        monitor.sample(1)
    assert monitor.refusal(open_streams=50) == ""
    taken = 0
    while not monitor.refusal(open_streams=50 + taken):
        monitor.took()
        taken += 1
    # 50% + 1% for each stream taken and the one asking: the twenty-first would pass 70%.
    assert taken == 20
    assert "stream(s) it took in the last 1.5 s" in monitor.refusal(open_streams=50 + taken)
    assert not monitor.overloaded  # refused by projection: /readyz still says ready
    clocks.spend(0.5, 2.0)  # their cost now shows, or they have gone
    assert monitor.refusal(open_streams=50 + taken) == ""


def test_a_worker_starting_takes_a_burst_of_streams() -> None:
    """Its loop is busy with handshakes, not streams: too few have settled to say what one
    costs, so only the measured figure refuses."""
    clocks = Clocks()
    monitor = _monitor(clocks, busy_percent=70)
    for _ in range(5):
        clocks.spend(0.3)
        monitor.sample(1)
    for taken in range(100):
        assert monitor.refusal(open_streams=taken) == ""
        monitor.took()
