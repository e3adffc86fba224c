"""Reporting: numbers as the tables write them, the code version, and the JSON of a run."""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import ROOT

CODE_DIRS = ("streaming", "callsite", "dashboard")  # the code under test


def fmt_ms(value: float) -> str:
    """Milliseconds: one decimal below 10, whole from 10; ``-`` when unknown."""
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return ">10000"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def fmt(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def workers_text(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"


def each_worker(shares: Sequence[float]) -> str:
    """`` (76% 74%)``: each worker's share of a core, when there are several."""
    return " (" + " ".join(f"{c:.0%}" for c in shares) + ")" if len(shares) > 1 else ""


def median(values: Sequence[float]) -> float:
    """The median of the known values (NaN left out); NaN when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def code_version(root: Path = ROOT) -> str:
    """The commit of ``root``, and a digest of the code under test when its tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    try:
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", *CODE_DIRS],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        changes = "unknown"
    if commit and not changes:
        return commit
    digest = hashlib.sha256()
    patterns = ("streaming/**/*.py", "callsite/*.py", "dashboard/**/*.py")
    for path in sorted(path for pattern in patterns for path in root.glob(pattern)):
        digest.update(path.read_bytes())
    return f"{commit or 'unknown'} + tree {digest.hexdigest()[:12]}"


def write_json(path: Path, code: str, document: Mapping[str, Any]) -> None:
    """A run's JSON: its date, command, code and CPUs, then ``document``.

    Written to a temporary file first and moved into place, so that a reader never sees
    half a file (the benchmarks rewrite it after every point).
    """
    whole = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "code": code,
        "cpus": os.cpu_count(),
        **document,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(whole, indent=1, default=str, ensure_ascii=False) + "\n")
    tmp.replace(path)


def header(title: str, code: str) -> str:
    """The start of a report's first line: what, when, which code, how many CPUs."""
    return f"# {title}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, code {code}, {os.cpu_count()} CPUs"
