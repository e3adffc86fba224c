"""The benchmarks' shared harness; each ``bench/<name>.py`` is one scenario and its verdict.

* ``ws``: the raw asyncio WebSocket client protocol the load generators use.
* ``clients``: what they play over it: ACS call sockets (pre-encoded ``simulator.wire`` audio
  frames, transcription turns) and supervisors' pages, and opening many sockets at once.
* ``servers``: starting Callsite (Daphne workers, ``manage.py serve``, from this checkout or
  another), the bare server and Django's WSGI application in this process; their
  environment, logs and ports; Redis helpers.
* ``runs``: the options every load benchmark has, what its ``main`` does around the event
  loop, and keeping, showing and tearing down each point or run.
* ``cpu``: CPU time from ``/proc``, pinning, the CPU meter of a window, py-spy profiles.
* ``metrics``: reading ``/metrics``, frame-lag histograms, send lateness, quantiles.
* ``report``: formatting, markdown helpers, the code version and JSON output.
* ``db``: databases: the migrated SQLite template, scratch PostgreSQL databases, a supervisor
  with a session, Django in this process.
* ``seed``: a call history to measure the history pages and exports on.
* ``churn``: calls and supervisors' pages that come and go (the soak's load).
* ``monitor``: what ``/proc``, PostgreSQL and Redis say about the workers (the soak's samples).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout the benchmarks run from
