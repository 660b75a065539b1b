"""GET_SERVICES cost against the pool size: 10k, 100k (quick stops here) and 1M numbers, 50 services.

Each size is bulk-loaded through the pool's import path (pool_load.bulk_import), then measured twice: the pool's
snapshot read in-process (PoolStore.snapshot + table: counts.lua plus the counting rule) and, when the services
exist, GET_SERVICES through api-edge -> pool at concurrency 16. The figures must stay flat: counts.lua reads
counters per (country, operator, device) group, never per number, and the group count is fixed here (50 devices x
4 operators).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from grizzly_common.redis_client import make_redis

from bench import aio, pool_load
from bench.infra import UPSTREAM_KEY, BenchEnv, module_available, run_loadgen
from bench.stats import Row, summarize

SECTION = "GET_SERVICES vs pool size"
CONCURRENCY = 16


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


async def _snapshot(redis_url: str, rounds: int) -> tuple[dict[str, Any], int]:
    from grizzly_pool.store import PoolStore

    redis = make_redis(redis_url, max_connections=4)
    try:
        store = PoolStore(redis, "gp:")
        latencies = []
        start = time.perf_counter()
        for _ in range(rounds):
            t0 = time.perf_counter()
            (await store.snapshot(pool_load.SERVICES)).table(frozenset())
            latencies.append(time.perf_counter() - t0)
        used = int((await redis.info("memory"))["used_memory"])
        return summarize(latencies, time.perf_counter() - start), used
    finally:
        await redis.aclose()


def run(env: BenchEnv) -> list[Row]:
    sizes = (10_000, 100_000) if env.quick else (10_000, 100_000, 1_000_000)
    with_services = module_available("grizzly_pool") and module_available("grizzly_edge")
    rows: list[Row] = []
    for size in sizes:
        env.flush_redis()
        stack = dict(env.stack_env(), **pool_load.POOL_ENV)
        imported = pool_load.bulk_import(env, stack, pool_load.write_csv(env.workdir / f"pool-{size}.csv", size))
        env.imports[size] = imported
        snap, used = aio.run(_snapshot(env.redis(), env.n(200, 500)))
        note = f"import {imported['seconds']} s; Redis {used / 2**20:.0f} MiB"
        rows.append(
            Row.from_summary(
                SECTION,
                f"snapshot+table in-process, {_label(size)} numbers",
                snap,
                concurrency=1,
                ref=f"snapshot+table in-process, {_label(sizes[0])} numbers",
                note=note,
            )
        )
        if with_services:
            env.start_service("pool", stack)
            env.start_service("edge", stack)
            body = orjson.dumps({"action": "GET_SERVICES", "key": UPSTREAM_KEY}).decode()
            spec = {
                "url": f"http://127.0.0.1:{stack['EDGE_PORT']}/",
                "concurrency": CONCURRENCY,
                "body": body,
                "duration_s": env.s(3.0, 8.0),
                "warmup_s": 0.5,
                "max_requests": 100000,
            }
            result = run_loadgen(spec)
            rows.append(
                Row.from_summary(
                    SECTION,
                    f"GET_SERVICES via api-edge, {_label(size)} numbers",
                    result,
                    concurrency=CONCURRENCY,
                    ref=f"GET_SERVICES via api-edge, {_label(sizes[0])} numbers",
                    note=f"errors {result['errors']}" if result["errors"] else "",
                )
            )
            env.stop_all()
    if not with_services:
        rows.append(Row(SECTION, "GET_SERVICES via api-edge", note="skipped: grizzly_pool / grizzly_edge not ready"))
    return rows
