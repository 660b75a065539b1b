"""While Kafka is down the ingest answers 503 (the source keeps the SMS and retries); the retry after the broker
is back is accepted with the same smsId, and nothing is published twice. During a broker restart under load every
request is answered within the request deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from grizzly_common.events import InboundMessage, Topics, decode_inbound
from grizzly_testkit.infra import LocalKafka, ServiceProcess

TOKEN = "test-ingest-token-0001"


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
    # the send the first request gave up on was kept in flight and the retries waited for it: one record
    assert [r.sms_id for r in records] == [sms_id]


DEADLINE_S = 3.0
MARGIN_S = 1.5  # answering and scheduling on a 2-core machine busy starting the broker's JVM


@dataclass
class Sent:
    text: str
    number: int
    status: int = 0  # 0: no answer (the client timed out)
    latency_s: float = 0.0
    sms_id: int = 0


async def _load(sms_url: str, stop: asyncio.Event, sent: list[Sent], workers: int = 16) -> None:
    """Distinct SMS from `workers` concurrent sources until `stop`; every answer and its latency recorded."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = httpx.Timeout(DEADLINE_S * 10)  # far beyond the deadline: a hang shows as a late answer, not an error
    async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=workers)) as client:

        async def source(worker: int) -> None:
            n = 0
            while not stop.is_set():
                item = Sent(text=f"code {worker}-{n}", number=447700900000 + (worker * 7 + n) % 50)
                n += 1
                started = time.monotonic()
                try:
                    reply = await client.post(
                        sms_url,
                        json={
                            "number": item.number,
                            "from": "Telegram",
                            "text": item.text,
                            "received_at": 1735725600000,
                        },
                        headers=headers,
                    )
                    item.status = reply.status_code
                    if reply.status_code == 200:
                        item.sms_id = reply.json()["smsId"]
                except httpx.HTTPError:
                    item.status = 0
                item.latency_s = time.monotonic() - started
                sent.append(item)

        await asyncio.gather(*(source(w) for w in range(workers)))


async def _restart_under_load(sms_url: str, broker: LocalKafka, sent: list[Sent]) -> dict[str, float]:
    stop = asyncio.Event()
    load = asyncio.create_task(_load(sms_url, stop, sent))
    await asyncio.sleep(8)
    t_stop = time.monotonic()
    await asyncio.to_thread(broker.stop)
    await asyncio.sleep(5)
    await asyncio.to_thread(broker.start)
    t_back = time.monotonic()
    # until the ingest publishes again, then a little longer
    while not [s for s in sent[-20:] if s.status == 200] and time.monotonic() - t_back < 60:
        await asyncio.sleep(0.2)
    t_recovered = time.monotonic()
    await asyncio.sleep(8)
    stop.set()
    await load
    return {"outage_s": t_back - t_stop, "recovery_after_broker_ready_s": t_recovered - t_back}


@pytest.mark.slow
def test_broker_restart_every_request_answered_within_deadline_and_published_once(
    start_service: Callable[..., ServiceProcess],
    stack_env: dict[str, str],
    own_broker: LocalKafka,
    record_property: Callable[[str, object], None],
) -> None:
    start_service(
        "ingest",
        KAFKA_BOOTSTRAP=own_broker.bootstrap,
        INGEST_REQUEST_DEADLINE_S=str(DEADLINE_S),
        INGEST_POOL_URL="",
    )
    sms_url = f"http://127.0.0.1:{stack_env['INGEST_PORT']}/v1/sms"
    sent: list[Sent] = []
    timeline = asyncio.run(_restart_under_load(sms_url, own_broker, sent))
    statuses = Counter(s.status for s in sent)
    latencies = sorted(s.latency_s for s in sent)
    late = [s for s in sent if s.latency_s > DEADLINE_S + MARGIN_S or s.status == 0]
    figures = {
        "requests": len(sent),
        **{f"status_{code}": count for code, count in sorted(statuses.items())},
        "answered_within_deadline": sum(1 for s in sent if s.status and s.latency_s <= DEADLINE_S),
        "answered_within_deadline_plus_margin": len(sent) - len(late),
        "latency_p50_s": round(latencies[len(latencies) // 2], 3),
        "latency_p99_s": round(latencies[int(len(latencies) * 0.99)], 3),
        "latency_max_s": round(latencies[-1], 3),
        **{name: round(value, 1) for name, value in timeline.items()},
    }
    metrics = httpx.get(sms_url.replace("/v1/sms", "/metrics")).text
    for line in metrics.splitlines():  # why the refused ones were refused
        if line.startswith("ingest_rejected_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            figures[f"refused_{reason}"] = int(float(line.rsplit(" ", 1)[1]))
    for name, value in figures.items():
        record_property(name, value)
    assert not late, (figures, late[:5])
    assert set(statuses) <= {200, 503}, figures
    assert statuses[503] > 0 and statuses[200] > 0, figures

    # the sources retry what was refused; a send a request gave up on may have landed meanwhile, so the
    # retry gets its smsId back (duplicate) instead of a second record
    refused = [s for s in sent if s.status == 503]
    with httpx.Client(timeout=30) as client:
        for item in refused:
            for _attempt in range(30):
                reply = client.post(
                    sms_url,
                    json={"number": item.number, "from": "Telegram", "text": item.text, "received_at": 1735725600000},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                if reply.status_code == 200:
                    item.sms_id = reply.json()["smsId"]
                    break
                time.sleep(0.5)
            assert item.sms_id, (item, reply.text)
    records = asyncio.run(_read_all(own_broker.bootstrap, Topics(stack_env["KAFKA_TOPIC_PREFIX"]).inbound))
    per_text = Counter(r.text for r in records)
    assert [t for t, n in per_text.items() if n > 1] == [], "a message was published twice"
    assert {r.text: r.sms_id for r in records} == {s.text: s.sms_id for s in sent}
    record_property("records", len(records))
    record_property("refused_then_retried", len(refused))
