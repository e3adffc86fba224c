"""Every benchmark runs end to end at a tiny scale, as its README command runs it.

The figures in docs/benchmarks.md come from these scripts at full scale, outside the suite
(they take minutes to hours and want a quiet machine). Here each one runs for seconds, in
its own process, and must finish, write its JSON and measure what it says it measures: so
a change to the code or the harness cannot leave a benchmark broken until the next time
someone needs its figures. The verdicts (targets met or not) are not checked at this scale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.services import REDIS_TEST_URL, reachable, require

pytestmark = pytest.mark.live_server

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("CALLSITE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/callsite")


def _bench(name: str, tmp_path: Path, *args: str, timeout: float = 300) -> tuple[int, Any, str]:
    """Run ``python -m bench.<name> ... --json``; (exit code, the JSON written, output)."""
    out = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert out.exists(), f"bench.{name} wrote no JSON:\n{output[-3000:]}"
    return result.returncode, json.loads(out.read_text()), output


def test_ingest_measures_callsite_and_the_bare_server(tmp_path: Path) -> None:
    code, report, output = _bench(
        "ingest", tmp_path, "--callsite-calls", "5", "--bare-calls", "5", "--seconds", "2",
        "--warmup", "1", "--runs", "1", "--pause", "0", "--servers", "callsite,bare",
    )  # fmt: skip
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    text = json.dumps(report)
    assert '"callsite"' in text
    assert '"bare"' in text


def test_ingest_measures_callsite_recording_beside_callsite(tmp_path: Path) -> None:
    code, report, output = _bench(
        "ingest", tmp_path, "--callsite-calls", "3", "--seconds", "6", "--warmup", "1",
        "--runs", "1", "--pause", "0", "--servers", "callsite,callsite+recording",
    )  # fmt: skip
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    points = {p["server"]: p for p in report["points"]}
    assert set(points) == {"callsite", "callsite+recording"}, points
    assert points["callsite"]["recorded_bytes"] == 0
    # Seven seconds of three calls: a 5-second chunk of each call's track and mix, as FLAC.
    assert points["callsite+recording"]["recorded_bytes"] > 3 * 2 * 5 * 16000 * 2 // 10


def test_bounds_measures_a_case_on_a_worker(tmp_path: Path) -> None:
    code, report, output = _bench("bounds", tmp_path, "--cases", "ordinary", "--watch", "1")
    assert "Traceback" not in output, output[-3000:]
    (case,) = report["results"]
    assert case["case"] == "ordinary"
    assert case["error"] == "", output[-3000:]
    # Exit 1 is the verdict (a stall or the memory over its target on a busy machine), which
    # is not checked at this scale; the script must say so in its report line.
    assert code == 0 or (code == 1 and "-> over" in output), output[-3000:]
    assert case["packets"] == 100
    assert 0 < case["longest_stall_ms"] < 10_000, output[-3000:]
    assert case["peak_rss_mb"] > 10, output[-3000:]
    assert case["wall_bytes"] > 0, output[-3000:]


def test_overload_measures_shedding_on_and_off(tmp_path: Path) -> None:
    _, report, output = _bench(
        "overload", tmp_path, "--hold", "5", "--rush-rate", "5", "--rush-seconds", "2",
        "--after", "1", "--warmup", "1", "--runs", "1", "--pause", "0",
    )  # fmt: skip
    assert "Traceback" not in output, output[-3000:]
    runs = {run["mode"]: run for run in report["runs"]}
    assert set(runs) == {"shed", "off"}
    for run in runs.values():
        assert run["error"] == "", output[-3000:]
        assert run["held"] == 5
        assert run["attempts"] == 10
        assert run["taken"] + run["refused"] + run["failed"] == 10
        assert run["frames_handled"] > 0


def test_latency_measures_captions_through_redis(tmp_path: Path) -> None:
    require(reachable(REDIS_TEST_URL, 6379), f"Redis is not reachable at {REDIS_TEST_URL}")
    code, report, output = _bench(
        "latency", tmp_path, "--calls", "2", "--supervisors", "1", "--seconds", "3",
        "--warmup", "1", "--runs", "1", "--pause", "0", "--redis-url", REDIS_TEST_URL,
    )  # fmt: skip
    assert code in (0, 1), output[-3000:]  # 1: a target missed, which is not this test's
    assert "Traceback" not in output, output[-3000:]
    (run,) = report["runs"]
    assert run["error"] == ""
    assert run["layer"] == "redis"
    assert run["expected_final"] > 0
    assert run["lost_final"] == 0
    assert run["duplicates"] == 0
    assert run["frames_handled"] > 0


def _bench_on_postgresql(script: str, tmp_path: Path, *args: str) -> tuple[Any, str]:
    """Run a benchmark on a scratch database of the test server; its report and output."""
    require(reachable(PG_URL, 5432), f"PostgreSQL is not reachable at {PG_URL}")
    server = PG_URL.rsplit("/", 1)[0] + "/postgres"
    code, report, output = _bench(script, tmp_path, *args, "--database-url", server)
    assert code in (0, 1), output[-3000:]  # 1: a target missed, which is not this test's
    assert "Traceback" not in output, output[-3000:]
    return report, output


def test_history_measures_pages_and_exports_on_postgresql(tmp_path: Path) -> None:
    report, _ = _bench_on_postgresql(
        "history", tmp_path, "--calls", "20", "--utterances", "20", "--per-call", "2",
        "--runs", "1", "--export-runs", "1",
    )  # fmt: skip
    assert report["data"]["calls"] >= 20
    results = report["results"]
    assert {r["kind"] for r in results} == {"list", "export"}
    assert all(r["error"] == "" and r["http_status"] == 200 for r in results), [
        (r["label"], r["http_status"], r["error"]) for r in results if r["error"]
    ]


def test_reports_measure_the_api_page_and_csv_on_postgresql(tmp_path: Path) -> None:
    report, output = _bench_on_postgresql(
        "reports", tmp_path, "--calls", "20", "--per-call", "2", "--utterances", "20",
        "--runs", "1", "--warmup", "0",
    )  # fmt: skip
    assert "dropped database callsite_bench_reports_" in output
    assert report["calls"] >= 20
    results = report["results"]
    assert {r["viewer"] for r in results} == {"staff", "supervisor"}
    assert all(r["error"] == "" and len(r["times_ms"]) == 1 for r in results), [
        (r["label"], r["error"]) for r in results if r["error"]
    ]


def test_pages_measures_the_wall_and_the_call_page(tmp_path: Path) -> None:
    from tests.services import chromium_path

    require(chromium_path() is not None, "Chromium is not installed (apt-get install chromium)")
    code, report, output = _bench("pages", tmp_path, "--calls", "3", "--seconds", "2", timeout=400)
    assert code == 0, output[-3000:]
    wall = report["wall"]
    assert wall["rows"] >= 3
    assert wall["dom_mutations_per_second"] > 0  # the durations tick
    assert wall["main_thread_ms_per_second"] > 0
    assert wall["js_heap_used_mb"] > 0
    page = report["call_page"]
    assert 0 < page["static_bytes"] <= page["first_visit_bytes"]
    assert page["load_ms"] > 0


def test_recording_measures_the_frame_path_chunks_and_sizes(tmp_path: Path) -> None:
    code, report, output = _bench("recording", tmp_path, "--rounds", "2")
    assert code == 0, output[-3000:]
    assert report["frame"]["with_ns"] > 0
    assert report["chunk_ms"] > 0
    assert report["assembly_10min_ms"] > 0
    assert set(report["size"]) == {"agent", "customer", "mix"}
    assert all(0 < size["ratio"] < 1 for size in report["size"].values())
