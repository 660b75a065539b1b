"""While Kafka is down the ingest answers 503 (the source keeps the SMS and retries); the retry after the broker
is back is accepted with the same smsId, and nothing is published under another id."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from grizzly_common.events import InboundMessage, Topics, decode_inbound

from tests.integration.infra import LocalKafka, ServiceProcess

TOKEN = "test-ingest-token-0001"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker this test may stop and start (never the shared one)."""
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()


async def _read_all(bootstrap: str, topic: str) -> list[InboundMessage]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[InboundMessage] = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for items in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(decode_inbound(item.value) for item in items)
        return records
    finally:
        await consumer.stop()


@pytest.mark.slow
def test_kafka_down_is_503_then_retry_gets_the_same_sms_id(
    start_service: Callable[..., ServiceProcess], stack_env: dict[str, str], own_broker: LocalKafka
) -> None:
    start_service("ingest", KAFKA_BOOTSTRAP=own_broker.bootstrap, INGEST_PUBLISH_TIMEOUT_S="2", INGEST_POOL_URL="")
    sms_url = f"http://127.0.0.1:{stack_env['INGEST_PORT']}/v1/sms"
    body = json.dumps({"number": 447700900123, "from": "Telegram", "text": "code 777", "received_at": 1735725600000})
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    own_broker.stop()
    down = httpx.post(sms_url, content=body, headers=headers, timeout=60)
    assert down.status_code == 503 and down.json()["status"] == "ERROR"
    own_broker.start()
    deadline = time.monotonic() + 90
    while True:  # the source's retries, until the producer has reconnected
        reply = httpx.post(sms_url, content=body, headers=headers, timeout=60)
        if reply.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert reply.status_code == 200, reply.text
    sms_id = reply.json()["smsId"]
    again = httpx.post(sms_url, content=body, headers=headers, timeout=60).json()
    assert again["smsId"] == sms_id and again["duplicate"] is True
    records = asyncio.run(_read_all(own_broker.bootstrap, Topics(stack_env["KAFKA_TOPIC_PREFIX"]).inbound))
    # the send abandoned during the outage may still have landed: same smsId, deduplicated downstream
    assert 1 <= len(records) <= 2 and {r.sms_id for r in records} == {sms_id}
