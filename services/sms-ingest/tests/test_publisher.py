"""The publisher against a real Redis, with a stand-in producer so a Kafka failure can be injected exactly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grizzly_common.events import InboundMessage, Topics, decode_inbound
from grizzly_common.redis_client import make_redis
from grizzly_ingest.errors import Unavailable
from grizzly_ingest.model import Incoming, Part
from grizzly_ingest.publisher import Publisher, join_parts

NUMBER = 447700900123


class StubProducer:
    def __init__(self) -> None:
        self.sent: list[InboundMessage] = []
        self.fail = False

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        assert key == str(decode_inbound(value).number).encode()
        self.sent.append(decode_inbound(value))


def make(redis_url: str, producer: StubProducer, **overrides: Any) -> Publisher:
    options: dict[str, Any] = dict(
        dedupe_ttl_s=3600, dedupe_no_ts_ttl_s=60, multipart_timeout_s=120, publish_timeout_s=2.0
    )
    options.update(overrides)
    return Publisher(make_redis(redis_url), producer, Topics("t-"), **options)  # type: ignore[arg-type]


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
            await publisher.redis.aclose(close_connection_pool=True)

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
            await publisher.redis.aclose(close_connection_pool=True)

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
            await publisher.redis.zadd(
                publisher.pending_key, {k: 0 for k in await publisher.redis.zrange(publisher.pending_key, 0, -1)}
            )
            assert await publisher.sweep_once() == 1
            assert await publisher.sweep_once() == 0
            assert [(m.sms_id, m.text, m.parts) for m in producer.sent] == [
                (accepted.sms_id, "a[part 2 missing][part 3 missing]", 1)
            ]
        finally:
            await publisher.redis.aclose(close_connection_pool=True)

    asyncio.run(scenario())


def test_redis_down_is_unavailable() -> None:
    async def scenario() -> None:
        publisher = make("redis://127.0.0.1:9/0", StubProducer())
        try:
            with pytest.raises(Unavailable):
                await publisher.accept(sms(), NUMBER)
        finally:
            await publisher.redis.aclose(close_connection_pool=True)

    asyncio.run(scenario())
