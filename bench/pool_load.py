"""Pool inventory for the benchmarks: a CSV of N numbers and the bulk import through the pool's own import path.

The import runs as its own process so its wall time and peak RSS (os.wait4 rusage) are the importer's alone: the
pool CLI (`python -m grizzly_pool import FILE`, i.e. `grizzly-pool import`) when it is installed, else
bench/importer.py, which streams the CSV into grizzly_pool.store.PoolStore.add_numbers (the same Lua).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.infra import BenchEnv

COUNTRY = "ru"
OPERATORS = ("mts", "beeline", "megafon", "tele2")
DEVICES = 50  # fixed, so the number of groups (and GET_SERVICES' cost) does not grow with the numbers
SERVICES = ("tg", "wa", "vk", "ok", "go", "fb", "ig", "ds", "dr", "ot", *(f"s{i:02d}" for i in range(40)))
SERVICES_COUNT = len(SERVICES)
POOL_ENV = {
    "POOL_SERVICES": ",".join(SERVICES),
    "POOL_CANCEL_LIMIT": "1000000000",  # GET_NUMBER+FINISH(4) cycles never block a number: the pool does not drain
}
CSV_HEADER = ("number", "country", "operator", "device", "slot")


def rows(count: int) -> Any:
    for i in range(count):
        yield (str(79000000000 + i), COUNTRY, OPERATORS[i % len(OPERATORS)], f"gw{i % DEVICES:03d}", str(i // DEVICES))


def write_csv(path: Path, count: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows(count))
    return path


def import_command(path: Path) -> list[str]:
    if importlib.util.find_spec("grizzly_pool.cli") is not None:
        return [sys.executable, "-m", "grizzly_pool", "import", str(path)]
    return [sys.executable, "-m", "bench.importer", str(path)]


def bulk_import(env: BenchEnv, stack: dict[str, str], path: Path, timeout_s: float = 900.0) -> dict[str, Any]:
    """Run the import in a child process; seconds and the child's peak RSS (MiB)."""
    command = import_command(path)
    log = env.workdir / "logs" / f"import-{path.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("ab") as out:
        child = subprocess.Popen(command, env=dict(os.environ, **stack), stdout=out, stderr=out)
    deadline = started + timeout_s
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            child.kill()
            child.wait()
            raise TimeoutError(f"import of {path} did not finish in {timeout_s}s")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[1:4])} failed ({child.returncode}): {log.read_text(errors='replace')[-1500:]}"
        )
    added = re.findall(r"added (\d+)", log.read_text(errors="replace"))
    if not added or int(added[-1]) == 0:
        raise RuntimeError(f"{' '.join(command[1:4])} imported nothing: {log.read_text(errors='replace')[-1500:]}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "added": int(added[-1]),
        "importer": "grizzly-pool import" if "grizzly_pool" in command else "bench/importer.py",
    }
