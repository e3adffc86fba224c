"""Run the whole suite once per backend pair: the embedded defaults, then production's engines.

    python -m tests.matrix [pytest arguments]

1. SQLite (WAL) + the in-memory channel layer: what ``make demo`` uses.
2. PostgreSQL + Redis (``CALLSITE_TEST_DATABASE_URL``, ``CALLSITE_TEST_REDIS_URL``; by default
   the local servers on 127.0.0.1). Under ``CI=true`` a missing server is a failure; elsewhere
   the pass is skipped with the reason.
3. The fault tests (``tests/faults/``), once: they start their own PostgreSQL cluster and
   ``redis-server`` to kill and restart, whatever the pass, so running them twice would only
   take twice as long. They run when no test paths are given, or when one is under
   ``tests/faults``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.services import IN_CI, reachable

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PG_URL = os.environ.get("CALLSITE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/callsite")
REDIS_URL = os.environ.get("CALLSITE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a JUnit XML report."""
    if not report.exists():
        return 0, 0, 0
    suite = ET.parse(report).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    total = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def _run(
    name: str, env_overrides: dict[str, str], args: list[str], *, allow_empty: bool = False
) -> tuple[int, int, int, int]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(env_overrides)
    env["CALLSITE_TEST_BACKEND"] = name
    report = ARTIFACTS / f"junit-{name}.xml"
    report.unlink(missing_ok=True)
    print(f"\n=== {name}: running the suite ===", flush=True)
    code = subprocess.call(
        [sys.executable, "-m", "pytest", f"--junitxml={report}", *args], cwd=ROOT, env=env
    )
    passed, failed, skipped = _counts(report)
    if code == 5 and allow_empty:  # a filter (-k, -m) left none of this pass's tests
        return 0, passed, failed, skipped
    if code == 5:  # pytest ran no test: that is a failure of the suite, not a pass
        print(f"{name}: no tests ran", flush=True)
        code = 1
    return code, passed, failed, skipped


FAULTS = "tests/faults"


def _split_paths(args: list[str]) -> tuple[list[str], list[str]]:
    """(test paths, other pytest arguments) among ``args``."""
    paths = [a for a in args if not a.startswith("-") and (ROOT / a.split("::")[0]).exists()]
    return paths, [a for a in args if a not in paths]


def main(args: list[str]) -> int:
    ARTIFACTS.mkdir(exist_ok=True)
    results: dict[str, tuple[int, int, int, int]] = {}
    paths, options = _split_paths(args)
    fault_paths = [p for p in paths if p.startswith(FAULTS)]
    other_paths = [p for p in paths if not p.startswith(FAULTS)]
    run_faults = not paths or bool(fault_paths)
    # Only fault tests asked for: no backend pass.
    args = [] if paths and not other_paths else [*options, *other_paths, f"--ignore={FAULTS}"]
    if args:
        results["sqlite-memory"] = _run("sqlite-memory", {}, args)

    missing = [
        what
        for what, url, port in (("PostgreSQL", PG_URL, 5432), ("Redis", REDIS_URL, 6379))
        if args and not reachable(url, port)
    ]
    if missing:
        reason = f"{' and '.join(missing)} not reachable ({PG_URL}, {REDIS_URL})"
        if IN_CI:
            print(f"\npostgresql-redis: FAILED: required under CI=true: {reason}", flush=True)
            results["postgresql-redis"] = (1, 0, 1, 0)
        else:
            print(f"\npostgresql-redis: SKIPPED: {reason}", flush=True)
    elif args:
        results["postgresql-redis"] = _run(
            "postgresql-redis",
            {
                "DATABASE_URL": PG_URL,
                "REDIS_URL": REDIS_URL,
                "CALLSITE_CHANNEL_PREFIX": f"callsite-test-{os.getpid()}",
                "CALLSITE_EXPECT_BACKENDS": "postgresql,redis",
            },
            args,
        )

    if run_faults:
        results["faults"] = _run(
            "faults", {}, [*options, *(fault_paths or [FAULTS])], allow_empty=bool(options)
        )

    print("\n=== test matrix ===")
    for name, (code, passed, failed, skipped) in results.items():
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{name:18} {passed:4} passed, {failed:3} failed, {skipped:3} skipped  {status}")
    totals = [sum(r[i] for r in results.values()) for i in (1, 2, 3)]
    print(f"total: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 0 if all(r[0] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
