"""The Kafka side: read inbound messages, finish with every record of a batch, then commit the batch.

A record is done when it is delivered, durably scheduled in the Redis retry schedule (or found there already,
with an owner: read again after a crash), recorded as unmatched, or parked: a record that cannot be decoded or
pushed because of its content is kept in pusher:parked with the reason, counted, and never tried again, so it
never holds up the records behind it. Only a transient failure (Redis or the pool away) is retried.
Records of one number are handled in order, different numbers concurrently (bounded by the pusher's semaphore).
Offsets are committed only when every record of the batch is done; otherwise they are not committed at all,
and the records come back (the retry schedule's owner and the ledger keep them from being pushed twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from grizzly_common.errors import DecodeError
from grizzly_common.events import InboundMessage, PushTask, decode_inbound
from grizzly_common.logging import log_fields
from grizzly_common.pool_api import LOOKUP_MANY_MAX, LookupResult, SmsSeen, SmsSeenRequest, SmsSeenResult
from grizzly_common.pool_client import PoolUnavailable

from grizzly_pusher import metrics
from grizzly_pusher.delivery import Pusher, is_transient, keep_unmatched, open_when_ingested
from grizzly_pusher.store import now_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    record: ConsumerRecord
    message: InboundMessage | None  # None: undecodable (error says why)
    error: DecodeError | None


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """A rebalance waits for the batch in hand to be done and committed before partitions move."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra=log_fields(partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
        )


