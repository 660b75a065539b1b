"""The pusher delivers every SMS/call of an open activation to its upstream, retries until SUCCESS, never twice,
and parks what it can never push (hostile records written straight to the topic) without holding up the rest.

Real Kafka and Redis; the platform is FakeGrizzly, and the pool lookup a FakePool (the pusher's only pool call).
"""

from __future__ import annotations

import base64
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
from tests.integration.fixtures import UPSTREAM_KEY

NUMBER = 447700900123
OTHER = 447700900456


def audit_events(redis_url: str, activation_id: int) -> list[dict[str, Any]]:
    client = redis_sync.Redis.from_url(redis_url)
    try:
        return [json.loads(item) for item in client.lrange(f"audit:act:{activation_id}", 0, -1)]
    finally:
        client.close()


def redis_call(redis_url: str, *args: Any) -> Any:
    client = redis_sync.Redis.from_url(redis_url)
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        client.close()


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


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


@pytest.fixture
def pusher(start_pusher: Callable[..., ServiceProcess]) -> Callable[..., ServiceProcess]:
    return start_pusher


def test_sms_call_and_call_record_are_pushed_with_numeric_fields_and_user_agent(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 5001)
    audio = b"RIFF\x00\x01fake-wav"
    messages = [
        inbound(101, NUMBER, text="Telegram code: 51920"),
        inbound(102, NUMBER, kind="call", phone_from="79001234567"),
        inbound(
            103,
            NUMBER,
            kind="call_record",
            text="your code is 1 2 3",
            recording_b64=base64.b64encode(audio).decode(),
            recording_type="audio/wav",
        ),
    ]
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages)
    pusher(UPSTREAM_GRIZZLY_USER_AGENT="partner-test/1.0")
    assert fake_grizzly.wait_for(lambda f: len(f.successes()) == 3, 30)

    sms, call, record = (fake_grizzly.pushes_for(i)[0] for i in (101, 102, 103))
    assert sms.body == {
        "action": "PUSH_SMS",
        "key": UPSTREAM_KEY,
        "smsId": 101,
        "phone": NUMBER,
        "phoneFrom": "Telegram",
        "text": "Telegram code: 51920",
    }
    assert type(sms.body["smsId"]) is int and type(sms.body["phone"]) is int
    assert call.body == {
        "action": "PUSH_CALL",
        "key": UPSTREAM_KEY,
        "callId": 102,
        "phone": NUMBER,
        "phoneFrom": "79001234567",
    }
    assert record.headers["Content-Type"].startswith("multipart/form-data")
    assert record.body["action"] == "PUSH_CALL_RECORD" and record.body["callId"] == "103"
    assert record.body["phone"] == str(NUMBER) and record.body["text"] == "your code is 1 2 3"
    assert record.body["file"]["data"] == audio and record.body["file"]["content_type"] == "audio/wav"
    for push in (sms, call, record):
        assert push.headers["User-Agent"] == "partner-test/1.0"
        assert "Content-Encoding" not in push.headers

    # the audit trail has the SMS and its push attempt; the ledger says delivered
    def trail_complete() -> bool:
        events = audit_events(redis_url, 5001)
        return sum(e["event"] == "push_attempt" for e in events) == 3  # type: ignore[no-any-return]

    assert fake_grizzly.wait_for(lambda f: trail_complete(), 10)
    events = audit_events(redis_url, 5001)
    assert [e["sms_id"] for e in events if e["event"] == "sms"] == [101, 102, 103]
    attempt = next(e for e in events if e["event"] == "push_attempt" and e["sms_id"] == 101)
    assert attempt["result"] == "success" and attempt["attempt"] == 1 and attempt["http_status"] == 200
    assert redis_call(redis_url, "EXISTS", "pusher:ledger:grizzly:101") == 1
    assert UPSTREAM_KEY not in json.dumps(events)


