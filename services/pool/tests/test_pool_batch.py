"""/v1/batch's handler (grizzly_pool.app.run_batch) on a real Redis and on none: each item answered in order, as by
/v1/claim and /v1/finish, whatever happens to the others or to Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from grizzly_common.errors import Unavailable
from grizzly_common.pool_api import BatchRequest, ClaimRequest, FinishRequest
from grizzly_common.redis_client import make_redis
from grizzly_pool import app
from grizzly_pool.settings import Settings
from grizzly_pool.store import NumberRow

ENV = {
    "POOL_API_TOKEN": "batch-test-token-0001",
    "POOL_ADMIN_TOKEN": "batch-test-admin-0001",
    "POOL_SERVICES": "tg,wa",
    "POOL_NUMBER_CHECK": "off",
}


def claim(upstream: str = "grizzly", prefixes: list[str] | None = None) -> ClaimRequest:
    return ClaimRequest(
        upstream=upstream, country="ru", operator="any", service="tg", sum="0.35", currency=None,
        exclude_prefixes=prefixes or [], request_json="{}", claim_id=f"c{time.monotonic_ns()}",
        deadline_ms=int(time.time() * 1000) + 5000,
    )  # fmt: skip


def run_batch(redis_url: str, body: BatchRequest, seed: int = 0) -> Any:
    async def main() -> Any:
        settings = Settings.from_env({**ENV, "REDIS_URL": redis_url})
        redis = make_redis(redis_url, timeout_s=1.0)
        try:
            store = app.make_store(settings, redis)
            if seed:
                await store.add_numbers(
                    NumberRow.checked(79000000000 + i, "ru", "mts", "d1", str(i)) for i in range(seed)
                )
            return await app.run_batch({"redis": redis, "store": store, "settings": settings}, body)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def test_a_batch_answers_each_item_in_order_refused_ones_included(redis_url: str) -> None:
    body = BatchRequest(
        claims=[claim(), claim("nobody"), claim(prefixes=["7x"]), claim(), claim()],
        finishes=[FinishRequest("grizzly", 1, 2), FinishRequest("grizzly", 123, 4), FinishRequest("nobody", 1, 4)],
    )
    result = run_batch(redis_url, body, seed=2)
    assert [c.status for c in result.claims] == ["SUCCESS", "ERROR", "ERROR", "SUCCESS", "NO_NUMBERS"]
    assert result.claims[1].error == "bad request: unknown upstream"
    assert result.claims[2].error == "exceptionPhoneSet entries must be digits"
    assert len({c.number for c in result.claims if c.status == "SUCCESS"}) == 2
    assert [(f.status, f.error) for f in result.finishes] == [
        ("ERROR", "status must be one of 1, 3, 4, 5"),
        ("ERROR", "unknown activationId"),
        ("ERROR", "bad request: unknown upstream"),
    ]


def test_without_redis_every_item_answers_its_own_error() -> None:
    body = BatchRequest(claims=[claim(), claim("nobody")], finishes=[FinishRequest("grizzly", 1, 4)])
    result = run_batch("redis://127.0.0.1:1/0", body)
    assert [(c.status, c.error) for c in result.claims] == [
        ("ERROR", Unavailable.error),
        ("ERROR", "bad request: unknown upstream"),
    ]
    assert [(f.status, f.error) for f in result.finishes] == [("ERROR", Unavailable.error)]


def test_a_batch_of_refused_items_only_needs_no_redis() -> None:
    body = BatchRequest(claims=[claim("nobody")], finishes=[FinishRequest("grizzly", 1, 2)])
    result = run_batch("redis://127.0.0.1:1/0", body)
    assert [c.error for c in result.claims] == ["bad request: unknown upstream"]
    assert [f.error for f in result.finishes] == ["status must be one of 1, 3, 4, 5"]
