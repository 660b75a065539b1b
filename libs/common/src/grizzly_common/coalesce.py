"""Coalescing: many concurrent single calls answered by one batched call (one Redis round trip for many SMS).

A caller awaits `coalescer(item)`; items that arrive while a batch is in flight wait for the next batch, which
takes everything queued (up to max_batch). Under no load a call is flushed at once (batch of one, no added delay);
under load the batch grows with the load, so round trips per item fall instead of queueing up. Each item keeps
its own result or exception, and a caller's semantics do not change: its call returns once the batch holding it
is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - item
R = TypeVar("R")  # result


class Coalescer(Generic[I, R]):
    def __init__(
        self, flush: Callable[[list[I]], Awaitable[Sequence[R]]], *, max_batch: int = 256, parallel: int = 1
    ) -> None:
        """flush(items) must return one result per item, in order (or raise: every item of the batch gets it)."""
        self._flush = flush
        self.max_batch = max_batch
        self.parallel = parallel
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        if self._queue and len(self._running) < self.parallel:
            task = asyncio.create_task(self._run())
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self) -> None:
        # the batch is taken when the task first runs: everything queued in the meantime goes with it
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        try:
            if batch:
                await self._flush_batch(batch)
        finally:
            self._running.discard(asyncio.current_task())
            self._kick()

    async def _flush_batch(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batched call returned {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def aclose(self) -> None:
        """Wait for the batches in flight (their callers may have been cancelled)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
