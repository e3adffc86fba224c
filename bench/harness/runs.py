"""Running a benchmark: the options every load benchmark has, what its ``main`` does around
the event loop, and keeping, showing and tearing down each point or run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench.harness.clients import CallLoad
from bench.harness.cpu import parse_workers, stop_py_spies
from bench.harness.report import code_version
from bench.harness.servers import DEFAULT_REDIS_URL, Workers, redis_cleanup, redis_pid, stop_servers

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
T = TypeVar("T")


def redis_problem(runner: Runner, url: str) -> str:
    """Why Redis at ``url`` cannot be used, or an empty string when it answers."""
    try:
        runner(redis_pid(url))
    except Exception as error:
        return f"Redis at {url} does not answer: {error}"
    return ""


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: unwind, so that every server is stopped and Redis cleaned up."""
    raise KeyboardInterrupt


def add_load_options(
    parser: argparse.ArgumentParser,
    *,
    seconds: float,
    warmup: tuple[float, str],
    drain: tuple[float, str],
    pause: tuple[float, str],
    workers: str,
) -> None:
    """The options of every benchmark that plays a load against Daphne workers; defaults
    and the help that differs are the benchmark's (``warmup`` etc.: default, help)."""
    add = parser.add_argument
    add("--seconds", type=float, default=seconds, help="measurement window")
    add("--warmup", type=float, default=warmup[0], help=warmup[1])
    add("--drain", type=float, default=drain[0], help=drain[1])
    add("--runs", type=int, default=3)
    add("--pause", type=float, default=pause[0], help=pause[1])
    add("--workers", default="1", help=workers)
    add("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the layer")
    add(
        "--entry",
        choices=["callsite.server", "daphne"],
        default="callsite.server",
        help="how Callsite's workers start: python -m callsite.server, what manage.py serve"
        " runs (default; shedding off), or plain daphne",
    )
    add("--json", type=Path, help="write raw results here")
    add("--workdir", type=Path, help="keep databases and server logs here")
    add(
        "--py-spy",
        type=Path,
        help="record a py-spy profile of each server during each window into this folder"
        " (summarise with python -m bench.ingest --summarize FILE)",
    )


def parse_worker_counts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``args.workers`` as the list of worker counts, or the parser's error."""
    try:
        args.workers = parse_workers(args.workers)
    except ValueError as error:
        parser.error(f"--workers: {error}")


def prepare_process(args: argparse.Namespace) -> Runner:
    """What every load-generating benchmark does first: a shared secret, the code version,
    SIGTERM handled as Ctrl-C, the fd limit raised; then its event loop (asyncio's), named in
    ``args.loop_name``."""
    args.secret = secrets.token_urlsafe(16)
    args.code_version = code_version()
    signal.signal(signal.SIGTERM, interrupt)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # asyncio's loop, though uvloop is installed now (Callsite's servers run on it): every
    # figure in docs/benchmarks.md was measured with the load on asyncio, and a load that
    # changes with the server under test would not compare with them.
    args.loop_name = "asyncio"
    runner: Runner = asyncio.run
    return runner


def run_load(
    runner: Runner, bench: Coroutine[Any, Any, T], report: Callable[[T], str], started: float
) -> int:
    """Run a benchmark's coroutine, stop every server whatever happens, print its report."""
    try:
        results = runner(bench)
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        return 130
    finally:
        stop_servers()
    print()
    print(report(results))
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


async def tear_down(
    load: CallLoad,
    driver: asyncio.Task[Any] | None,
    spies: Sequence[subprocess.Popen[bytes]],
    group: Workers | None,
    redis: tuple[str, str] | None,
) -> None:
    """Stop what a point or a run started, whatever happened: the load's driver and sockets,
    the profilers, the workers, and the run's keys in Redis (``redis``: URL, prefix)."""
    load.stop_at = 0
    if driver is not None and not driver.done():
        driver.cancel()
        with contextlib.suppress(BaseException):
            await driver
    stop_py_spies(spies)
    load.close()
    if group is not None:
        group.stop()
    if redis is not None:
        with contextlib.suppress(Exception):
            await redis_cleanup(*redis)


def show(result: Any) -> None:
    """Print a point's (or a run's) line, and the first problems in its servers' logs."""
    print(result.line(), flush=True)
    for problem in result.log_problems[:3]:
        print(f"    server log: {problem[:200]}", flush=True)


async def keep(
    result: T, results: list[T], save: Callable[[list[T]], None] | None, pause: float
) -> None:
    """Keep a point's (or a run's) result and print it, save every result so far (``save``),
    and pause before the next."""
    results.append(result)
    show(result)
    if save is not None:
        save(results)
    await asyncio.sleep(pause)


@contextlib.contextmanager
def workdir(keep: Path | None, prefix: str = "bench-") -> Iterator[Path]:
    """``keep`` (created if need be), or a temporary folder removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)
