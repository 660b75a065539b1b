"""AUDIT_RETENTION_DAYS on the pool as a process and a real Redis: what a finished activation leaves behind expires,
an open activation stays."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis
from grizzly_common.redis_client import make_redis
from grizzly_pool.store import NumberRow, PoolStore
from grizzly_testkit.infra import ServiceProcess

log = logging.getLogger(__name__)
RETENTION_S = 3
NUMBERS = [79002000000 + i for i in range(20)]


async def _seed(redis_url: str) -> None:
    client = make_redis(redis_url, max_connections=2)
    try:
        rows = [NumberRow.checked(n, "ru", "mts", f"bank{i % 2}", f"s{i}") for i, n in enumerate(NUMBERS)]
        assert (await PoolStore(client).add_numbers(rows)).added == len(NUMBERS)
    finally:
        await client.aclose()


def _claim(http: httpx.Client) -> dict[str, Any]:
    body = {"upstream": "grizzly", "country": "ru", "operator": "any", "service": "tg", "sum": "0.35",
            "currency": 643, "exclude_prefixes": [], "request_json": '{"action":"GET_NUMBER"}'}  # fmt: skip
    got: dict[str, Any] = http.post("/v1/claim", json=body).json()
    assert got["status"] == "SUCCESS", got
    return got


def _finish(http: httpx.Client, activation_id: int, status: int) -> None:
    body = {"upstream": "grizzly", "activation_id": activation_id, "status": status}
    assert http.post("/v1/finish", json=body).json()["status"] == "SUCCESS"


def _keys(client: redis.Redis) -> set[str]:
    """Every key except per-number state kept on purpose (hist:{number} history, sh:{number} SIM health: at most one
    each per number) and the day's earnings (earn:{day}, kept POOL_EARNINGS_DAYS)."""
    farm = (b":hist:", b":sh:", b":earn:", b":suspects")
    return {k.decode() for k in client.scan_iter(count=1000) if not any(part in k for part in farm)}


def _settled(client: redis.Redis, expected: set[str], timeout_s: float) -> set[str]:
    """The key set once Redis has evicted what expired (its expiry cycle samples keys, so give it a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        keys = _keys(client)
        if keys == expected or time.monotonic() > deadline:
            return keys
        time.sleep(0.2)


def test_pool_finished_activations_expire_after_the_retention_open_ones_stay(
    start_service: Callable[..., ServiceProcess], stack_env: dict[str, str]
) -> None:
    asyncio.run(_seed(stack_env["REDIS_URL"]))
    start_service("pool", AUDIT_RETENTION_DAYS=str(RETENTION_S / 86400), POOL_CANCEL_LIMIT="100000")
    client = redis.Redis.from_url(stack_env["REDIS_URL"])
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{stack_env['POOL_PORT']}",
        headers={"X-Internal-Token": stack_env["POOL_API_TOKEN"]},
        timeout=10,
    )
    try:
        _finish(http, _claim(http)["activation_id"], 4)  # creates the id counter and index marker once
        baseline = _settled(client, set(), RETENTION_S + 5)
        memory_before = client.info("memory")["used_memory"]

        cycles = 600
        for i in range(cycles):
            _finish(http, _claim(http)["activation_id"], (4, 5)[i % 2])  # 1 and 3 would block tg
        opened = [_claim(http) for _ in range(3)]
        still_open = [got["activation_id"] for got in opened]
        grown = _keys(client)
        # a number's history (GET /admin/numbers/{n}) follows act:{id}.prev: no key of its own to expire
        admin = httpx.Client(
            base_url=f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}",
            headers={"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"},
            timeout=10,
        )
        history = admin.get(f"/admin/numbers/{opened[0]['number']}").json()["history"]
        assert history[0]["activation_id"] == still_open[0] and len(history) > 1
        memory_peak = client.info("memory")["used_memory"]
        # act:{id} + audit:act:{id} per activation (on a slow machine the first ones may have expired already)
        assert len(grown) > len(baseline) + cycles

        time.sleep(RETENTION_S)
        kept = {f"gp:act:{a}" for a in still_open} | {f"audit:act:{a}" for a in still_open}
        assert _settled(client, baseline | kept, 30) == baseline | kept
        assert sum(1 for _ in client.scan_iter(match="gp:hist:*")) <= len(NUMBERS)
        assert sum(1 for _ in client.scan_iter(match="gp:sh:*")) <= len(NUMBERS)
        memory_after = client.info("memory")["used_memory"]
        log.info("%d activations: keys %d -> %d -> %d, used_memory %d -> %d -> %d", cycles, len(baseline),
                 len(grown), len(baseline | kept), memory_before, memory_peak, memory_after)  # fmt: skip
        assert memory_after - memory_before < (memory_peak - memory_before) / 4
        history = admin.get(f"/admin/numbers/{opened[0]['number']}").json()["history"]
        assert [h["activation_id"] for h in history] == [still_open[0]]  # the chain ends where they expired
        admin.close()
        for activation_id in still_open:  # the open ones still work end to end
            _finish(http, activation_id, 3)
    finally:
        http.close()
        client.close()
