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


# (attribute, metric name, type, help) of each counter and gauge, in the order served.
COUNTERS = (
    ("frames", "callsite_ingest_frames_total", "counter", "Frames received on ACS sockets."),
    ("audio_frames", "callsite_ingest_audio_frames_total", "counter", "AudioData frames received."),
    ("rejected", "callsite_ingest_rejected_total", "counter", "Frames rejected with a reason."),
    ("internal_errors", "callsite_ingest_internal_errors_total", "counter",
     "Valid frames whose handling failed."),
    ("db_retries", "callsite_ingest_db_retries_total", "counter",
     "Database writes tried again after an outage."),
    ("finals_lost", "callsite_ingest_finals_lost_total", "counter",
     "Finals not stored: retries ran out."),
    ("talk_seconds_refused", "callsite_ingest_talk_seconds_refused_total", "counter",
     "Talk-time buckets the database refused (dropped, each logged)."),
    ("capped", "callsite_ingest_capped_total", "counter",
     "Speakers, participants or timings past a call's bounds, ignored with a logged reason."),
    ("streams_shed", "callsite_ingest_streams_shed_total", "counter",
     "ACS streams refused because the worker was over capacity."),
    ("sockets_open", "callsite_ingest_sockets", "gauge", "ACS sockets open now."),
    ("sockets_total", "callsite_ingest_sockets_total", "counter", "ACS sockets accepted."),
    ("slow_readers_dropped", "callsite_websocket_slow_readers_dropped_total", "counter",
     "WebSockets dropped: their peer stopped reading and the backlog passed "
     "CALLSITE_WS_MAX_BACKLOG_BYTES."),
)  # fmt: skip


@dataclass
class IngestMetrics:
    frames: int = 0
    audio_frames: int = 0
    rejected: int = 0
    internal_errors: int = 0
    db_retries: int = 0
    finals_lost: int = 0
    talk_seconds_refused: int = 0
    capped: int = 0
    streams_shed: int = 0
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
        lines = []
        for attribute, name, kind, text in COUNTERS:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines.append(f"{name} {getattr(self, attribute)}")
        lines += [
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
