"""The test infrastructure itself: real Redis answers PING, real Kafka keeps records across a broker restart."""

from __future__ import annotations

import asyncio

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from grizzly_common.kafka_client import ensure_topics, make_consumer, make_producer
from grizzly_common.settings import topic_durability
from grizzly_testkit.infra import Broker, LocalKafka


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


def test_inbound_topic_is_created_with_the_configured_durability(kafka_broker: Broker, topic_prefix: str) -> None:
    """KAFKA_REPLICATION_FACTOR / KAFKA_MIN_INSYNC_REPLICAS reach the broker; one broker cannot hold two replicas."""
    topic = topic_prefix + "durable"

    async def run() -> dict[str, str]:
        await ensure_topics(kafka_broker.bootstrap, [topic], 3, topic_durability({"KAFKA_MIN_INSYNC_REPLICAS": "1"}))
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            return {name: value for name, value, *_ in described.resources[0][4]}
        finally:
            await admin.close()

    assert asyncio.run(run())["min.insync.replicas"] == "1"
    with pytest.raises(KafkaError):  # asked for more replicas than brokers: refused, never silently downgraded
        asyncio.run(
            ensure_topics(
                kafka_broker.bootstrap, [topic + "-x"], 1, topic_durability({"KAFKA_REPLICATION_FACTOR": "3"})
            )
        )
