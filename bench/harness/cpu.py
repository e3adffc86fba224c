"""CPU: process and core times from ``/proc``, where each process runs, and where time goes.

Placement: worker i runs pinned to CPU i % cpu_count, and the load generator (this process)
keeps a core of its own, CPU N beside N workers, while one is left; with as many workers as
cores it runs unpinned. ``CpuMeter`` measures a window: each worker, the generator, a local
Redis, and the processes that are not part of the benchmark on the workers' cores. py-spy
profiles of the servers are recorded with ``start_py_spy`` and summed up by
``profile_summary``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPUS = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc/<pid>/stat and /proc/stat --------------------------------------------------------------


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name: [0] is field 3, the state."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_ticks(pid: int) -> int:
    """When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        return int(stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return 0


def cores_busy_seconds(cpus: Iterable[int] | None = None) -> float:
    """Busy (non-idle, non-iowait) time of these CPUs, or of all with None; all processes."""
    wanted = {"cpu"} if cpus is None else {f"cpu{cpu}" for cpu in cpus}
    busy, found = 0, 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, _, rest = line.partition(" ")
        if name in wanted:
            ticks = [int(x) for x in rest.split()]
            busy += sum(ticks[:8]) - ticks[3] - ticks[4]
            found += 1
    return busy / CLK_TCK if found == len(wanted) else math.nan


def process_cpu(pid: int | None) -> float:
    """CPU seconds of a process, or NaN when it is unknown or unreadable."""
    if pid is None:
        return math.nan
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return math.nan


def affinity(pid: int | None) -> set[int] | None:
    """The CPUs a process may run on, or None when unknown."""
    if pid is None:
        return None
    try:
        return set(os.sched_getaffinity(pid))
    except (OSError, AttributeError):
        return None


# --- placement: worker i on CPU i % CPUS, the generator on a core of its own while one is left


def worker_cpu(index: int) -> int:
    return index % CPUS


def generator_cpu(workers: int) -> int | None:
    """The generator's CPU beside ``workers`` workers: CPU N while N < CPUS, else None.

    With as many workers as CPUs no core is left for the generator; it then runs unpinned, so
    the scheduler spreads its load over the workers' cores rather than all on one worker's.
    With one worker this is CPU 1, as the benchmarks have always had it.
    """
    return workers if workers < CPUS else None


def pin_generator(cpu: int | None) -> set[int]:
    """Pin this process, every thread, to ``cpu`` (None: any CPU); the CPUs it may now use."""
    cpus = set(range(CPUS)) if cpu is None else {cpu}
    try:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(tid), cpus)
    except (OSError, AttributeError) as error:
        print(f"warning: could not pin the generator to CPUs {sorted(cpus)}: {error}")
        return set(range(CPUS))
    return cpus


def placement(workers: Sequence[int], loop: str) -> str:
    """Where the servers and this process run, for the header line."""
    parts = []
    for n in workers:
        cpus = ",".join(str(worker_cpu(i)) for i in range(n))
        gen = generator_cpu(n)
        parts.append(
            f"{n} worker{'s' if n > 1 else ''} on CPU{'s' if n > 1 else ''} {cpus},"
            f" {loop} on " + (f"CPU {gen}" if gen is not None else "any CPU (unpinned)")
        )
    return "; ".join(parts)


def parse_workers(text: str) -> list[int]:
    """``1,2``: the worker counts to measure, each at least 1."""
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise ValueError("worker counts must be at least 1")
    return counts


# --- a window's CPU use ------------------------------------------------------------------------


@dataclass
class CpuUse:
    """CPU use in a window, as shares of one core (1.0: one core busy all the window)."""

    workers: list[float]
    generator: float  # this process
    redis: float  # NaN when Redis is not in use or not on this machine
    cores_busy: float  # the workers' cores, any process
    others: float  # processes that are not part of the benchmark, on the workers' cores

    @property
    def total(self) -> float:
        return sum(self.workers)

    def shares(self) -> dict[str, Any]:
        """The figures as a point's or a run's fields are named."""
        return {
            "server_cpu": self.total,
            "worker_cpu": self.workers,
            "core_busy": self.cores_busy,
            "others_cpu": self.others,
            "generator_cpu": self.generator,
            "redis_cpu": self.redis,
        }


