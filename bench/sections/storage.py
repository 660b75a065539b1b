"""The storage limit: the pool's Redis claim script called directly (no HTTP), GET_NUMBER+FINISH cycles.

Uses grizzly_pool.store when it is installed (the pool's own Lua through its typed wrapper); until then a stand-in
script of the same shape (pick a free number, open an activation, atomically) so the section always has a figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from grizzly_common.redis_client import make_redis

from bench import aio
from bench.infra import BenchEnv, module_available
from bench.stats import Row, summarize

SECTION = "storage: Redis claim script"

# Stand-in (used only while grizzly_pool.store is missing). KEYS[1] free set, KEYS[2] id counter; ARGV[1] prefix.
# Touches {prefix}act:{id}. Returns {} or {number, id}.
STANDIN_CLAIM = """
local number = redis.call('SPOP', KEYS[1])
if not number then return {} end
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', ARGV[1] .. 'act:' .. id, 'number', number, 'status', 'open')
return {number, id}
"""
# KEYS[1] free set, KEYS[2] act:{id}; ARGV[1] number
STANDIN_FINISH = """
if redis.call('DEL', KEYS[2]) == 1 then redis.call('SADD', KEYS[1], ARGV[1]) end
return 1
"""


async def _cycles(
    claim: Callable[[], Awaitable[Any]],
    finish: Callable[[Any], Awaitable[None]],
    concurrency: int,
    total: int,
    max_s: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    misses = 0
    issued = 0
    deadline = time.perf_counter() + max_s

    async def worker() -> None:
        nonlocal issued, misses
        while issued < total and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            claimed = await claim()
            latencies.append(time.perf_counter() - t0)
            if claimed is None:
                misses += 1
            else:
                await finish(claimed)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(latencies, time.perf_counter() - start, misses)


async def _measure(
    claim: Callable[[], Awaitable[Any]],
    finish: Callable[[Any], Awaitable[None]],
    concurrencies: tuple[int, ...],
    total: int,
    max_s: float,
) -> list[dict[str, Any]]:
    results = []
    for concurrency in concurrencies:
        await _cycles(claim, finish, concurrency, min(total, 1000), max_s)  # open the connections, load the script
        results.append(await _cycles(claim, finish, concurrency, total, max_s))
    return results


async def _standin(
    redis_url: str, concurrencies: tuple[int, ...], total: int, max_s: float, connections: int
) -> list[dict[str, Any]]:
    redis = make_redis(redis_url, max_connections=connections)
    try:
        await redis.delete("bench:free", "bench:actid")
        numbers = [str(447700000000 + i) for i in range(10000)]
        for i in range(0, len(numbers), 1000):
            await redis.sadd("bench:free", *numbers[i : i + 1000])
        claim_script = redis.register_script(STANDIN_CLAIM)
        finish_script = redis.register_script(STANDIN_FINISH)

        async def claim() -> Any:
            got = await claim_script(keys=["bench:free", "bench:actid"], args=["bench:"])
            return got or None

        async def finish(claimed: Any) -> None:
            number, act_id = claimed
            await finish_script(keys=["bench:free", f"bench:act:{act_id}"], args=[number])

        return await _measure(claim, finish, concurrencies, total, max_s)
    finally:
        await redis.aclose()


async def _pool_store(
    redis_url: str, concurrencies: tuple[int, ...], total: int, max_s: float, connections: int
) -> list[dict[str, Any]]:
    from grizzly_pool.store import NumberRow, PoolStore

    from bench import pool_load

    redis = make_redis(redis_url, max_connections=connections)
    try:
        store = PoolStore(redis, "gp:", cancel_limit=10**9)
        if not await redis.exists("gp:groups"):
            await store.add_numbers(NumberRow.checked(*row) for row in pool_load.rows(20000))
        services = iter(pool_load.SERVICES[:10] * (total * 4))

        async def claim() -> Any:
            return await store.claim(
                upstream="grizzly",
                country=pool_load.COUNTRY,
                operator="any",
                service=next(services),
                sum="0.35",
                currency=None,
                exclude_prefixes=[],
                request_json="{}",
            )

        async def finish(claimed: Any) -> None:
            await store.finish(upstream="grizzly", activation_id=claimed.activation_id, status=4)

        return await _measure(claim, finish, concurrencies, total, max_s)
    finally:
        await redis.aclose()


POOL_CONNECTIONS = 64  # a pool smaller than the clients (POOL_REDIS_MAX_CONNECTIONS defaults to 256), next to 200 below


def run(env: BenchEnv, concurrencies: tuple[int, ...] = (16, 64, 200)) -> list[Row]:
    env.flush_redis()
    total = env.n(2000, 30000)
    max_s = env.s(3.0, 15.0)
    if module_available("grizzly_pool", "store"):
        note, measure = "PoolStore.claim + finish (claim.lua, finish.lua, audit)", _pool_store
    else:
        note, measure = "stand-in Lua (grizzly_pool.store not installed)", _standin
    rows = []
    for connections in sorted({POOL_CONNECTIONS, max(concurrencies)}):
        wanted = concurrencies if connections == POOL_CONNECTIONS else tuple(c for c in concurrencies if c > 64)
        results = aio.run(measure(env.redis(), wanted, total, max_s, connections))
        rows += [
            Row.from_summary(SECTION, f"Redis claim Lua, {connections} conns", r, concurrency=c, note=note)
            for c, r in zip(wanted, results, strict=True)
        ]
    return rows