def test_gzip_body_when_the_upstream_wants_it(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
) -> None:
    fake_pool.open(NUMBER, 5002)
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", [inbound(201, NUMBER)])
    process = pusher(UPSTREAM_GRIZZLY_GZIP="true")
    assert fake_grizzly.wait_for(lambda f: len(f.successes()) == 1, 30)
    with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/readyz", timeout=5) as reply:
        assert json.loads(reply.read())["checks"] == {"redis": "ok", "kafka": "ok", "pool": "ok"}
    wanted = (
        'pusher_push_successes_total{upstream="grizzly"} 1.0',
        "pusher_push_latency_seconds_bucket",
        "pusher_end_to_end_lag_seconds_bucket",
        "pusher_kafka_consumer_lag{",
        "pusher_retry_queue_depth",
    )
    # the fake counts a success as it answers; the pusher's counters follow once it has read that answer
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/metrics", timeout=5) as reply:
            exposition = reply.read().decode()
        missing = [name for name in wanted if name not in exposition]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not missing, missing
    push = fake_grizzly.successes()[0]
    assert push.headers["Content-Encoding"] == "gzip"
    assert push.body["smsId"] == 201 and push.body["phone"] == NUMBER
    assert push.raw_size != len(json.dumps(push.body))  # really compressed on the wire (the fake gunzipped it)


@pytest.mark.parametrize("mode", ["error", "http500", "garbage", "timeout"])
def test_failing_platform_is_retried_until_success_and_other_numbers_are_not_blocked(
    mode: str,
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 6001)
    fake_pool.open(OTHER, 6002)
    fake_grizzly.timeout_s = 2.0  # the pusher gives up after UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S=1
    fake_grizzly.fail_phones = {NUMBER}
    if mode != "error":
        fake_grizzly.fail_for(3.5, mode)  # every push fails this way for a while
    produce_inbound(
        kafka_broker.bootstrap,
        topic_prefix + "inbound-messages",
        [inbound(301, NUMBER), inbound(302, OTHER), inbound(303, OTHER)],
    )
    pusher()
    # the failing number does not hold up the other one (once the platform itself answers again)
    assert fake_grizzly.wait_for(lambda f: {302, 303} <= f.delivered_ids(), 30)
    assert fake_grizzly.wait_for(lambda f: len(f.pushes_for(301)) >= 3, 30)  # retried every PUSHER_RETRY_S
    assert 301 not in fake_grizzly.delivered_ids()
    fake_grizzly.fail_phones = set()
    assert fake_grizzly.wait_for(lambda f: 301 in f.delivered_ids(), 30)
    time.sleep(2.5)  # two more retry periods: nothing is pushed after SUCCESS
    assert fake_grizzly.duplicates() == {}
    attempts = [e for e in audit_events(redis_url, 6001) if e["event"] == "push_attempt"]
    assert attempts[-1]["result"] == "success"
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert all(a["result"] != "success" for a in attempts[:-1])
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0


def test_sms_for_a_number_without_open_activation_is_kept_not_pushed(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 7001)
    produce_inbound(
        kafka_broker.bootstrap,
        topic_prefix + "inbound-messages",
        [inbound(401, OTHER, text="stray"), inbound(402, NUMBER)],
    )
    pusher()
    assert fake_grizzly.wait_for(lambda f: 402 in f.delivered_ids(), 30)
    assert fake_grizzly.pushes_for(401) == []
    entries = redis_call(redis_url, "XRANGE", "audit:unmatched", "-", "+")
    events = [json.loads(fields[b"event"]) for _id, fields in entries]
    assert [(e["sms_id"], e["number"], e["text"]) for e in events] == [(401, OTHER, "stray")]