class InboundConsumer:
    def __init__(self, consumer: AIOKafkaConsumer, pusher: Pusher, topic: str) -> None:
        self.consumer = consumer
        self.pusher = pusher
        self.topic = topic
        self.lock = asyncio.Lock()
        self.stop_event = asyncio.Event()

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic], listener=_CommitBeforeRevoke(self.lock))

    def stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> None:
        """Until stop(): fetch, process, commit. Returns without committing a batch it could not finish with."""
        while not self.stop_event.is_set():
            try:
                batch = await self.consumer.getmany(timeout_ms=500, max_records=self.pusher.settings.concurrency * 8)
            except KafkaError as exc:
                log.warning("kafka fetch failed, retrying", extra=log_fields(error=repr(exc)))
                await asyncio.sleep(1)
                continue
            if not batch:
                await self._update_lag()
                continue
            async with self.lock:
                done = await self._process_batch(batch)
                if not done:
                    log.warning("batch not done (stopping): offsets left uncommitted, records will come back")
                    return
                await self._commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
            await self._update_lag()

    async def _process_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        by_number: dict[tuple[TopicPartition, bytes | None], list[_Entry]] = defaultdict(list)
        numbers: list[int] = []
        for tp, records in batch.items():
            for record in records:
                try:
                    entry = _Entry(record, decode_inbound(record.value), None)
                    numbers.append(entry.message.number)  # type: ignore[union-attr]
                except DecodeError as exc:
                    entry = _Entry(record, None, exc)
                by_number[(tp, record.key)].append(entry)
        sms = [(e.message.number, e.message.ingested_at_ms) for es in by_number.values() for e in es if e.message]
        found, _ = await asyncio.gather(self._lookup_batch(numbers), self._report_sms(sms))
        results = await asyncio.gather(*(self._process_in_order(entries, found) for entries in by_number.values()))
        return all(results)

    async def _report_sms(self, sms: list[tuple[int, int]]) -> None:
        """SIM health in the pool (each SIM's SMS count and last SMS; the open activation got one), before any of
        these SMS is pushed, so the platform's FINISH cannot overtake it. Best effort: delivery never waits for it
        to succeed. A batch read again after a crash is counted again."""
        size = LOOKUP_MANY_MAX
        for start in range(0, len(sms), size):
            request = SmsSeenRequest([SmsSeen(n, at) for n, at in sms[start : start + size]])
            try:
                await self.pusher.pool.call("/v1/sms", request, SmsSeenResult)
            except PoolUnavailable as exc:
                metrics.SIM_REPORTS_FAILED.inc()
                log.debug("SIM health report failed", extra=log_fields(error=str(exc)))

    async def _lookup_batch(self, numbers: list[int]) -> dict[int, LookupResult] | PoolUnavailable:
        """Every number of the batch in one pool request (a few, for a large batch), before any push starts."""
        if not numbers:
            return {}
        try:
            return await self.pusher.pool.lookup_many(numbers)
        except PoolUnavailable as exc:
            return exc

    async def _process_in_order(self, entries: list[_Entry], found: dict[int, LookupResult] | PoolUnavailable) -> bool:
        for entry in entries:
            if not await self._process_record(entry, found):
                return False
        return True

    async def _process_record(self, entry: _Entry, found: dict[int, LookupResult] | PoolUnavailable) -> bool:
        delay = 0.2
        while True:
            try:
                try:
                    async with self.pusher.semaphore:
                        await self._handle(entry, found)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    log.exception("record cannot be pushed: parked", extra=log_fields(offset=entry.record.offset))
                    await self._park(entry.record, "unpushable", repr(exc))
                return True
            except Exception as exc:  # noqa: BLE001 - transient (or parking failed): tried again
                if self.stop_event.is_set():
                    return False
                log.warning(
                    "record not done yet, retrying",
                    extra=log_fields(offset=entry.record.offset, error=type(exc).__name__),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _park(self, record: ConsumerRecord, reason: str, error: str) -> None:
        await self.pusher.store.park_raw(
            record.value or b"",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key or b"",
            reason=reason,
            error=error[:500],
        )
        metrics.PARKED.labels(reason).inc()
        log.error(
            "record parked",
            extra=log_fields(
                topic=record.topic, partition=record.partition, offset=record.offset, reason=reason, error=error[:200]
            ),
        )

    async def _handle(self, entry: _Entry, found: dict[int, LookupResult] | PoolUnavailable) -> None:
        record, message = entry.record, entry.message
        if message is None:
            await self._park(record, "undecodable", str(entry.error))
            return
        lookup = found.get(message.number) if isinstance(found, dict) else None
        if lookup is None:
            # the pool did not answer: keep Kafka moving; the retrier looks the number up once the pool answers again
            task = PushTask(
                message=message,
                upstream="",
                activation_id=0,
                attempt=0,
                not_before_ms=now_ms() + int(self.pusher.settings.retry_s * 1000),
            )
            await self.pusher.store.offer(task, create=True)
            log.warning(
                "pool lookup failed, lookup scheduled", extra=log_fields(sms_id=message.sms_id, error=str(found))
            )
            return
        if not lookup.found or not open_when_ingested(lookup, message):
            await keep_unmatched(self.pusher.redis, message)
            log.info(
                "no open activation for the number: kept as unmatched",
                extra=log_fields(sms_id=message.sms_id, number=message.number),
            )
            return
        task = PushTask(
            message=message,
            upstream=lookup.upstream,
            activation_id=lookup.activation_id,
            attempt=0,
            not_before_ms=now_ms(),
        )
        await self.pusher.attempt(task)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        while True:
            try:
                if self.stop_event.is_set():
                    await asyncio.wait_for(self.consumer.commit(offsets), timeout=5)
                else:
                    await self.consumer.commit(offsets)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # the partitions moved to another member: it re-reads these records; the ledger dedupes
                log.warning("commit rejected after a rebalance", extra=log_fields(error=repr(exc)))
                return
            except (KafkaError, TimeoutError) as exc:
                if self.stop_event.is_set():
                    log.warning(
                        "commit failed while stopping: records will come back", extra=log_fields(error=repr(exc))
                    )
                    return
                log.warning("commit failed, retrying", extra=log_fields(error=repr(exc)))
                await asyncio.sleep(1)

    async def _update_lag(self) -> None:
        try:
            for tp in self.consumer.assignment():
                highwater = self.consumer.highwater(tp)
                if highwater is None:
                    continue
                position = await asyncio.wait_for(self.consumer.position(tp), timeout=1)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
        except (KafkaError, TimeoutError, IllegalStateError):
            pass
