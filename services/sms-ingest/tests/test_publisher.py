"""The publisher against a real Redis, with a stand-in producer so a Kafka failure can be injected exactly."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber
from grizzly_common.events import InboundMessage, Topics, decode_inbound
from grizzly_common.redis_client import make_redis
from grizzly_ingest.errors import InFlightElsewhere, NoLeader, Unavailable
from grizzly_ingest.model import Incoming, Part
from grizzly_ingest.publisher import Publisher, join_parts

NUMBER = 447700900123


class StubCluster:
    def __init__(self) -> None:
        self.leader: int | None = 0  # None: unknown, -1: none elected

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2} if self.leader not in (None, -1) else set()

    def leader_for_partition(self, tp: TopicPartition) -> int | None:
        return self.leader


class StubProducer:
    """Acknowledges at once; or fails; or (hold) keeps each send in flight until the test lands or fails it."""

    def __init__(self) -> None:
        self.sent: list[InboundMessage] = []
        self.fail = False
        self.fatal = False  # its sender died: every send is refused at once
        self.stopped = False
        self.hold = False
        self.held: list[tuple[asyncio.Future[None], InboundMessage]] = []
        self.client = SimpleNamespace(cluster=StubCluster(), force_metadata_update=self._metadata_asked)
        self.metadata_asked = 0

    def _metadata_asked(self) -> None:
        self.metadata_asked += 1

    async def send(self, topic: str, value: bytes, key: bytes, partition: int | None = None) -> asyncio.Future[None]:
        assert key == str(decode_inbound(value).number).encode() and partition in (0, 1, 2)
        if self.fatal:
            raise OutOfOrderSequenceNumber()
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            delivery.set_exception(ConnectionError("broker down"))
        elif self.hold:
            self.held.append((delivery, decode_inbound(value)))
        else:
            self.sent.append(decode_inbound(value))
            delivery.set_result(None)
        return delivery

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    def land_held(self) -> None:
        for delivery, record in self.held:
            self.sent.append(record)
            delivery.set_result(None)
        self.held.clear()


def make(redis_url: str, producer: StubProducer, **overrides: Any) -> Publisher:
    options: dict[str, Any] = dict(
        dedupe_ttl_s=3600, dedupe_no_ts_ttl_s=60, multipart_timeout_s=120, publish_timeout_s=2.0
    )
    options.update(overrides)
    return Publisher(make_redis(redis_url), producer, Topics("t-"), prefix="t-", **options)


def sms(text: str = "code 1", **fields: Any) -> Incoming:
    return Incoming(source="generic", phone_from="Telegram", text=text, received_at_ms=1735725600000, **fields)


def test_join_parts_marks_gaps() -> None:
    assert join_parts(3, {1: "a", 3: "c"}) == "a[part 2 missing]c"
    assert join_parts(2, {1: "a", 2: "b"}) == "ab"


def test_failed_publish_is_retried_with_the_same_sms_id_then_dropped(redis_url: str) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        publisher = make(redis_url, producer)
        try:
            producer.fail = True
            with pytest.raises(Unavailable):
                await publisher.accept(sms(), NUMBER)
            producer.fail = False
            first = await publisher.accept(sms(), NUMBER)
            again = await publisher.accept(sms(), NUMBER)
            assert not first.duplicate and again.duplicate and again.sms_id == first.sms_id
            assert [m.sms_id for m in producer.sent] == [first.sms_id]
            other = await publisher.accept(sms("code 2"), NUMBER)
            assert other.sms_id > first.sms_id
        finally:
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_parts_reassembled_and_late_retry_is_duplicate(redis_url: str) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        publisher = make(redis_url, producer)
        try:
            results = []
            for seq, text in ((2, "world"), (1, "hello "), (2, "world")):
                results.append(await publisher.accept(sms(text, part=Part("r1", 2, seq)), NUMBER))
            assert results[0].pending and not results[1].pending and results[2].duplicate
            assert len({r.sms_id for r in results}) == 1
            assert [(m.text, m.parts) for m in producer.sent] == [("hello world", 2)]
            # the same reference reused later by another message: a new message with a new id
            reused = await publisher.accept(sms("other ", part=Part("r1", 2, 1)), NUMBER)
            assert reused.pending and reused.sms_id != results[0].sms_id
        finally:
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_sweeper_publishes_partial_once_and_retries_after_kafka_failure(redis_url: str) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        publisher = make(redis_url, producer, multipart_timeout_s=0)
        try:
            accepted = await publisher.accept(sms("a", part=Part("x", 3, 1)), NUMBER)
            assert accepted.pending
            await asyncio.sleep(0.01)
            producer.fail = True
            assert await publisher.sweep_once() == 0
            producer.fail = False
            # leased for SWEEP_LEASE_MS: force the deadline back to now
            pending = cast(list[bytes], await publisher.redis.zrange(publisher.pending_key, 0, -1))
            await publisher.redis.zadd(publisher.pending_key, dict.fromkeys(pending, 0))
            assert await publisher.sweep_once() == 1
            assert await publisher.sweep_once() == 0
            assert [(m.sms_id, m.text, m.parts) for m in producer.sent] == [
                (accepted.sms_id, "a[part 2 missing][part 3 missing]", 1)
            ]
        finally:
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_redis_down_is_unavailable() -> None:
    async def scenario() -> None:
        publisher = make("redis://127.0.0.1:9/0", StubProducer())
        try:
            with pytest.raises(Unavailable):
                await publisher.accept(sms(), NUMBER)
        finally:
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_a_send_that_outlived_its_request_is_awaited_by_the_retry_not_sent_again(redis_url: str) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        publisher = make(redis_url, producer, publish_timeout_s=0.2)
        try:
            producer.hold = True  # the broker is down: the send stays queued in the producer
            with pytest.raises(Unavailable):
                await publisher.accept(sms(), NUMBER)
            with pytest.raises(Unavailable):  # the source retries during the outage: still the one send
                await publisher.accept(sms(), NUMBER)
            assert len(producer.held) == 1
            producer.hold = False
            retry = asyncio.create_task(publisher.accept(sms(), NUMBER))
            await asyncio.sleep(0.05)
            producer.land_held()  # the broker is back: the first send lands
            accepted = await retry
            assert [m.sms_id for m in producer.sent] == [accepted.sms_id]
            again = await publisher.accept(sms(), NUMBER)
            assert again.duplicate and again.sms_id == accepted.sms_id and len(producer.sent) == 1
        finally:
            await publisher.aclose()
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_a_send_that_landed_after_every_request_gave_up_is_marked_published(redis_url: str) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        publisher = make(redis_url, producer, publish_timeout_s=0.1)
        try:
            producer.hold = True
            with pytest.raises(Unavailable):
                await publisher.accept(sms(), NUMBER)
            producer.hold = False
            producer.land_held()
            await asyncio.sleep(0.1)  # its mark is written in the background
            again = await publisher.accept(sms(), NUMBER)
            assert again.duplicate and len(producer.sent) == 1 and producer.sent[0].sms_id == again.sms_id
        finally:
            await publisher.aclose()
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_a_failed_send_is_sent_again_by_the_retry(redis_url: str) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        publisher = make(redis_url, producer)
        try:
            producer.hold = True
            with pytest.raises(TimeoutError):  # the request deadline
                await asyncio.wait_for(publisher.accept(sms(), NUMBER), 0.1)
            [(delivery, _record)] = producer.held
            delivery.set_exception(ConnectionError("fatal"))  # definitely not written
            producer.hold = False
            await asyncio.sleep(0.01)
            accepted = await publisher.accept(sms(), NUMBER)
            assert [m.sms_id for m in producer.sent] == [accepted.sms_id]
        finally:
            await publisher.aclose()
            await publisher.redis.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("leader", [None, -1])
def test_no_partition_leader_fails_fast_and_queues_nothing(redis_url: str, leader: int | None) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        producer.client.cluster.leader = leader
        publisher = make(redis_url, producer, publish_timeout_s=5.0)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(NoLeader):
                await publisher.accept(sms(), NUMBER)
            assert loop.time() - started < 0.5 and producer.sent == [] and producer.held == []
            with pytest.raises(NoLeader):
                await publisher.accept(sms(), NUMBER)
            assert producer.metadata_asked == 1  # at most every METADATA_REFRESH_S
        finally:
            await publisher.aclose()
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_a_producer_whose_sender_died_is_replaced(redis_url: str) -> None:
    async def scenario() -> None:
        dead, fresh = StubProducer(), StubProducer()
        dead.fatal = True
        publisher = make(redis_url, dead, new_producer=lambda: fresh)
        try:
            with pytest.raises(Unavailable):
                await publisher.accept(sms(), NUMBER)
            await asyncio.sleep(0.05)  # replaced in the background
            assert publisher.producer is fresh and dead.stopped
            accepted = await publisher.accept(sms(), NUMBER)
            assert [m.sms_id for m in fresh.sent] == [accepted.sms_id]
        finally:
            await publisher.aclose()
            await publisher.stop_producer()
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_every_per_event_key_expires(redis_url: str) -> None:
    async def scenario() -> None:
        producer = StubProducer()
        publisher = make(redis_url, producer, dedupe_ttl_s=3600, multipart_timeout_s=60)
        try:
            await publisher.accept(sms(), NUMBER)
            await publisher.accept(Incoming(source="generic", phone_from="Uber", text="no clock"), NUMBER)
            await publisher.accept(sms("a", part=Part("p", 2, 1)), NUMBER)
            await publisher.accept(sms("b", part=Part("p", 2, 2)), NUMBER)
            await publisher.accept(sms("c", part=Part("q", 2, 1)), NUMBER)  # still pending
            keys = {k.decode(): await publisher.redis.ttl(k) async for k in publisher.redis.scan_iter("t-*")}
            shared = {publisher.id_key, publisher.pending_key}  # one key each, not one per event
            per_event = {k: ttl for k, ttl in keys.items() if k not in shared}
            assert len(per_event) == 4 and all(0 < ttl <= 3600 for ttl in per_event.values()), keys
        finally:
            await publisher.aclose()
            await publisher.redis.aclose()

    asyncio.run(scenario())


def test_a_retry_reaching_another_instance_is_refused_while_the_first_send_is_in_flight(redis_url: str) -> None:
    async def scenario() -> None:
        first, other = StubProducer(), StubProducer()
        one, two = make(redis_url, first, publish_timeout_s=0.1), make(redis_url, other, publish_timeout_s=0.1)
        try:
            first.hold = True
            with pytest.raises(Unavailable):
                await one.accept(sms(), NUMBER)
            with pytest.raises(InFlightElsewhere):  # the lease of instance one: no second send
                await two.accept(sms(), NUMBER)
            assert other.held == [] and other.sent == []
            first.land_held()
            await asyncio.sleep(0.05)
            again = await two.accept(sms(), NUMBER)
            assert again.duplicate and [m.sms_id for m in first.sent] == [again.sms_id] and other.sent == []
        finally:
            for publisher in (one, two):
                await publisher.aclose()
                await publisher.redis.aclose()

    asyncio.run(scenario())


def test_a_send_that_definitely_failed_frees_the_message_for_another_instance(redis_url: str) -> None:
    async def scenario() -> None:
        first, other = StubProducer(), StubProducer()
        first.client.cluster.leader = -1  # nothing is queued: the lease is released at once
        one, two = make(redis_url, first), make(redis_url, other)
        try:
            with pytest.raises(NoLeader):
                await one.accept(sms(), NUMBER)
            accepted = await two.accept(sms(), NUMBER)
            assert [m.sms_id for m in other.sent] == [accepted.sms_id] and first.sent == []
        finally:
            for publisher in (one, two):
                await publisher.aclose()
                await publisher.redis.aclose()

    asyncio.run(scenario())


def test_the_lease_lapses_when_its_instance_is_gone(redis_url: str) -> None:
    async def scenario() -> None:
        first, other = StubProducer(), StubProducer()
        one, two = make(redis_url, first, publish_timeout_s=0.1), make(redis_url, other)
        try:
            first.hold = True
            with pytest.raises(Unavailable):
                await one.accept(sms(), NUMBER)
            [key] = [k async for k in one.redis.scan_iter("t-ingest:fp:*")]
            await one.redis.hset(key, "until", 0)  # instance one died LEASE_MS ago
            accepted = await two.accept(sms(), NUMBER)
            assert [m.sms_id for m in other.sent] == [accepted.sms_id]
        finally:
            for publisher in (two, one):
                first.land_held()
                await publisher.aclose()
                await publisher.redis.aclose()

    asyncio.run(scenario())
