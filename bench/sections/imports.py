"""CSV bulk import at farm scale: 1M and 5M numbers (quick: 20k and 100k) through `grizzly-pool import`.

Each size is a generated CSV shaped like a farm (SIM banks of 256 slots, so devices grow with the numbers; four
operators per country; three countries with their codes), imported into an emptied Redis by the CLI in its own
process (pool_load.bulk_import: wall time, and the child's peak RSS from os.wait4). Figures and targets:
- the importer streams: peak RSS of the big file / peak RSS of the small one <= 1.2;
- 1M rows in under 60 s (the CLI checks the whole file first, then imports it);
- Redis used_memory per imported idle number <= 300 B.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench import pool_load
from bench.infra import BenchEnv
from bench.stats import Row

SECTION = "CSV bulk import"
SLOTS = 256  # SIM slots per bank (device)
# country -> (mobile number prefix, digits after it, operators); banks go round the countries, most of them in the
# first. Every number is a valid mobile number of its country (the pool checks them: POOL_NUMBER_CHECK)
COUNTRIES = {
    "ru": ("79", 9, ("mts", "beeline", "megafon", "tele2")),
    "kz": ("77", 9, ("kcell", "beeline", "tele2", "altel")),
    "uz": ("99890", 7, ("ucell", "beeline", "uzmobile", "mobiuz")),
}
BANK_COUNTRY = ("ru", "ru", "ru", "ru", "ru", "ru", "kz", "uz")
RSS_RATIO_TARGET = 1.2
SECONDS_1M_TARGET = 60.0
BYTES_PER_NUMBER_TARGET = 300


def write_farm_csv(path: Path, count: int) -> Path:
    """`count` numbers on banks of SLOTS slots; a bank's SIMs take its country's operators in turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("number,country,operator,device,slot,flashcall\n")
        for bank_start in range(0, count, SLOTS):
            bank = bank_start // SLOTS
            country = BANK_COUNTRY[bank % len(BANK_COUNTRY)]
            prefix, digits, operators = COUNTRIES[country]
            lines = []
            for slot in range(min(SLOTS, count - bank_start)):
                number = f"{prefix}{bank_start + slot:0{digits}d}"
                lines.append(f"{number},{country},{operators[slot % 4]},bank{bank:06d},{slot},{int(slot % 16 == 0)}\n")
            out.write("".join(lines))
    return path


def _used_memory(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def _flush(url: str, wait: bool = True) -> None:
    """FLUSHDB ASYNC (a plain FLUSHDB of 5M numbers outlasts the client's socket timeout), then, with `wait`, until
    Redis has freed it all, so that used_memory is the empty database's."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb(asynchronous=True)
        while wait and int(client.info("memory").get("lazyfree_pending_objects", 0)):
            time.sleep(0.2)
    finally:
        client.close()


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def run(env: BenchEnv) -> list[Row]:
    sizes = (env.n(20_000, 1_000_000), env.n(100_000, 5_000_000))
    stack = dict(env.stack_env(), **pool_load.POOL_ENV)
    figures: list[dict[str, Any]] = []
    for size in sizes:
        path = write_farm_csv(env.workdir / f"farm-{size}.csv", size)
        _flush(env.redis())
        before = _used_memory(env.redis())
        imported = pool_load.bulk_import(env, stack, path, timeout_s=1800.0)
        imported["bytes_per_number"] = round((_used_memory(env.redis()) - before) / imported["added"], 1)
        imported["csv_mib"] = round(path.stat().st_size / 2**20, 1)
        imported["load_average"] = round(os.getloadavg()[0], 1)  # the machine is shared: timings need context
        path.unlink()  # the 5M file is ~200 MB
        figures.append(imported)
        print(f"[bench] import {_label(size)}: {imported}", file=sys.stderr, flush=True)
    _flush(env.redis(), wait=False)

    small, big = figures
    ratio = round(big["peak_rss_mib"] / small["peak_rss_mib"], 3)
    quick = " (quick: smaller counts than the 1M/5M targets)" if env.quick else ""
    rows = []
    for size, imported in zip(sizes, figures, strict=True):
        rows.append(
            Row(
                SECTION,
                f"import {_label(size)} numbers (banks of {SLOTS})",
                ops_per_s=round(size / imported["seconds"], 1),
                note=f"{imported['seconds']} s (load average {imported['load_average']}), "
                f"peak RSS {imported['peak_rss_mib']} MiB, "
                f"Redis {imported['bytes_per_number']} B/number{quick}",
                extra=imported,
            )
        )
    target = "" if env.quick else f" (target < {SECONDS_1M_TARGET:.0f} s)"
    time_target = f"{_label(sizes[0])} in {small['seconds']} s{target}"
    rows.append(
        Row(
            SECTION,
            f"streaming: peak RSS {_label(sizes[1])} / {_label(sizes[0])}",
            note=f"{ratio}x (target <= {RSS_RATIO_TARGET}); {time_target}; Redis "
            f"{big['bytes_per_number']} B/number at {_label(sizes[1])} (target <= {BYTES_PER_NUMBER_TARGET}){quick}",
            extra={"rss_ratio": ratio, "seconds_small": small["seconds"], "sizes": list(sizes)},
        )
    )
    return rows
