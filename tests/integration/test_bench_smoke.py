"""Smoke test of the benchmark harness: its smallest section with tiny counts prints a results table with figures.

No timing is asserted (performance belongs in bench/); only that the harness runs and reports numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from grizzly_testkit.infra import ROOT


def test_bench_clients_section_prints_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "clients", "--quick", "--scale", "0.05", "--no-json"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("push HTTP client")]
    assert len(lines) == 6, done.stdout  # aiohttp and httpx at concurrency 1, 16, 64
    for line in lines:
        assert re.search(r"\s\d[\d,]*\.\d\s", line), line  # an ops/s figure
    assert any("aiohttp ClientSession" in line and "x httpx AsyncClient" in line for line in lines)
