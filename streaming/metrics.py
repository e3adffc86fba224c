"""Process-wide ingest counters and the frame-lag histogram, served at ``/metrics``.

Frame lag is how long after its ACS timestamp a frame was handled (clock skew between ACS and
this host included), the number that says whether a process keeps up with its calls. Counters
are cumulative per process, in Prometheus' text format, so a scraper (or ``bench/ingest.py``)
takes differences between two reads. Updating them costs a few hundred nanoseconds a frame.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from datetime import datetime

# Upper bounds in seconds; dense around the 100 ms target.
LAG_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1,
    0.125, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip


@dataclass
class IngestMetrics:
    frames: int = 0
    audio_frames: int = 0
    rejected: int = 0
    internal_errors: int = 0
    db_retries: int = 0
    finals_lost: int = 0
    sockets_open: int = 0
    sockets_total: int = 0
    slow_readers_dropped: int = 0
    lag_counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    lag_sum: float = 0.0
    lag_count: int = 0

    def observe_lag(self, stamp: datetime) -> None:
        lag = time.time() - stamp.timestamp()
        self.lag_counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        self.lag_sum += lag
        self.lag_count += 1

    def render(self) -> str:
        lines = [
            "# HELP callsite_ingest_frames_total Frames received on ACS sockets.",
            "# TYPE callsite_ingest_frames_total counter",
            f"callsite_ingest_frames_total {self.frames}",
            "# HELP callsite_ingest_audio_frames_total AudioData frames received.",
            "# TYPE callsite_ingest_audio_frames_total counter",
            f"callsite_ingest_audio_frames_total {self.audio_frames}",
            "# HELP callsite_ingest_rejected_total Frames rejected with a reason.",
            "# TYPE callsite_ingest_rejected_total counter",
            f"callsite_ingest_rejected_total {self.rejected}",
            "# HELP callsite_ingest_internal_errors_total Valid frames whose handling failed.",
            "# TYPE callsite_ingest_internal_errors_total counter",
            f"callsite_ingest_internal_errors_total {self.internal_errors}",
            "# HELP callsite_ingest_db_retries_total Database writes tried again after an outage.",
            "# TYPE callsite_ingest_db_retries_total counter",
            f"callsite_ingest_db_retries_total {self.db_retries}",
            "# HELP callsite_ingest_finals_lost_total Finals not stored: retries ran out.",
            "# TYPE callsite_ingest_finals_lost_total counter",
            f"callsite_ingest_finals_lost_total {self.finals_lost}",
            "# HELP callsite_ingest_sockets ACS sockets open now.",
            "# TYPE callsite_ingest_sockets gauge",
            f"callsite_ingest_sockets {self.sockets_open}",
            "# HELP callsite_ingest_sockets_total ACS sockets accepted.",
            "# TYPE callsite_ingest_sockets_total counter",
            f"callsite_ingest_sockets_total {self.sockets_total}",
            "# HELP callsite_websocket_slow_readers_dropped_total WebSockets dropped: their "
            "peer stopped reading and the backlog passed CALLSITE_WS_MAX_BACKLOG_BYTES.",
            "# TYPE callsite_websocket_slow_readers_dropped_total counter",
            f"callsite_websocket_slow_readers_dropped_total {self.slow_readers_dropped}",
            "# HELP callsite_ingest_frame_lag_seconds Frame handling time after its timestamp.",
            "# TYPE callsite_ingest_frame_lag_seconds histogram",
        ]
        running = 0
        for bound, count in zip((*LAG_BUCKETS, float("inf")), self.lag_counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'callsite_ingest_frame_lag_seconds_bucket{{le="{le}"}} {running}')
        lines.append(f"callsite_ingest_frame_lag_seconds_sum {self.lag_sum:.6f}")
        lines.append(f"callsite_ingest_frame_lag_seconds_count {self.lag_count}")
        return "\n".join(lines) + "\n"


INGEST = IngestMetrics()
