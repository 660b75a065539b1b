"""Raw aiokafka on the same broker: the ceiling of the SMS pipeline's Kafka leg.

Produce with the services' producer settings (idempotent, acks=all): all sends in flight at once (batched), and
awaited one by one from 64 concurrent tasks (what sms-ingest does per request). Consume with the pusher's consumer
settings (auto-commit off), committing once per batch.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from grizzly_common.events import InboundMessage, Topics, encode, number_key
from grizzly_common.kafka_client import ensure_topics, make_consumer, make_producer

from bench import aio
from bench.infra import BenchEnv
from bench.stats import Row, summarize

SECTION = "kafka (raw aiokafka)"
PARTITIONS = 4


def _message(i: int) -> InboundMessage:
    now = int(time.time() * 1000)
    return InboundMessage(
        sms_id=10**15 + i,
        number=447700000000 + i % 5000,
        phone_from="Telegram",
        text=f"Telegram code: {i % 100000:05d}. Do not give this code to anyone",
        received_at_ms=now,
        ingested_at_ms=now,
        source="bench",
    )


async def _produce_batched(bootstrap: str, topic: str, total: int) -> dict[str, float]:
    producer = make_producer(bootstrap, "bench-producer")
    await producer.start()
    try:
        for partition in range(PARTITIONS):  # until every partition has a leader (a fresh topic may not yet)
            await producer.send_and_wait(topic, b"warmup", partition=partition)
        start = time.perf_counter()
        futures = []
        for i in range(total):
            message = _message(i)
            futures.append(await producer.send(topic, encode(message), key=number_key(message.number)))
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
    return {"ops_per_s": round(total / elapsed, 1), "ops": total, "elapsed_s": round(elapsed, 3)}


async def _produce_awaited(bootstrap: str, topic: str, total: int, concurrency: int, max_s: float) -> dict[str, float]:
    producer = make_producer(bootstrap, "bench-producer-awaited")
    await producer.start()
    latencies: list[float] = []
    issued = 0
    deadline = time.perf_counter() + max_s

    async def worker() -> None:
        nonlocal issued
        while issued < total and time.perf_counter() < deadline:
            message = _message(issued)
            issued += 1
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, encode(message), key=number_key(message.number))
            latencies.append(time.perf_counter() - t0)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
    return summarize(latencies, elapsed)


async def _consume(bootstrap: str, topic: str, total: int, max_s: float) -> dict[str, float]:
    consumer = make_consumer(bootstrap, f"bench-{uuid.uuid4().hex[:8]}", "bench-consumer", topic)
    await consumer.start()
    seen = 0
    try:
        start = time.perf_counter()
        deadline = start + max_s
        while seen < total and time.perf_counter() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                seen += len(records)
            if batches:
                await consumer.commit()
        elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return {"ops_per_s": round(seen / elapsed, 1), "ops": seen, "elapsed_s": round(elapsed, 3)}


def run(env: BenchEnv) -> list[Row]:
    bootstrap = env.kafka()
    topic = Topics(f"bench{uuid.uuid4().hex[:8]}-").inbound
    aio.run(ensure_topics(bootstrap, [topic], PARTITIONS))
    total = env.n(20000, 100000)
    max_s = env.s(20.0, 60.0)
    batched = aio.run(_produce_batched(bootstrap, topic, total))
    awaited = aio.run(_produce_awaited(bootstrap, topic, total // 4, 64, max_s))
    consumed = aio.run(_consume(bootstrap, topic, total, max_s))
    rows = [
        Row(SECTION, "produce, all in flight", ops_per_s=batched["ops_per_s"], extra=batched),
        Row.from_summary(SECTION, "produce, send_and_wait x64", awaited, concurrency=64, ref="produce, all in flight"),
        Row(
            SECTION,
            "consume + commit per batch",
            ops_per_s=consumed["ops_per_s"],
            extra=consumed,
            ref="produce, all in flight",
        ),
    ]
    return rows
