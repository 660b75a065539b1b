"""Kafka producers, consumers and topics, configured the way every service needs them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from grizzly_common.settings import LOCAL_DURABILITY, TopicDurability


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """Idempotent, acks=all: a send that returned is on the broker and will not be written twice."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=15000,
    )


def make_consumer(bootstrap: str, group_id: str, client_id: str, *topics: str) -> AIOKafkaConsumer:
    """Auto-commit off: the caller commits only what is delivered or durably handed off."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=500,
        session_timeout_ms=10000,
        heartbeat_interval_ms=2000,
    )


async def ensure_topics(
    bootstrap: str, topics: Iterable[str], partitions: int, durability: TopicDurability = LOCAL_DURABILITY
) -> None:
    """Create the topics that do not exist yet, with the replication factor and min.insync.replicas given."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        config = {"min.insync.replicas": str(durability.min_insync_replicas)}
        wanted = [
            NewTopic(t, partitions, durability.replication, topic_configs=config) for t in topics if t not in existing
        ]
        if wanted:
            try:
                response = await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                return  # another instance created it first
            for name, code, *message in response.topic_errors:
                # the broker answers per topic instead of raising: a refused topic (e.g. more replicas than brokers)
                # must stop the service, not leave it running on a topic that does not exist
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"topic {name}: {message[0] if message else ''}")
    finally:
        await admin.close()


async def wait_kafka(bootstrap: str, timeout_s: float = 60.0) -> dict[str, object]:
    """Until a metadata round trip lists at least one broker."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            info: dict[str, object] = await admin.describe_cluster()
            if info.get("brokers"):
                return info
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
    raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout_s}s: {last!r}")


async def kafka_reachable(bootstrap: str, timeout_s: float = 2.0) -> bool:
    try:
        await asyncio.wait_for(wait_kafka(bootstrap, timeout_s), timeout_s + 1)
        return True
    except TimeoutError:
        return False
