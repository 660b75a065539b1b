"""Smoke test of the benchmark harness: its smallest section with tiny counts prints a results table with figures.

No timing is asserted (performance belongs in bench/); only that the harness runs and reports numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from grizzly_testkit.infra import ROOT


def _python(*args: str, timeout_s: float) -> str:
    """Python with the repository's bench package importable; its standard output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_clients_section_prints_figures() -> None:
    stdout = _python("-m", "bench", "clients", "--quick", "--scale", "0.05", "--no-json", timeout_s=180)
    lines = [line for line in stdout.splitlines() if line.startswith("push HTTP client")]
    assert len(lines) == 6, stdout  # aiohttp and httpx at concurrency 1, 16, 64
    for line in lines:
        assert re.search(r"\s\d[\d,]*\.\d\s", line), line  # an ops/s figure
    assert any("aiohttp ClientSession" in line and "x httpx AsyncClient" in line for line in lines)


def test_a_run_whose_latencies_contradict_its_throughput_is_marked() -> None:
    """Little's law: with every client always waiting, mean latency x throughput is the client count. wrk's
    figures sometimes say far more (against a saturated server), and the row's note must then say they are wrong."""
    right, wrong, other_generator = _python("-c", _TAIL_NOTES, timeout_s=60).splitlines()
    assert "floor 20.0 ms, p99/floor 2.00" in right and "wrong" not in right
    assert "latencies wrong: mean x throughput = 600 in flight for 200 clients" in wrong
    assert "wrong" not in other_generator  # the aiohttp generator reports no mean latency to check


_TAIL_NOTES = """
from bench.sections.http import tail_note
run = {"ops_per_s": 10000.0, "p99_ms": 40.0, "max_ms": 90.0, "generator": "wrk"}
print(tail_note({**run, "mean_ms": 20.5}, 200))
print(tail_note({**run, "mean_ms": 60.0}, 200))
print(tail_note({"ops_per_s": 10000.0, "p99_ms": 40.0, "max_ms": 90.0}, 200))
"""