def test_undecodable_record_is_parked_and_committed(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
    stack_env: dict[str, str],
) -> None:
    fake_pool.open(NUMBER, 8001)
    topic = topic_prefix + "inbound-messages"
    produce_inbound(kafka_broker.bootstrap, topic, [inbound(501, NUMBER)], raw=(b"{not json", b'{"v":1}'), partitions=1)
    process = pusher()
    assert fake_grizzly.wait_for(lambda f: 501 in f.delivered_ids(), 30)
    assert fake_grizzly.wait_for(lambda f: redis_call(redis_url, "XLEN", "pusher:parked") == 2, 10)
    parked = redis_call(redis_url, "XRANGE", "pusher:parked", "-", "+")
    assert [fields[b"raw"] for _id, fields in parked] == [
        b"{not json",
        b'{"v":1}',
    ]
    assert process.terminate() == 0
    # committed: a restarted pusher neither parks them again nor re-pushes
    pusher()
    time.sleep(3)
    assert redis_call(redis_url, "XLEN", "pusher:parked") == 2
    assert len(fake_grizzly.pushes_for(501)) == 1


def test_push_older_than_max_retry_age_is_parked_in_the_audit_trail(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 9001)
    fake_grizzly.mode = "error"
    pusher(PUSHER_MAX_RETRY_AGE_S="3")
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", [inbound(601, NUMBER)])

    def parked() -> bool:
        return any(e["event"] == "push_undeliverable" for e in audit_events(redis_url, 9001))

    assert fake_grizzly.wait_for(lambda f: parked(), 30)
    events = audit_events(redis_url, 9001)
    attempts = [e for e in events if e["event"] == "push_attempt"]
    assert len(attempts) >= 2 and all(a["result"] == "error" for a in attempts)
    undeliverable = next(e for e in events if e["event"] == "push_undeliverable")
    assert undeliverable["sms_id"] == 601 and undeliverable["attempts"] == len(attempts)
    count = len(fake_grizzly.pushes_for(601))
    time.sleep(2.5)
    assert len(fake_grizzly.pushes_for(601)) == count  # no more attempts
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0


def test_sms_that_reached_us_before_the_numbers_activation_was_opened_is_not_pushed_to_it(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    """After a pool outage or a Kafka backlog a number may belong to a newer activation than when its SMS came in:
    that SMS is kept as unmatched, never pushed to the new buyer."""
    now_ms = int(time.time() * 1000)
    fake_pool.open(NUMBER, 9301, created_ms=now_ms + 60_000)  # opened a minute after these SMS reached ingest
    fake_pool.open(OTHER, 9302, created_ms=now_ms - 60_000)
    pusher()
    produce_inbound(
        kafka_broker.bootstrap, topic_prefix + "inbound-messages", [inbound(751, NUMBER), inbound(752, OTHER)]
    )
    assert fake_grizzly.wait_for(lambda f: 752 in f.delivered_ids(), 20)
    assert fake_grizzly.wait_for(lambda f: redis_call(redis_url, "XLEN", "audit:unmatched") == 1, 10)
    assert fake_grizzly.pushes_for(751) == []


def test_sms_read_while_the_pool_is_down_is_looked_up_later_and_pushed_once(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 9101)
    fake_pool.open(OTHER, 9102)
    pusher()
    fake_pool.down = True
    produce_inbound(
        kafka_broker.bootstrap, topic_prefix + "inbound-messages", [inbound(701, NUMBER), inbound(702, OTHER)]
    )
    assert fake_grizzly.wait_for(lambda f: redis_call(redis_url, "ZCARD", "pusher:retry:due") == 2, 15)
    assert sorted(redis_call(redis_url, "ZRANGE", "pusher:retry:due", 0, -1)) == [b"?:701", b"?:702"]
    assert fake_grizzly.pushes == []
    fake_pool.down = False
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() >= {701, 702}, 15)
    time.sleep(1.5)
    assert fake_grizzly.duplicates() == {} and len(fake_grizzly.pushes) == 2
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0
    assert redis_call(redis_url, "HLEN", "pusher:retry:tasks") == 0
    assert redis_call(redis_url, "HLEN", "pusher:retry:owner") == 0


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
    # nothing left to retry for ever (a first attempt's entry goes with its outcome, just after the SUCCESS)
    assert fake_grizzly.wait_for(lambda f: redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0, 5)
