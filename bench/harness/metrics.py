"""What the servers and the load measure: ``/metrics`` snapshots, lag and lateness quantiles.

Callsite and the bare server serve the same text format at ``GET /metrics``; the frame-lag
histogram (``callsite_ingest_frame_lag_seconds``) is read before and after a window, and its
difference gives the lag of the frames handled in between. The load keeps its own send
lateness (``SendStats``), and latencies it measures itself are summed up by ``Quantiles``.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

LAG_METRIC = "callsite_ingest_frame_lag_seconds"
LAG_TARGET = 0.100  # the ingest benchmark's target: p99 frame lag under 100 ms
# A load kept to its schedule when it sent this share of what was due, this late at p99.
MIN_SEND_RATE = 0.95
MAX_SEND_LATENESS = 0.020
METRICS_LIMIT = 30.0  # seconds a /metrics read may take
AUDIO_FRAMES = "callsite_ingest_audio_frames_total"
REJECTED = "callsite_ingest_rejected_total"


@dataclass
class Snapshot:
    """One read of a server's ``/metrics``."""

    values: dict[str, float]
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count)

    def value(self, name: str) -> float:
        return self.values.get(name, 0.0)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{le="([^"]+)"\})?\s+(\S+)$')


def parse_metrics(text: str) -> Snapshot:
    values: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, le, value = match.groups()
        if name == LAG_METRIC + "_bucket" and le is not None:
            buckets.append((math.inf if le == "+Inf" else float(le), float(value)))
        else:
            values[name] = float(value)
    buckets.sort()
    return Snapshot(values, buckets)


@dataclass
class LagStats:
    count: int
    p50: float
    p99: float
    max: float  # upper bound of the highest non-empty bucket (inf past the last bound)
    under_target: float  # share of frames with lag <= LAG_TARGET


def lag_between(before: Snapshot, after: Snapshot) -> LagStats:
    """Lag quantiles of the frames handled between two reads (linear within a bucket)."""
    bounds = [bound for bound, _ in after.buckets]
    old = dict(before.buckets)
    cumulative = [count - old.get(bound, 0.0) for bound, count in after.buckets]
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return LagStats(0, math.nan, math.nan, math.nan, math.nan)

    def quantile(q: float) -> float:
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in zip(bounds, cumulative, strict=True):
            if count >= rank:
                if math.isinf(bound):
                    return math.inf  # past the last bound
                share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
                return lower_bound + share * (bound - lower_bound)
            lower_bound, lower_count = bound, count
        return lower_bound

    highest = 0.0
    previous = 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count > previous:
            highest = bound
        previous = count
    under = next((c for b, c in zip(bounds, cumulative, strict=True) if b >= LAG_TARGET), total)
    return LagStats(int(total), quantile(0.5), quantile(0.99), highest, under / total)


async def read_metrics(port: int, limit: float | None = None) -> Snapshot:
    async def fetch() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return await reader.read()
        finally:
            writer.close()

    raw = await asyncio.wait_for(fetch(), METRICS_LIMIT if limit is None else limit)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"GET /metrics answered {status.decode(errors='replace')}")
    return parse_metrics(body.decode())


def merge_snapshots(snapshots: Sequence[Snapshot]) -> Snapshot:
    """Several workers' metrics as one server's: values and histogram buckets added up."""
    if len(snapshots) == 1:
        return snapshots[0]
    values: Counter[str] = Counter()
    buckets: Counter[float] = Counter()
    for snap in snapshots:
        values.update(snap.values)
        buckets.update(dict(snap.buckets))
    return Snapshot(dict(values), sorted(buckets.items()))


async def read_all_metrics(ports: Sequence[int], limit: float | None = None) -> Snapshot:
    """Every worker's ``/metrics``, read at the same time and merged."""
    return merge_snapshots(await asyncio.gather(*(read_metrics(p, limit) for p in ports)))


async def read_each_metrics(
    ports: Sequence[int], limit: float | None = None
) -> tuple[Snapshot | None, list[Snapshot]]:
    """Every worker's ``/metrics``: merged (None if any read failed), and those that answered."""
    results = await asyncio.gather(*(read_metrics(p, limit) for p in ports), return_exceptions=True)
    snaps = [r for r in results if isinstance(r, Snapshot)]
    return (merge_snapshots(snaps) if len(snaps) == len(results) else None), snaps


async def wait_until(
    ports: Sequence[int], frames: int, deadline: float, pause: float = 0.25
) -> tuple[Snapshot, bool]:
    """Poll /metrics until the servers have handled ``frames`` AudioData frames, or time is up."""
    while True:
        snap = await read_all_metrics(ports)
        if snap.value(AUDIO_FRAMES) >= frames:
            return snap, True
        if time.monotonic() >= deadline:
            return snap, False
        await asyncio.sleep(pause)


@dataclass
class SendStats:
    """What the load sent, and how late (whole ms behind its schedule) while ``measuring``."""

    sent: int = 0
    late_ms: Counter[int] = field(default_factory=Counter)  # send lateness, whole ms
    measuring: bool = False

    def lateness_quantile(self, q: float) -> float:
        total = sum(self.late_ms.values())
        if not total:
            return 0.0
        seen = 0
        for ms in sorted(self.late_ms):
            seen += self.late_ms[ms]
            if seen >= q * total:
                return ms / 1000
        return max(self.late_ms) / 1000


@dataclass
class Quantiles:
    count: int = 0
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Quantiles:
        if not seconds:
            return cls()
        values = np.asarray(seconds) * 1000
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(len(values), float(p50), float(p90), float(p99), float(values.max()))
