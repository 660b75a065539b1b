"""The hot path, coalesced: concurrent GET_NUMBER claims and FINISH_ACTIVATION finishes go to the pool together in
one /v1/batch call, whose scripts the pool runs in one Redis round trip (ingest and the pusher coalesce the same way,
grizzly_common.coalesce). Under no load a request is sent at once, alone; under load the batch grows with the load,
so the per-request cost of the two hops falls instead of queueing up. Each request keeps its own answer, and each
claim and finish is still its own atomic script at the pool.
"""

from __future__ import annotations

import time
from typing import cast

from grizzly_common import pool_api
from grizzly_common.coalesce import Coalescer
from grizzly_common.pool_client import PoolClient, PoolUnavailable

from grizzly_edge.metrics import POOL_BATCH_SIZE

Item = pool_api.ClaimRequest | pool_api.FinishRequest
Result = pool_api.ClaimResult | pool_api.FinishResult


class PoolBatcher:
    def __init__(self, pool: PoolClient, *, max_batch: int = 32, parallel: int = 8) -> None:
        """parallel: batches in flight at once (while they are, the next batch fills up)."""
        self._pool = pool
        self._coalescer: Coalescer[tuple[Item, float], Result | Exception] = Coalescer(
            self._flush, max_batch=max_batch, parallel=parallel
        )

    async def claim(self, request: pool_api.ClaimRequest) -> pool_api.ClaimResult:
        return cast(pool_api.ClaimResult, await self._call(request))

    async def finish(self, request: pool_api.FinishRequest) -> pool_api.FinishResult:
        return cast(pool_api.FinishResult, await self._call(request))

    async def _call(self, item: Item) -> Result:
        result = await self._coalescer((item, time.monotonic()))
        if isinstance(result, Exception):
            raise result
        return result

    async def _flush(self, queued: list[tuple[Item, float]]) -> list[Result | Exception]:
        """One /v1/batch call. Each request waits at most the pool timeout in all, its wait for the batch included
        (a claim's deadline counts from when it was made): one timer per batch, not one per request."""
        POOL_BATCH_SIZE.observe(len(queued))
        now = time.monotonic()
        timeout_s = self._pool.timeout_s
        late = [now - since >= timeout_s for _, since in queued]
        items = [item for (item, _), too_late in zip(queued, late, strict=True) if not too_late]
        results: list[Result | Exception] = []
        if items:
            oldest = min(since for (_, since), too_late in zip(queued, late, strict=True) if not too_late)
            claims = [item for item in items if isinstance(item, pool_api.ClaimRequest)]
            finishes = [item for item in items if isinstance(item, pool_api.FinishRequest)]
            answer = await self._pool.batch(
                pool_api.BatchRequest(claims=claims, finishes=finishes), timeout_s=timeout_s - (now - oldest)
            )
            claimed, finished = iter(answer.claims), iter(answer.finishes)
            results = [next(claimed) if isinstance(item, pool_api.ClaimRequest) else next(finished) for item in items]
        sent = iter(results)
        return [PoolUnavailable() if too_late else next(sent) for too_late in late]

    async def aclose(self) -> None:
        """Wait for the batches in flight (at shutdown: their answers settle claims)."""
        await self._coalescer.aclose()
