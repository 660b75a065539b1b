"""The hot path, coalesced: concurrent GET_NUMBER claims and FINISH_ACTIVATION finishes go to the pool together in
one /v1/batch call, whose scripts the pool runs in one Redis round trip (ingest and the pusher coalesce the same way,
grizzly_common.coalesce). Under no load a request is sent at once, alone; under load the batch grows with the load,
so the per-request cost of the two hops falls instead of queueing up. Each request keeps its own answer, and each
claim and finish is still its own atomic script at the pool.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from grizzly_common import pool_api
from grizzly_common.coalesce import Coalescer
from grizzly_common.pool_client import PoolClient, PoolUnavailable

Item = pool_api.ClaimRequest | pool_api.FinishRequest
Result = pool_api.ClaimResult | pool_api.FinishResult


class PoolBatcher:
    def __init__(self, pool: PoolClient, *, max_batch: int = 256, parallel: int = 2) -> None:
        """parallel: batches in flight at once (while they are, the next batch fills up)."""
        self._pool = pool
        self._coalescer: Coalescer[Item, Result] = Coalescer(self._flush, max_batch=max_batch, parallel=parallel)

    async def claim(self, request: pool_api.ClaimRequest) -> pool_api.ClaimResult:
        return cast(pool_api.ClaimResult, await self._call(request))

    async def finish(self, request: pool_api.FinishRequest) -> pool_api.FinishResult:
        return cast(pool_api.FinishResult, await self._call(request))

    async def _call(self, item: Item) -> Result:
        # the claim's deadline counts from now: the wait for a batch is part of the time the request may take
        try:
            async with asyncio.timeout(self._pool.timeout_s):
                return await self._coalescer(item)
        except TimeoutError:
            raise PoolUnavailable() from None

    async def _flush(self, items: list[Item]) -> list[Any]:
        claims = [item for item in items if isinstance(item, pool_api.ClaimRequest)]
        finishes = [item for item in items if isinstance(item, pool_api.FinishRequest)]
        result = await self._pool.batch(pool_api.BatchRequest(claims=claims, finishes=finishes))
        claimed, finished = iter(result.claims), iter(result.finishes)
        return [next(claimed) if isinstance(item, pool_api.ClaimRequest) else next(finished) for item in items]

    async def aclose(self) -> None:
        """Wait for the batches in flight (at shutdown: their answers settle claims)."""
        await self._coalescer.aclose()
