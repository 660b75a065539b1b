"""The SMS pipeline end to end: sms-ingest -> Kafka -> pusher -> fake platform (bench/fake_push.py).

Numbers are imported into the pool, then activations opened through api-edge (GET_NUMBER), so the pusher finds an
open activation for every SMS. N SMS are POSTed to sms-ingest's generic webhook (/v1/sms) from 64 concurrent
clients, each text carrying its send time; the fake platform records the end-to-end latency of every push.
Throughput = SMS pushed / (last push - first send). Compared with raw aiokafka on the same broker (kafka section).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
from grizzly_common.events import InboundMessage, Topics, encode, number_key
from grizzly_common.kafka_client import make_producer

from bench import aio, pool_load
from bench.infra import UPSTREAM_KEY, BenchEnv, http_json, module_available, wait_until
from bench.stats import Row, summarize

SECTION = "SMS pipeline"
SERVICES = ("grizzly_pool", "grizzly_edge", "grizzly_ingest", "grizzly_pusher")
CONCURRENCY = 64


async def _open_activations(edge_url: str, count: int) -> list[int]:
    numbers: list[int] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def one(i: int) -> None:
            body = {
                "action": "GET_NUMBER",
                "key": UPSTREAM_KEY,
                "country": pool_load.COUNTRY,
                "operator": "any",
                "service": pool_load.SERVICES[i % 10],
                "sum": 0.35,
            }
            async with session.post(edge_url, data=orjson.dumps(body)) as reply:
                answer = orjson.loads(await reply.read())
            if answer.get("status") == "SUCCESS":
                numbers.append(int(answer["number"]))

        for start in range(0, count, 32):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + 32))))
    return numbers


async def _send(
    ingest_url: str, token: str, numbers: list[int], total: int, max_s: float, rate: float = 0.0
) -> tuple[dict[str, Any], int]:
    """POST `total` SMS from 64 clients, as fast as possible or paced at `rate` per second (open loop)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    first_ns = time.time_ns()
    begin = time.perf_counter()
    deadline = begin + max_s
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15)) as session:

        async def worker() -> None:
            nonlocal issued, errors
            while issued < total and time.perf_counter() < deadline:
                seq = issued
                issued += 1
                if rate:
                    await asyncio.sleep(max(0.0, begin + seq / rate - time.perf_counter()))
                body = orjson.dumps(
                    {
                        "number": numbers[seq % len(numbers)],
                        "from": "Telegram",
                        "text": f"bench {time.time_ns()} {seq}",
                        "id": f"bench-{first_ns}-{seq}",  # unique per run: ingest dedupes on the source id
                    }
                )
                t0 = time.perf_counter()
                try:
                    async with session.post(ingest_url, data=body, headers=headers) as reply:
                        await reply.read()
                        ok = reply.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return summarize(latencies, time.perf_counter() - start, errors), first_ns


async def _produce_direct(bootstrap: str, prefix: str, numbers: list[int], total: int) -> int:
    """Write `total` inbound records straight to the topic; returns the time (ns) the first was sent."""
    producer = make_producer(bootstrap, "bench-direct")
    await producer.start()
    try:
        first_ns = time.time_ns()
        futures = []
        for seq in range(total):
            now_ns = time.time_ns()
            number = numbers[seq % len(numbers)]
            message = InboundMessage(
                sms_id=2 * 10**15 + seq,
                number=number,
                phone_from="Telegram",
                text=f"bench {now_ns} {seq}",
                received_at_ms=now_ns // 10**6,
                ingested_at_ms=now_ns // 10**6,
                source="bench",
            )
            futures.append(await producer.send(Topics(prefix).inbound, encode(message), key=number_key(number)))
        await asyncio.gather(*futures)
        return first_ns
    finally:
        await producer.stop()


