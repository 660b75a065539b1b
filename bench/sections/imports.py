"""CSV import of 1M numbers (100k in quick mode) through the pool's import path: seconds and the importer's peak RSS.

Reuses the figure of the scale section when it already imported that size in this run.
"""

from __future__ import annotations

from bench import pool_load
from bench.infra import BenchEnv
from bench.stats import Row

SECTION = "CSV bulk import"


def run(env: BenchEnv) -> list[Row]:
    size = 100_000 if env.quick else 1_000_000
    imported = env.imports.get(size)
    if imported is None:
        env.flush_redis()
        stack = dict(env.stack_env(), **pool_load.POOL_ENV)
        imported = pool_load.bulk_import(env, stack, pool_load.write_csv(env.workdir / f"pool-{size}.csv", size))
        env.imports[size] = imported
    return [
        Row(
            SECTION,
            f"import {size:,} numbers",
            ops_per_s=round(size / imported["seconds"], 1),
            note=f"{imported['seconds']} s, peak RSS {imported['peak_rss_mib']} MiB ({imported['importer']})",
            extra=imported,
        )
    ]
