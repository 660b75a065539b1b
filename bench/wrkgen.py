"""wrk as the load generator (when it is installed): C, so it takes far less of the 2 cores than bench/loadgen.py.

The same spec as bench/loadgen.py (url, mode "post" or "cycle", concurrency, duration_s, warmup_s, body / key,
country, operator, services, finish_status; here also threads, 2 unless given) and a summary with the same fields,
plus the generator's own CPU share (user + system seconds of the wrk process over the wall time), so a ratio between
two targets can be read fairly.
Requests count GET_NUMBER and FINISH_ACTIVATION alike (in "cycle" mode they alternate).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

SCRIPT = Path(__file__).with_name("wrk.lua")
THREADS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def available() -> bool:
    return shutil.which("wrk") is not None


def _command(spec: dict[str, Any], duration_s: float) -> list[str]:
    if spec.get("mode", "post") == "post":
        args = ["post", spec["body"]]
    else:
        args = [
            "cycle",
            spec["key"],
            spec["country"],
            spec["operator"],
            str(spec.get("finish_status", 4)),
            *spec.get("services", ["tg"]),
        ]
    connections = spec["concurrency"]
    return [
        "wrk",
        f"-t{min(spec.get('threads', THREADS), connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        spec["url"],
        "--",
        *args,
    ]


def _wrk(spec: dict[str, Any], duration_s: float) -> tuple[dict[str, Any], float, float]:
    """One wrk run: its done() JSON, wall seconds, CPU seconds of the wrk process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the services are not reaped meanwhile: wrk's alone
    started = time.perf_counter()
    done = subprocess.run(_command(spec, duration_s), capture_output=True, timeout=duration_s + 60, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    out = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no result: {out.decode(errors='replace')[-2000:]}")
    return orjson.loads(lines[-1]), wall, cpu


def process_cpu_s(pid: int) -> float:
    """user + system seconds a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# how far above the client count mean latency x throughput may be before wrk's latencies count as wrong
LITTLE_TOLERANCE = 1.1


def in_flight(mean_ms: float, ops_per_s: float) -> float:
    """Requests in flight by Little's law: with every client always waiting, the number of clients."""
    return mean_ms * ops_per_s / 1000


def latencies_wrong(mean_ms: float, ops_per_s: float, clients: int) -> bool:
    """Whether a run's latencies contradict its throughput: wrk's figures sometimes say far more requests in flight
    than there are connections (at 200 connections against a server that saturates its core, with 1 thread as with
    2), and its percentiles are then wrong."""
    return in_flight(mean_ms, ops_per_s) > LITTLE_TOLERANCE * clients


def run(spec: dict[str, Any], pids: dict[str, int] | None = None) -> dict[str, Any]:
    """pids: processes (name -> pid) whose CPU per request over the timed run is reported as cpu_us[name]."""
    if spec.get("warmup_s", 0) > 0:
        _wrk(spec, spec["warmup_s"])
    pids = pids or {}
    before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    result, wall, cpu = _wrk(spec, spec["duration_s"])
    used = {name: process_cpu_s(pid) - before[name] for name, pid in pids.items()}
    elapsed = result["duration_us"] / 1e6
    requests = result["requests"]
    ops = requests / elapsed if elapsed > 0 else 0.0
    return {
        "ops": requests,
        "errors": result["errors"] + result["other"] + result["socket_errors"] + result["timeouts"],
        "elapsed_s": round(elapsed, 3),
        "ops_per_s": round(ops, 1),
        "p50_ms": round(result["p50_us"] / 1000, 3),
        "p99_ms": round(result["p99_us"] / 1000, 3),
        "max_ms": round(result["max_us"] / 1000, 3),
        "mean_ms": round(result["mean_us"] / 1000, 3),
        "no_numbers": result["no_numbers"],
        # Little's law: with every client always waiting, the mean latency the throughput allows
        "floor_ms": round(spec["concurrency"] / ops * 1000, 3) if ops else 0.0,
        "loadgen_cpu": round(cpu / wall, 2) if wall > 0 else 0.0,  # cores the generator used
        "generator": "wrk",
        "cpu_us": {name: round(seconds / max(1, requests) * 1e6, 1) for name, seconds in used.items()},
    }