def run(env: BenchEnv) -> list[Row]:
    missing = [m for m in SERVICES if not module_available(m)]
    if missing:
        return [Row(SECTION, "ingest -> Kafka -> pusher", note=f"skipped: {', '.join(missing)} not ready")]
    total = env.n(3000, 30000)
    activations = env.n(300, 2000)
    env.flush_redis()
    fake_port = env.start_fake_push()
    fake = f"http://127.0.0.1:{fake_port}"
    stack = dict(env.stack_env(f"{fake}/agent/api/sms", with_kafka=True), **pool_load.POOL_ENV)
    stack["PUSHER_TOPIC_PARTITIONS"] = stack["INGEST_TOPIC_PARTITIONS"] = "4"
    pool_load.bulk_import(env, stack, pool_load.write_csv(env.workdir / "pipeline.csv", activations * 2))
    for name in ("pool", "edge", "pusher", "ingest"):
        env.start_service(name, stack)
    numbers = aio.run(_open_activations(f"http://127.0.0.1:{stack['EDGE_PORT']}/", activations))
    if not numbers:
        raise RuntimeError("no activation could be opened through api-edge")
    # warm the path (topic creation, consumer group join) before the timed run
    aio.run(_send(f"http://127.0.0.1:{stack['INGEST_PORT']}/v1/sms", stack["INGEST_TOKEN"], numbers, 20, 30))
    wait_until(lambda: http_json(f"{fake}/stats")["timed"] >= 20, 60)
    http_json(f"{fake}/reset", {})

    accepted, first_ns = aio.run(
        _send(
            f"http://127.0.0.1:{stack['INGEST_PORT']}/v1/sms",
            stack["INGEST_TOKEN"],
            numbers,
            total,
            60.0 if env.quick else 180.0,
        )
    )
    sent = accepted["ops"]
    wait_until(lambda: http_json(f"{fake}/stats")["timed"] >= sent, 60 if env.quick else 180, 0.25)
    stats = http_json(f"{fake}/stats")
    span_s = max(1e-9, (stats["last_ns"] - first_ns) / 1e9)
    delivered = stats["timed"]
    # pusher alone: records written straight to the inbound topic, pushed to the fake platform
    http_json(f"{fake}/reset", {})
    direct = aio.run(_produce_direct(env.kafka(), stack["KAFKA_TOPIC_PREFIX"], numbers, total))
    wait_until(lambda: http_json(f"{fake}/stats")["timed"] >= total, 60 if env.quick else 180, 0.25)
    pushed = http_json(f"{fake}/stats")
    pusher_span = max(1e-9, (pushed["last_ns"] - direct) / 1e9)

    # latency at a sustainable rate: half of the end-to-end throughput just measured (at most the 2,000/s target)
    rate = max(10.0, min(2000.0, 0.5 * delivered / span_s))
    paced_total = int(rate * env.s(5, 15))
    http_json(f"{fake}/reset", {})
    paced, _ = aio.run(
        _send(
            f"http://127.0.0.1:{stack['INGEST_PORT']}/v1/sms",
            stack["INGEST_TOKEN"],
            numbers,
            paced_total,
            60.0 if env.quick else 120.0,
            rate,
        )
    )
    wait_until(lambda: http_json(f"{fake}/stats")["timed"] >= paced["ops"], 60, 0.25)
    paced_stats = http_json(f"{fake}/stats")

    rows = [
        Row.from_summary(
            SECTION,
            "ingest accept (POST /v1/sms)",
            accepted,
            concurrency=CONCURRENCY,
            ref="kafka (raw aiokafka)::produce, send_and_wait x64",
            note=f"{activations} open activations" + (f"; errors {accepted['errors']}" if accepted["errors"] else ""),
        ),
        Row(
            SECTION,
            "end to end, ingest -> pusher -> platform",
            concurrency=CONCURRENCY,
            ops_per_s=round(delivered / span_s, 1),
            p50_ms=stats["p50_ms"],
            p99_ms=stats["p99_ms"],
            ref="kafka (raw aiokafka)::consume + commit per batch",
            note=f"delivered {delivered}/{sent}, duplicates {stats['duplicates']}; saturated (open loop)",
            extra=stats,
        ),
        Row(
            SECTION,
            "end to end, paced",
            concurrency=CONCURRENCY,
            p50_ms=paced_stats["p50_ms"],
            p99_ms=paced_stats["p99_ms"],
            note=f"at {rate:.0f} SMS/s: delivered {paced_stats['timed']}/{paced['ops']}, "
            f"duplicates {paced_stats['duplicates']}",
            extra={**paced_stats, "rate": rate},
        ),
        Row(
            SECTION,
            "pusher alone, Kafka -> pusher -> platform",
            ops_per_s=round(pushed["timed"] / pusher_span, 1),
            p50_ms=pushed["p50_ms"],
            p99_ms=pushed["p99_ms"],
            ref="kafka (raw aiokafka)::consume + commit per batch",
            note=f"delivered {pushed['timed']}/{total}, duplicates {pushed['duplicates']}; saturated",
            extra=pushed,
        ),
    ]
    return rows