class CpuMeter:
    """Every known process's CPU time, and the busy time of the workers' cores and all cores.

    Known processes are the workers, this process (the generator) and a local Redis. The
    others' share of the workers' cores is the cores' busy time minus the known processes
    that can only run there. Redis (and the generator, when its CPUs are only partly the
    workers') may run on other cores too, so their time is not taken off in full; instead the
    figure is capped by the busy time of all cores minus every known process, which is
    exactly what unknown processes used anywhere.
    """

    def __init__(
        self,
        worker_pids: Sequence[int],
        cores: set[int],
        generator_cpus: set[int],
        redis_pid: int | None,
    ) -> None:
        self.pids = list(worker_pids)
        self.cores = cores
        self.redis_pid = redis_pid
        redis_cpus = affinity(redis_pid)
        self.generator_inside = generator_cpus <= cores
        self.redis_inside = redis_cpus is not None and redis_cpus <= cores
        self._start = self._read()  # the window starts now

    def _read(self) -> tuple[float, list[float], float, float, float, float]:
        return (
            time.monotonic(),
            [cpu_seconds(pid) for pid in self.pids],
            time.process_time(),
            process_cpu(self.redis_pid),
            cores_busy_seconds(self.cores),
            cores_busy_seconds(None),
        )

    def stop(self) -> CpuUse:
        t0, w0, g0, r0, c0, a0 = self._start
        t1, w1, g1, r1, c1, a1 = self._read()
        window = t1 - t0
        workers = [(b - a) / window for a, b in zip(w0, w1, strict=True)]
        generator = (g1 - g0) / window
        redis = (r1 - r0) / window
        known_redis = 0.0 if math.isnan(redis) else redis
        inside = (
            sum(workers)
            + (generator if self.generator_inside else 0.0)
            + (known_redis if self.redis_inside else 0.0)
        )
        cores_busy = (c1 - c0) / window
        anywhere = (a1 - a0) / window - sum(workers) - generator - known_redis
        return CpuUse(workers, generator, redis, cores_busy, min(cores_busy - inside, anywhere))


# --- py-spy profiles ---------------------------------------------------------------------------


def profile_paths(folder: Path, stem: str, workers: int) -> list[Path]:
    """Where each worker's py-spy profile goes: ``stem.txt`` with one worker."""
    folder.mkdir(parents=True, exist_ok=True)
    if workers == 1:
        return [folder / f"{stem}.txt"]
    return [folder / f"{stem}-W{workers}-worker{i}.txt" for i in range(workers)]


def start_py_spies(
    pids: Sequence[int], seconds: float, folder: Path, stem: str
) -> list[subprocess.Popen[bytes]]:
    """A py-spy profile of each worker for the next ``seconds`` (``profile_paths``)."""
    paths = profile_paths(folder, stem, len(pids))
    return [start_py_spy(pid, seconds, out) for pid, out in zip(pids, paths, strict=True)]


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Sample the server for the window with py-spy (collapsed stacks in ``out``)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spies(spies: Sequence[subprocess.Popen[bytes]]) -> None:
    """Kill the profilers still running (after a failed window)."""
    for spy in spies:
        if spy.poll() is None:
            spy.kill()
            spy.wait()


PACKAGES = (
    ("streaming/", "Callsite (streaming/)"),
    ("channels/", "Channels"),
    ("asgiref/", "asgiref"),
    ("daphne/", "Daphne"),
    ("autobahn/", "Autobahn"),
    ("twisted/", "Twisted"),
    ("django/", "Django"),
    ("websockets/", "websockets"),
    ("json/", "json"),
    ("numpy/", "numpy"),
    ("selectors.py", "epoll (selectors)"),
    ("asyncio/", "asyncio"),
)


def package_of(frame: str) -> str:
    for marker, name in PACKAGES:
        if marker in frame:
            return name
    return "other"


def profile_summary(path: Path, top: int = 25) -> str:
    """Self and inclusive shares of the functions in py-spy's collapsed output (``--threads``).

    Shares are of all samples of all threads; py-spy leaves out idle threads, so a share is
    roughly the share of the process's CPU time.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        thread = frames.pop(0).split(": ", 1)[-1] if frames[0].startswith("thread (") else ""
        if not frames:
            continue
        if thread:
            threads[thread] += count
        total += count
        own[frames[-1]] += count
        packages[package_of(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return f"{path}: no samples"

    def share(n: int) -> str:
        return f"{100 * n / total:6.1f}"

    out = [f"{path}: {total} samples"]
    if threads:
        out += ["", "   %    thread"] + [f"{share(n)}  {name}" for name, n in threads.most_common()]
    out += ["", "self %  package (where the sampled frame's code lives)"]
    out += [f"{share(n)}  {name}" for name, n in packages.most_common()]
    out += ["", "self %  function"]
    out += [f"{share(n)}  {name}" for name, n in own.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{share(n)}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)
