"""The test infrastructure itself: real Redis answers PING, real Kafka keeps records across a broker restart."""

from __future__ import annotations

import asyncio

import redis
from grizzly_common.kafka_client import ensure_topics, make_consumer, make_producer

from tests.integration.infra import Broker, LocalKafka


def test_redis_answers_ping(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    client.close()


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    await ensure_topics(bootstrap, [topic], partitions=2)
    producer = make_producer(bootstrap, "infra-test")
    await producer.start()
    try:
        for i in range(count):
            await producer.send(topic, str(i).encode(), key=str(i % 7).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = make_consumer(bootstrap, f"{topic}-reader", "infra-test", topic)
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(values) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    values.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return values


def test_kafka_keeps_records_across_broker_restart(kafka_broker: Broker, topic_prefix: str) -> None:
    topic = topic_prefix + "restart"
    asyncio.run(_produce(kafka_broker.bootstrap, topic, 500))
    if isinstance(kafka_broker, LocalKafka) or hasattr(kafka_broker, "container"):
        kafka_broker.stop()
        kafka_broker.start()
    values = asyncio.run(_consume_all(kafka_broker.bootstrap, topic, 500))
    assert sorted(int(v) for v in values) == list(range(500))
