"""Hostile records written straight to the inbound topic (bypassing ingest) never hold up delivery.

Each one is parked with its reason and counted; every normal SMS next to them, on the same partition and the same
number, is pushed on time and once. Real Kafka and Redis; the platform is FakeGrizzly, the pool lookup a FakePool.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis as redis_sync
from grizzly_testkit.infra import Broker, ServiceProcess

from tests.integration.fake_grizzly import FakeGrizzly, FakePool, inbound, produce_inbound

NUMBER = 447700900123
OTHER = 447700900456


def hostile_values() -> list[bytes]:
    """Records no ingest would publish: each breaks a bound, a type, the JSON, or the push's own encoding."""
    base: dict[str, Any] = {
        "sms_id": 900,
        "number": NUMBER,
        "phone_from": "Telegram",
        "text": "x",
        "received_at_ms": 1,
        "ingested_at_ms": 1,
        "source": "generic",
    }

    def value(**fields: Any) -> bytes:
        return json.dumps({**base, **fields}).encode()

    return [
        value(received_at_ms=1e300),  # the one that stopped every push
        value(received_at_ms=10**30),
        value(ingested_at_ms=-1),
        value(number=10**40),
        value(number=-5),
        value(sms_id=2**64),
        value(sms_id=0),
        value(phone_from="Tele\x00gram"),
        value(phone_from="x" * 10_000),
        value(text="y" * 200_000),
        value(kind="fax"),
        value(source="a|b"),
        value(parts=10_000),
        b'{"sms_id": 900, "text": "\\ud800"}',  # a lone surrogate
        value(kind="call_record", recording_b64="!!! not base64 !!!"),  # decodes, but cannot be pushed
        b"[" * 50_000 + b"]" * 50_000,  # nesting
        b"null",
        b"",
        b"\xff\xfe garbage",
    ]


def redis_call(redis_url: str, *args: Any) -> Any:
    client = redis_sync.Redis.from_url(redis_url)
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:  # noqa: S310 - loopback
        text = reply.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


@pytest.fixture
def pusher(start_service: Callable[..., ServiceProcess], fake_pool: FakePool) -> Callable[..., ServiceProcess]:
    def start(**overrides: str) -> ServiceProcess:
        env = {"PUSHER_POOL_URL": fake_pool.url, "PUSHER_LEASE_S": "4", "UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S": "1"}
        return start_service("pusher", **dict(env, **overrides))

    return start


def test_hostile_records_are_parked_and_every_normal_sms_is_pushed_on_time(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 7001)
    fake_pool.open(OTHER, 7002)
    topic = topic_prefix + "inbound-messages"
    hostile = hostile_values()
    process = pusher()
    # one partition: every hostile record sits in front of normal SMS, for this number and for another
    started = time.monotonic()
    produce_inbound(
        kafka_broker.bootstrap,
        topic,
        [inbound(1, NUMBER), inbound(2, OTHER)],
        raw=tuple(hostile),
        partitions=1,
        raw_key=str(NUMBER).encode(),
    )
    produce_inbound(kafka_broker.bootstrap, topic, [inbound(3, NUMBER), inbound(4, OTHER)], partitions=1)
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() >= {1, 2, 3, 4}, 15), fake_grizzly.delivered_ids()
    elapsed = time.monotonic() - started
    assert fake_grizzly.wait_for(lambda f: redis_call(redis_url, "XLEN", "pusher:parked") == len(hostile), 10)

    # then while it runs: hostile records again, each followed by a normal SMS that must not wait for it
    produce_inbound(
        kafka_broker.bootstrap,
        topic,
        [inbound(5, NUMBER), inbound(6, OTHER)],
        raw=tuple(hostile),
        partitions=1,
        raw_key=str(NUMBER).encode(),
    )
    sent = time.monotonic()
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() >= {5, 6}, 10), fake_grizzly.delivered_ids()
    on_time = time.monotonic() - sent
    assert fake_grizzly.wait_for(lambda f: redis_call(redis_url, "XLEN", "pusher:parked") == 2 * len(hostile), 10)
    sys.stderr.write(f"\n[pusher-hostile] first batch {elapsed:.1f}s after start, later SMS {on_time:.2f}s\n")

    parked = redis_call(redis_url, "XRANGE", "pusher:parked", "-", "+")
    reasons = {fields[b"reason"] for _id, fields in parked}
    assert reasons == {b"undecodable", b"unpushable"}
    assert all(fields[b"error"] for _id, fields in parked)
    assert metric(process.port, "pusher_parked_total") == 2 * len(hostile)
    assert fake_grizzly.duplicates() == {}
    assert all(len(fake_grizzly.pushes_for(sms_id)) == 1 for sms_id in range(1, 7))
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0  # nothing left to retry for ever
