"""From an accepted source message to one Kafka record, exactly once as far as the source can tell.

Every message gets a stable numeric smsId in Redis before it is published. Its fingerprint (receiving number,
sender, text, source timestamp or id) maps to that smsId for INGEST_DEDUPE_TTL_S and is marked "published"
once Kafka acknowledged the record: a retried source gets the same smsId back and nothing is published twice.
A send whose request gave up (the deadline passed) is kept until it lands or fails, and the retry waits for it;
another instance refuses the retry while the send's lease lives. Only a send that failed is sent again, with the
same smsId (downstream dedupes by smsId, should a second record ever land).

Parts of a multipart SMS are stored in a Redis hash before the source is answered; the part that completes the
message publishes it. A sweeper publishes whatever arrived once INGEST_MULTIPART_TIMEOUT_S has passed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from grizzly_common.coalesce import Coalescer
from grizzly_common.errors import DecodeError
from grizzly_common.events import InboundMessage, Topics, check_inbound, encode, number_key
from grizzly_common.logging import log_fields
from grizzly_common.redis_client import NEXT_ID_FUNCTION, load_lua
from redis.exceptions import RedisError

from grizzly_ingest import lua, metrics
from grizzly_ingest.errors import BadInput, InFlightElsewhere, NoLeader, Unavailable
from grizzly_ingest.model import Accepted, Incoming
from grizzly_ingest.text import now_ms

log = logging.getLogger(__name__)

_FIELD = re.compile(r"at `\$\.(\w+)`")

SWEEP_BATCH = 100
SWEEP_LEASE_MS = 30_000
METADATA_REFRESH_S = 0.5  # while a partition has no leader, ask for fresh metadata at most this often
RENEW_TIMEOUT_S = 30.0
# the producer's sender stops on these: it sends nothing again, and must be replaced
FATAL_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, ProducerFenced)
LEASE_MS = 30_000  # another instance refuses a retry this long after the last sign of life of our send
SETTLE_TRIES = 30  # a record on Kafka gets its "published" mark for up to ~30 s of Redis trouble


class PartMeta(msgspec.Struct, frozen=True):
    """What a multipart message keeps from its first part (the text is stored per part)."""

    number: int
    phone_from: str
    source: str
    device: str = ""
    slot: str = ""
    received_at_ms: int | None = None


_meta_encoder = msgspec.json.Encoder()
_meta_decoder = msgspec.json.Decoder(PartMeta)


def _digest(*fields: str) -> str:
    return hashlib.sha256("\x1f".join(fields).encode("utf-8", errors="surrogatepass")).hexdigest()


def fingerprint(message: Incoming, number: int) -> str:
    """Same SIM/number, sender, text, timestamp (and source id): the same message."""
    recording = hashlib.sha256(message.recording_b64.encode()).hexdigest() if message.recording_b64 else ""
    return _digest(
        message.kind,
        str(number),
        message.phone_from,
        message.text,
        "" if message.received_at_ms is None else str(message.received_at_ms),
        message.source_id,
        recording,
    )


def join_parts(total: int, texts: dict[int, str]) -> str:
    """Parts in seq order; a gap becomes "[part n missing]" so a partial message still says what it lacks."""
    return "".join(texts[seq] if seq in texts else f"[part {seq} missing]" for seq in range(1, total + 1))


class Publisher:
    def __init__(
        self,
        redis: aioredis.Redis,
        producer: AIOKafkaProducer,
        topics: Topics,
        *,
        prefix: str = "",
        dedupe_ttl_s: int,
        dedupe_no_ts_ttl_s: int,
        multipart_timeout_s: int,
        publish_timeout_s: float,
        new_producer: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self.redis = redis
        self.producer = producer
        self.topic = topics.inbound
        self.prefix = prefix
        self.dedupe_ttl_s = dedupe_ttl_s
        self.dedupe_no_ts_ttl_s = dedupe_no_ts_ttl_s
        self.multipart_timeout_s = multipart_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self._fingerprints = redis.register_script(load_lua(lua, "fingerprints.lua", NEXT_ID_FUNCTION))
        # concurrent requests share one Lua call for their fingerprint lookups and "published" marks
        self._fp_ops: Coalescer[tuple[str, str, int], tuple[int, str]] = Coalescer(self._fp_batch, max_batch=256)
        self._add_part = redis.register_script(load_lua(lua, "add_part.lua", NEXT_ID_FUNCTION))
        self._claim_due = redis.register_script(load_lua(lua, "claim_due.lua"))
        self._partitioner = DefaultPartitioner()
        self._metadata_asked = 0.0  # monotonic time of the last metadata refresh asked for
        self._new_producer = new_producer
        self._renewal: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self.owner = uuid.uuid4().hex  # this instance, as the holder of publish leases
        # sends not yet acknowledged and marked, by fingerprint or multipart group key
        self._inflight: dict[str, asyncio.Task[None]] = {}

    # keys -------------------------------------------------------------------------------------------------
    @property
    def id_key(self) -> str:
        return f"{self.prefix}ingest:next-id"

    @property
    def pending_key(self) -> str:
        return f"{self.prefix}ingest:mp-pending"

    def fp_key(self, digest: str) -> str:
        return f"{self.prefix}ingest:fp:{digest}"

    def group_key(self, message: Incoming, number: int) -> str:
        assert message.part is not None
        part = message.part
        digest = _digest(message.kind, str(number), message.phone_from, part.ref, str(part.total))
        return f"{self.prefix}ingest:mp:{digest}"

    # accepting --------------------------------------------------------------------------------------------
    async def accept(self, message: Incoming, number: int) -> Accepted:
        """Publish (or store the part of) one message; returns once Kafka acknowledged it. Raises Unavailable."""
        try:
            if message.part is not None and message.part.total > 1:
                return await self._accept_part(message, number)
            return await self._accept_single(message, number)
        except RedisError as exc:
            log.warning("redis unavailable", extra=log_fields(error=repr(exc)))
            raise Unavailable("storage unavailable, retry") from None

    async def _accept_single(self, message: Incoming, number: int) -> Accepted:
        # checked before anything is stored: a refused message leaves nothing behind
        record = checked(self._record(message, number))
        key = self.fp_key(fingerprint(message, number))
        has_identity = message.received_at_ms is not None or bool(message.source_id)
        ttl = self.dedupe_ttl_s if has_identity else self.dedupe_no_ts_ttl_s
        sms_id, state = await self._fp_ops(("d", key, ttl))
        if state == "published":
            metrics.DUPLICATES.labels(message.source).inc()
            return Accepted(sms_id, duplicate=True)
        if state == "sending":
            raise InFlightElsewhere()
        record = msgspec.structs.replace(record, sms_id=sms_id, ingested_at_ms=now_ms())

        async def fp_op(op: str) -> None:
            await self._fp_ops((op, key, ttl))

        marks = Marks(published=lambda: fp_op("m"), renew=lambda: fp_op("l"), release=lambda: fp_op("r"))
        await self._publish_once(key, record, marks)
        metrics.ACCEPTED.labels(message.source, message.kind).inc()
        return Accepted(sms_id)

    @staticmethod
    def _record(message: Incoming, number: int) -> InboundMessage:
        """The record a message becomes; its smsId is a placeholder until Redis assigns the real one."""
        ingested = now_ms()
        return InboundMessage(
            kind=message.kind,
            sms_id=1,
            number=number,
            phone_from=message.phone_from,
            text=message.text,
            received_at_ms=message.received_at_ms if message.received_at_ms is not None else ingested,
            ingested_at_ms=ingested,
            source=message.source,
            device=message.device,
            slot=message.slot,
            recording_b64=message.recording_b64,
            recording_type=message.recording_type,
        )

    async def _fp_batch(self, items: list[tuple[str, str, int]]) -> list[tuple[int, str]]:
        keys = [self.id_key]
        args: list[str | int] = [LEASE_MS, self.owner]
        for op, key, ttl in items:
            keys.append(key)
            args += [op, ttl]
        flat = await self._fingerprints(keys=keys, args=args)
        return [(int(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def aclose(self) -> None:
        """Let sends in flight settle (for at most the publish timeout), then stop."""
        pending = set(self._inflight.values())
        if pending:
            _done, late = await asyncio.wait(pending, timeout=self.publish_timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._fp_ops.aclose()

    async def _accept_part(self, message: Incoming, number: int) -> Accepted:
        part = message.part
        assert part is not None
        checked(self._record(message, number))
        key = self.group_key(message, number)
        meta = PartMeta(
            number=number,
            phone_from=message.phone_from,
            source=message.source,
            device=message.device,
            slot=message.slot,
            received_at_ms=message.received_at_ms,
        )
        stamp = "" if message.received_at_ms is None else str(message.received_at_ms)
        deadline = now_ms() + self.multipart_timeout_s * 1000
        sms_id, state, _count = await self._add_part(
            keys=[key, self.pending_key, self.id_key],
            args=[
                part.seq,
                message.text,
                _digest(message.text, stamp, message.source_id),
                _meta_encoder.encode(meta),
                part.total,
                deadline,
                max(self.dedupe_ttl_s, self.multipart_timeout_s * 4),
            ],
        )
        sms_id = int(sms_id)
        status = _text(state)
        if status == "duplicate":
            metrics.DUPLICATES.labels(message.source).inc()
            return Accepted(sms_id, duplicate=True)
        if status == "pending":
            metrics.ACCEPTED.labels(message.source, message.kind).inc()
            return Accepted(sms_id, pending=True)
        await self._publish_group(key, partial=False)
        metrics.ACCEPTED.labels(message.source, message.kind).inc()
        return Accepted(sms_id)

    async def _publish_group(self, key: str, *, partial: bool) -> bool:
        """Publish a stored multipart message (complete, or what arrived when partial). False if already gone."""
        fields: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[assignment] # bytes: no decoding
        if not fields or fields.get(b"state") == b"published":
            await self.redis.zrem(self.pending_key, key)
            return False
        total = int(fields[b"total"])
        meta = _meta_decoder.decode(fields[b"meta"])
        texts = {
            int(name[2:]): value.decode("utf-8", errors="replace")
            for name, value in fields.items()
            if name.startswith(b"t:")
        }
        ingested = now_ms()
        record = InboundMessage(
            kind="sms",
            sms_id=int(fields[b"id"]),
            number=meta.number,
            phone_from=meta.phone_from,
            text=join_parts(total, texts),
            received_at_ms=meta.received_at_ms if meta.received_at_ms is not None else ingested,
            ingested_at_ms=ingested,
            source=meta.source,
            device=meta.device,
            slot=meta.slot,
            parts=len(texts),
        )

        async def mark_published() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "state", "published")
                pipe.zrem(self.pending_key, key)
                await pipe.execute()

        await self._publish_once(key, checked(record), Marks(published=mark_published))
        if partial and len(texts) < total:
            metrics.MULTIPART_TIMEOUTS.inc()
            log.info(
                "multipart published incomplete",
                extra=log_fields(sms_id=record.sms_id, parts=len(texts), total=total),
            )
        return True

    async def _publish_once(self, key: str, record: InboundMessage, marks: Marks) -> None:
        """Publish `record`, known by `key`, unless a send of it is still in flight; return once Kafka acknowledged
        it and its "published" mark is written. Raises Unavailable.

        The idempotent producer never drops a send it has started: one whose caller gave up (the request deadline
        passed while the broker was down) still lands once the broker is back. So a send is not abandoned with its
        request. It stays here, by key, until it is acknowledged and marked (or definitely failed), and a retry of
        the same message waits for it instead of sending a second record. Meanwhile its lease in Redis (renewed)
        tells the other ingest instances to refuse a retry that reaches them.
        """
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._send_and_settle(key, record, marks), name=f"publish {key}")
            task.add_done_callback(_retrieve)
            self._inflight[key] = task  # before the first await: a concurrent retry finds it
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await asyncio.shield(task)  # the request may give up (its deadline); the send and its mark go on
        except TimeoutError:
            raise Unavailable("message queue did not acknowledge in time, retry") from None

    async def _send(self, record: InboundMessage) -> asyncio.Future[Any]:
        """Hand the record to the producer: a future of its acknowledgement, or Unavailable at once when the
        partition it belongs to has no leader (the broker is restarting or electing one)."""
        key = number_key(record.number)
        cluster = self.producer.client.cluster
        partitions = cluster.partitions_for_topic(self.topic)
        partition = None
        if partitions:  # else the producer first fetches the topic's metadata (bounded by the request deadline)
            ordered = sorted(partitions)
            available = sorted(cluster.available_partitions_for_topic(self.topic) or ())
            partition = self._partitioner(key, ordered, available)  # the producer's own choice, made here
            leader = cluster.leader_for_partition(TopicPartition(self.topic, partition))
            if leader is None or leader == -1:
                # with nothing queued, nothing else makes the producer look for the new leader
                if time.monotonic() - self._metadata_asked > METADATA_REFRESH_S:
                    self._metadata_asked = time.monotonic()
                    self.producer.client.force_metadata_update()
                raise NoLeader()
        producer = self.producer
        try:
            queued: asyncio.Future[Any] = await producer.send(self.topic, encode(record), key=key, partition=partition)
            return queued
        except KafkaError as exc:  # not queued (buffer full, closing, a dead producer): nothing will land
            log.warning("kafka send refused", extra=log_fields(sms_id=record.sms_id, error=repr(exc)))
            if isinstance(exc, FATAL_PRODUCER_ERRORS):
                self._renew(producer)
            raise Unavailable("message queue unavailable, retry") from None

    def _renew(self, failed: AIOKafkaProducer) -> None:
        """Replace a producer that can no longer send (in the background, once, whoever noticed it first).

        aiokafka expires a batch that waited longer than request_timeout_ms for a partition leader, even when the
        idempotent producer had already given it a sequence number. The next batch to that partition is then
        refused (OutOfOrderSequenceNumber), its sender stops, and every later send fails: the ingest would answer
        503 until restarted. A new producer gets a new producer id, and with it a fresh sequence.
        """
        if self._new_producer is None or failed is not self.producer:
            return
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.create_task(self._replace(failed), name="renew kafka producer")

    async def _replace(self, failed: AIOKafkaProducer) -> None:
        assert self._new_producer is not None
        fresh = self._new_producer()
        try:
            async with asyncio.timeout(RENEW_TIMEOUT_S):
                await fresh.start()
        except Exception as exc:  # noqa: BLE001 - the next failed send tries again
            log.warning("kafka producer not renewed", extra=log_fields(error=repr(exc)))
            await fresh.stop()
            return
        self.producer = fresh
        metrics.PRODUCER_RENEWALS.inc()
        log.warning("kafka producer renewed after a fatal error")
        retire = asyncio.create_task(failed.stop(), name="stop failed kafka producer")
        self._retired.add(retire)
        retire.add_done_callback(self._retired.discard)

    async def stop_producer(self) -> None:
        """Stop the current producer (the one started by the app, or its replacement)."""
        if self._renewal is not None:
            await asyncio.gather(self._renewal, return_exceptions=True)
        await asyncio.gather(*self._retired, return_exceptions=True)
        await self.producer.stop()

    async def _send_and_settle(self, key: str, record: InboundMessage, marks: Marks) -> None:
        started = time.perf_counter()
        sms_id = record.sms_id
        try:
            producer = self.producer
            try:
                delivery = await self._send(record)
            except Unavailable:
                await _best_effort(marks.release)  # nothing was queued
                raise
            while not delivery.done():  # the broker may be down for long: keep the lease while the send waits
                await asyncio.wait({delivery}, timeout=LEASE_MS / 3000)
                if not delivery.done():
                    await _best_effort(marks.renew)
            try:
                delivery.result()
            except Exception as exc:  # noqa: BLE001 - a failed delivery did not land: the retry sends again
                log.warning("kafka publish failed", extra=log_fields(sms_id=sms_id, error=repr(exc)))
                if isinstance(exc, FATAL_PRODUCER_ERRORS):
                    self._renew(producer)
                await _best_effort(marks.release)
                raise Unavailable("message queue unavailable, retry") from None
            metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
            # the record is on Kafka: until it is marked, a retry must find this task, not send again
            for attempt in range(SETTLE_TRIES):
                try:
                    await marks.published()
                    return
                except RedisError as exc:
                    if attempt == SETTLE_TRIES - 1:
                        log.warning("published mark not written", extra=log_fields(sms_id=sms_id, error=repr(exc)))
                        raise Unavailable("storage unavailable, retry") from None
                    await asyncio.sleep(1.0)
        finally:
            self._inflight.pop(key, None)

    # sweeping ---------------------------------------------------------------------------------------------
    async def sweep_once(self) -> int:
        """Publish every multipart message whose timeout passed; returns how many were published."""
        published = 0
        due = await self._claim_due(keys=[self.pending_key], args=[now_ms(), SWEEP_LEASE_MS, SWEEP_BATCH])
        for raw_key in due:
            key = _text(raw_key)
            try:
                if await self._publish_group(key, partial=True):
                    published += 1
            except Unavailable:
                break  # Kafka is down: the lease expires and the next sweep retries
            except BadInput as exc:  # its parts were each checked, so this is a bug: drop it, never loop on it
                log.error("multipart message dropped", extra=log_fields(key=key, error=exc.error))
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hset(key, "state", "published")
                    pipe.zrem(self.pending_key, key)
                    await pipe.execute()
        metrics.MULTIPART_PENDING.set(await self.redis.zcard(self.pending_key))
        return published

    async def sweep_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.sweep_once()
            except (RedisError, OSError) as exc:
                log.warning("multipart sweep failed", extra=log_fields(error=repr(exc)))
            except Exception:  # a bug must not stop the sweeper; the next round retries
                log.exception("multipart sweep failed")
            await asyncio.sleep(interval_s)


def checked(record: InboundMessage) -> InboundMessage:
    """The record, if it keeps every bound the pusher decodes with; else BadInput naming the field."""
    try:
        check_inbound(record)
    except DecodeError as exc:
        where = _FIELD.search(str(exc))
        raise BadInput(f"invalid field: {where.group(1) if where else 'record'}: {exc}") from None
    except UnicodeEncodeError:
        raise BadInput("invalid field: text is not valid Unicode") from None
    return record


@dataclass(frozen=True)
class Marks:
    """What a publish writes to Redis as it goes: the "published" mark once Kafka acknowledged the record; for a
    single message also its lease, renewed while the send is in flight and released when the send failed."""

    published: Callable[[], Awaitable[None]]
    renew: Callable[[], Awaitable[None]] | None = None
    release: Callable[[], Awaitable[None]] | None = None


async def _best_effort(write: Callable[[], Awaitable[None]] | None) -> None:
    """A lease write that may fail: the lease then simply runs out."""
    if write is not None:
        try:
            await write()
        except RedisError as exc:
            log.warning("publish lease not updated", extra=log_fields(error=repr(exc)))


def _retrieve(task: asyncio.Task[None]) -> None:
    """A publish whose requests all gave up: its failure was logged (or answered), nobody else needs it."""
    if not task.cancelled():
        task.exception()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
