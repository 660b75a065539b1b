"""Settling GET_NUMBER claims, so that no number stays held by an activation the platform never heard of.

Every claim carries a fresh claim id and a deadline (when this edge stops waiting for the pool). Afterwards the
edge tells the pool, off the request path, what became of it: confirm (the platform got the activation) or release
(it did not: timeout, error, the request failed). The pool refuses a claim past its deadline or already released,
releases idempotently, and releases by itself claims nobody settled within POOL_CLAIM_HOLD_S (an edge that crashed).
The messages are in grizzly_common.pool_api.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from grizzly_common import pool_api
from grizzly_common.errors import Unavailable
from grizzly_common.logging import log_fields
from grizzly_common.pool_client import PoolClient

from grizzly_edge.metrics import CLAIM_RELEASES, SETTLE_BACKLOG

log = logging.getLogger(__name__)


def deadline_ms(timeout_s: float) -> int:
    """The deadline of a claim sent now and waited for at most timeout_s."""
    return int((time.time() + timeout_s) * 1000)


class ClaimSettler:
    """Collects confirmations and releases and sends them to the pool's /v1/settle in batches from one background
    task (run()), retrying until the pool accepts them: settling is idempotent, so a resend after a lost answer is
    harmless. Releases are sent at once, confirmations every `every_s` (the pool holds a claim far longer)."""

    def __init__(self, pool: PoolClient, *, every_s: float = 0.2, batch: int = 1000, retry_max_s: float = 5.0) -> None:
        self._pool = pool
        self._every_s = every_s
        self._batch = batch
        self._retry_max_s = retry_max_s
        self._confirm: list[int] = []
        self._release: list[str] = []
        self._wake = asyncio.Event()

    @property
    def backlog(self) -> int:
        return len(self._confirm) + len(self._release)

    def confirm(self, activation_id: int) -> None:
        self._confirm.append(activation_id)  # the backlog gauge is set by the sending task (a gauge per request costs)

    def release(self, claim_id: str) -> None:
        self._release.append(claim_id)
        SETTLE_BACKLOG.set(self.backlog)
        self._wake.set()

    async def run(self) -> None:
        """Forever (cancel it): send what is pending, with a growing pause while the pool does not accept it."""
        pause = self._every_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._every_s)
            self._wake.clear()
            SETTLE_BACKLOG.set(self.backlog)
            while self.backlog:
                if await self.send_batch():
                    pause = self._every_s
                else:
                    await asyncio.sleep(pause)
                    pause = min(self._retry_max_s, pause * 2)

    async def send_batch(self) -> bool:
        """One /v1/settle call with the oldest pending ids; True when the pool accepted them."""
        confirm, release = self._confirm[: self._batch], self._release[: self._batch]
        try:
            result = await self._pool.settle(pool_api.SettleRequest(confirm, release))
        except Unavailable:
            return False
        if result.status != "SUCCESS":
            log.warning("pool refused to settle claims", extra=log_fields(error=result.error))
            return False
        # only these are done: ids added while the call was under way sit behind them
        del self._confirm[: len(confirm)]
        del self._release[: len(release)]
        SETTLE_BACKLOG.set(self.backlog)
        CLAIM_RELEASES.inc(len(release))
        return True

    async def drain(self, timeout_s: float) -> None:
        """At shutdown (run() cancelled): send everything still pending, for at most timeout_s."""
        deadline = time.monotonic() + timeout_s
        while self.backlog and time.monotonic() < deadline:
            if not await self.send_batch():
                await asyncio.sleep(min(self._every_s, max(0.0, deadline - time.monotonic())))
        if self.backlog:
            # the pool's sweeper releases the unsent releases (and, after POOL_CLAIM_HOLD_S, unsent confirmations)
            log.error("claims left unsettled at shutdown", extra=log_fields(pending=self.backlog))
