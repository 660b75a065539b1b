"""GET_SERVICES cost against the pool size: 10k, 100k (quick stops here) and 1M numbers, 50 services.

Every size is bulk-loaded through the pool's import path (pool_load.bulk_import) into the SAME Redis under its own
key prefix (POOL_KEY_PREFIX), then all sizes are measured interleaved (A B C A B C ...), so machine noise hits them
alike and the ratios stay meaningful:
- the pool's snapshot read in-process (PoolStore.snapshot + table: counts.lua plus the counting rule);
- GET_SERVICES through api-edge -> pool (one pool + edge pair per size) at concurrency 16, in short slices.
The figures must stay flat: counts.lua reads counters per (country, operator, device) group, never per number, and
the group count is fixed here (50 devices x 4 operators).
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


async def _snapshots(redis_url: str, prefixes: list[str], rounds: int) -> list[dict[str, Any]]:
    from grizzly_pool.store import PoolStore

    redis = make_redis(redis_url, max_connections=4)
    try:
        stores = [PoolStore(redis, prefix) for prefix in prefixes]
        latencies: list[list[float]] = [[] for _ in stores]
        spent = [0.0 for _ in stores]
        for _ in range(rounds):
            for i, store in enumerate(stores):
                t0 = time.perf_counter()
                (await store.snapshot(pool_load.SERVICES)).table(frozenset())
                latencies[i].append(time.perf_counter() - t0)
                spent[i] += latencies[i][-1]
        return [summarize(values, total) for values, total in zip(latencies, spent, strict=True)]
    finally:
        await redis.aclose()


def _redis_mib(redis_url: str) -> float:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.info("memory")["used_memory"]) / 2**20
    finally:
        client.close()


def run(env: BenchEnv) -> list[Row]:
    sizes = (10_000, 100_000) if env.quick else (10_000, 100_000, 1_000_000)
    with_services = module_available("grizzly_pool") and module_available("grizzly_edge")
    env.flush_redis()
    stacks: list[dict[str, str]] = []
    notes: list[str] = []
    before = _redis_mib(env.redis())
    for size in sizes:
        stack = dict(env.stack_env(), **pool_load.POOL_ENV, POOL_KEY_PREFIX=f"s{_label(size)}:")
        imported = pool_load.bulk_import(env, stack, pool_load.write_csv(env.workdir / f"pool-{size}.csv", size))
        env.imports[size] = imported
        after = _redis_mib(env.redis())
        notes.append(f"import {imported['seconds']} s; Redis +{after - before:.0f} MiB")
        before = after
        stacks.append(stack)

    rows: list[Row] = []
    snaps = aio.run(_snapshots(env.redis(), [s["POOL_KEY_PREFIX"] for s in stacks], env.n(200, 500)))
    first = f"snapshot+table in-process, {_label(sizes[0])} numbers"
    for size, snap, note in zip(sizes, snaps, notes, strict=True):
        case = f"snapshot+table in-process, {_label(size)} numbers"
        rows.append(Row.from_summary(SECTION, case, snap, concurrency=1, ref=first, note=note))
    if not with_services:
        rows.append(Row(SECTION, "GET_SERVICES via api-edge", note="skipped: grizzly_pool / grizzly_edge not ready"))
        return rows

    for stack in stacks:
        env.start_service("pool", stack)
        env.start_service("edge", stack)
    body = orjson.dumps({"action": "GET_SERVICES", "key": UPSTREAM_KEY}).decode()
    slices = 3 if env.quick else 6
    latencies: list[list[float]] = [[] for _ in sizes]
    spent = [0.0 for _ in sizes]
    errors = [0 for _ in sizes]
    for _ in range(slices):
        for i, stack in enumerate(stacks):
            spec = {
                "url": f"http://127.0.0.1:{stack['EDGE_PORT']}/",
                "concurrency": CONCURRENCY,
                "body": body,
                "duration_s": env.s(1.0, 1.5),
                "warmup_s": 0.2,
                "max_requests": 100000,
                "raw": True,
            }
            result = run_loadgen(spec)
            latencies[i] += result["latencies"]
            spent[i] += result["elapsed_s"]
            errors[i] += result["errors"]
    first = f"GET_SERVICES via api-edge, {_label(sizes[0])} numbers"
    for i, size in enumerate(sizes):
        summary = summarize(latencies[i], spent[i], errors[i])
        rows.append(
            Row.from_summary(
                SECTION,
                f"GET_SERVICES via api-edge, {_label(size)} numbers",
                summary,
                concurrency=CONCURRENCY,
                ref=first,
                note=f"{slices} interleaved slices" + (f"; errors {errors[i]}" if errors[i] else ""),
            )
        )
    return rows
