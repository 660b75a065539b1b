"""Later attempts: claim due tasks from the Redis retry schedule (shared by every pusher) and push them.

A claim makes this pusher the push's owner and moves its due time to the end of the hold, so the tasks of a pusher
that dies come back on their own. A task that fails because of its content is parked, never tried again.
"""

from __future__ import annotations

import asyncio
import logging

from grizzly_common.logging import log_fields
from grizzly_common.pool_client import PoolUnavailable
from msgspec.structs import replace

from grizzly_pusher import metrics
from grizzly_pusher.delivery import Pusher, is_transient, keep_unmatched, open_when_ingested
from grizzly_pusher.store import ClaimedRetry, now_ms

log = logging.getLogger(__name__)


class Retrier:
    def __init__(self, pusher: Pusher) -> None:
        self.pusher = pusher
        self.stop_event = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> None:
        settings = self.pusher.settings
        last_depth = 0.0
        while not self.stop_event.is_set():
            free = settings.concurrency - len(self.in_flight)
            claimed: list[ClaimedRetry] = []
            try:
                if free > 0:
                    claimed = await self.pusher.store.claim(free)
                loop_time = asyncio.get_running_loop().time()
                if loop_time - last_depth > 1:
                    metrics.RETRY_QUEUE_DEPTH.set(await self.pusher.store.depth())
                    last_depth = loop_time
            except Exception as exc:  # noqa: BLE001 - Redis down: keep polling
                log.warning("retry schedule not reachable", extra=log_fields(error=type(exc).__name__))
            for item in claimed:
                job = asyncio.create_task(self._run_one(item))
                self.in_flight.add(job)
                job.add_done_callback(self.in_flight.discard)
            if free <= 0:
                # every slot is taken: wait for one to finish (never spin without yielding)
                await asyncio.wait(
                    set(self.in_flight), timeout=settings.retry_poll_s, return_when=asyncio.FIRST_COMPLETED
                )
            elif len(claimed) < free:
                try:
                    await asyncio.wait_for(self.stop_event.wait(), settings.retry_poll_s)
                except TimeoutError:
                    pass
        await self.drain()

    async def drain(self) -> None:
        """Let claimed tasks finish (while stopping they hand back instead of pushing)."""
        if self.in_flight:
            await asyncio.gather(*self.in_flight, return_exceptions=True)

    async def _run_one(self, item: ClaimedRetry) -> None:
        try:
            async with self.pusher.semaphore:
                await self._handle(item)
        except Exception as exc:  # transient: the task comes back after the hold; else parked
            if is_transient(exc):
                log.warning(
                    "retry attempt failed; the task comes back after its hold",
                    extra=log_fields(task=item.task_id, error=type(exc).__name__),
                )
                return
            log.exception("retry task cannot be pushed: parked", extra=log_fields(task=item.task_id))
            try:
                await self._park(item, "unpushable", repr(exc))
            except Exception:  # not parked: the task comes back after its hold
                log.exception("parking failed; the task comes back after its hold", extra=log_fields(task=item.task_id))

    async def _park(self, item: ClaimedRetry, reason: str, error: str) -> None:
        await self.pusher.store.park_raw(item.raw, task_id=item.task_id, reason=reason, error=error[:500])
        await self.pusher.store.forget(item.task_id, item.token)
        metrics.PARKED.labels(reason).inc()

    async def _handle(self, item: ClaimedRetry) -> None:
        task, store = item.task, self.pusher.store
        if task is None:
            await self._park(item, "undecodable", "undecodable retry task")
            return
        if not task.upstream:  # the pool was unreachable when the record was read: look it up now
            message = task.message
            try:
                found = await self.pusher.pool.lookup(message.number)
            except PoolUnavailable:
                if (now_ms() - message.ingested_at_ms) / 1000 > self.pusher.settings.max_retry_age_s:
                    # as for a push that keeps failing: past the retry age it is parked, never looked up for ever
                    await self._park(item, "max_retry_age", "the pool never answered the lookup")
                    return
                later = replace(task, not_before_ms=now_ms() + int(self.pusher.settings.retry_s * 1000))
                await store.reschedule(later, item.token)
                return
            if not found.found or not open_when_ingested(found, message):
                await keep_unmatched(self.pusher.redis, message)
                await store.done(task, item.token)
                return
            resolved = replace(task, upstream=found.upstream, activation_id=found.activation_id, not_before_ms=now_ms())
            await store.offer(resolved, create=True)  # durable (and due now) before the unresolved entry goes
            await store.done(task, item.token)
            return
        await self.pusher.attempt(task, item.token)
