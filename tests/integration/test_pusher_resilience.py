"""The pusher under failure: kill -9 (also during a platform outage), SIGTERM, two instances, a Kafka broker
restart, mid-burst.

Every SMS ends up delivered. After SIGTERM, with two pushers, across a broker restart, or after kill -9 during an
outage nothing is pushed again after SUCCESS, and no retry comes sooner than the retry delay. After kill -9 while
the platform answers SUCCESS the only possible re-push is an SMS whose SUCCESS arrived but whose ledger write did
not happen yet: at most the in-flight bound (PUSHER_CONCURRENCY); the number seen is reported.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from grizzly_common.events import InboundMessage, PushTask, encode, number_key
from grizzly_common.kafka_client import ensure_topics, make_producer
from grizzly_testkit.infra import Broker, LocalKafka, LocalRedis, ServiceProcess, free_port

from tests.integration.fake_grizzly import FakeGrizzly, FakePool, inbound, produce_inbound

log = logging.getLogger(__name__)
CONCURRENCY = 32
BASE_NUMBER = 447700000000


def burst(fake_pool: FakePool, count: int, numbers: int = 200, first_id: int = 1) -> list[InboundMessage]:
    """`count` SMS spread over `numbers` numbers, each with an open activation."""
    for n in range(numbers):
        fake_pool.open(BASE_NUMBER + n, 100_000 + n)
    return [inbound(first_id + i, BASE_NUMBER + i % numbers) for i in range(count)]


@pytest.fixture
def pusher(start_pusher: Callable[..., ServiceProcess]) -> Callable[..., ServiceProcess]:
    return functools.partial(
        start_pusher, PUSHER_LEASE_S="3", UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S="2", PUSHER_CONCURRENCY=str(CONCURRENCY)
    )


def report(name: str, value: object) -> None:
    sys.stderr.write(f"\n[pusher-resilience] {name}: {value}\n")
    log.warning("%s: %s", name, value)


@pytest.mark.slow
def test_kill_9_mid_burst_delivers_everything_with_bounded_duplicates(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    record_property: Callable[[str, object], None],
) -> None:
    messages = burst(fake_pool, 3000)
    fake_grizzly.delay_s = 0.005
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages)
    process = pusher()
    assert fake_grizzly.wait_for(lambda f: len(f.successes()) >= 800, 60)
    process.kill()
    pusher()
    expected = set(range(1, 3001))
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() >= expected, 60), len(fake_grizzly.delivered_ids())
    duplicates = fake_grizzly.duplicates()
    extra = sum(n - 1 for n in duplicates.values())
    record_property("duplicates_after_success", extra)
    report("kill -9: re-pushes after SUCCESS", extra)
    assert extra <= CONCURRENCY


def produce_paced(bootstrap: str, topic: str, messages: list[InboundMessage], seconds: float) -> threading.Thread:
    """Publish `messages` evenly over `seconds` from a background thread (as SMS arrive from a farm)."""

    async def run() -> None:
        await ensure_topics(bootstrap, [topic], partitions=4)
        producer = make_producer(bootstrap, "pusher-test-paced")
        await producer.start()
        try:
            started = time.monotonic()
            for i, message in enumerate(messages):
                await asyncio.sleep(max(0.0, started + seconds * i / len(messages) - time.monotonic()))
                await producer.send(topic, encode(message), key=number_key(message.number))
            await producer.flush()
        finally:
            await producer.stop()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    return thread


def retry_gaps(fake: FakeGrizzly) -> list[float]:
    """Seconds between consecutive pushes of the same smsId, for every smsId pushed more than once."""
    by_id: dict[object, list[float]] = {}
    for push in fake.pushes:
        by_id.setdefault(push.id, []).append(push.at)
    return [b - a for times in by_id.values() for a, b in itertools.pairwise(sorted(times))]


@pytest.mark.slow
def test_kill_9_during_a_platform_outage_never_pushes_after_success_nor_retries_early(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    record_property: Callable[[str, object], None],
) -> None:
    """20 open activations, the platform failing every push for 22 s, 3,000 SMS at concurrency 16, the only pusher
    killed 7 s in and started again 2.5 s later: each SMS has one owner, so nothing is pushed again after SUCCESS and
    no retry comes sooner than the retry delay (10 s, as the protocol says)."""
    messages = burst(fake_pool, 3000, numbers=20)
    fake_grizzly.fail_for(22.0)
    overrides = {"PUSHER_CONCURRENCY": "16", "PUSHER_RETRY_S": "10", "PUSHER_LEASE_S": "12"}
    process = pusher(**overrides)
    producing = produce_paced(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages, 12.0)
    time.sleep(7.0)
    process.kill()
    time.sleep(2.5)
    pusher(**overrides)
    producing.join(30)
    expected = set(range(1, 3001))
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() >= expected, 120), len(fake_grizzly.delivered_ids())
    time.sleep(2.0)  # anything still on its way would show up as a push after SUCCESS
    gaps = retry_gaps(fake_grizzly)
    after_success = sum(n - 1 for n in fake_grizzly.duplicates().values())
    record_property("pushes_after_success", after_success)
    record_property("shortest_retry_gap_s", round(min(gaps), 2))
    report("kill -9 during an outage: pushes after SUCCESS", after_success)
    report("kill -9 during an outage: retries, shortest gap", f"{len(gaps)}, {min(gaps):.2f} s")
    assert after_success == 0
    assert min(gaps) >= 9.0


@pytest.mark.slow
def test_sigterm_mid_burst_hands_back_and_pushes_nothing_twice(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
) -> None:
    messages = burst(fake_pool, 3000)
    fake_grizzly.delay_s = 0.005
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages)
    process = pusher()
    assert fake_grizzly.wait_for(lambda f: len(f.successes()) >= 800, 60)
    assert process.terminate() == 0
    delivered_before = len(fake_grizzly.delivered_ids())
    assert delivered_before < 3000  # really stopped mid-burst
    pusher()
    assert fake_grizzly.wait_for(lambda f: len(f.delivered_ids()) == 3000, 60), len(fake_grizzly.delivered_ids())
    assert fake_grizzly.duplicates() == {}


@pytest.mark.slow
def test_two_pushers_in_one_group_deliver_everything_once(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
) -> None:
    messages = burst(fake_pool, 2000)
    fake_grizzly.delay_s = 0.003
    fake_grizzly.fail_for(2.0)  # some pushes go through the shared retry schedule too
    first = pusher()
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages, partitions=12)
    second = pusher(PUSHER_PORT=str(free_port()))  # joins mid-burst: a rebalance while pushing
    assert fake_grizzly.wait_for(lambda f: len(f.delivered_ids()) == 2000, 60), len(fake_grizzly.delivered_ids())
    assert fake_grizzly.duplicates() == {}
    assert second.terminate() == 0 and first.terminate() == 0


@pytest.mark.slow
def test_kafka_broker_restart_mid_burst_loses_nothing(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    own_broker: LocalKafka,
    topic_prefix: str,
) -> None:
    topic = topic_prefix + "inbound-messages"
    fake_grizzly.delay_s = 0.01
    produce_inbound(own_broker.bootstrap, topic, burst(fake_pool, 1000))
    pusher(KAFKA_BOOTSTRAP=own_broker.bootstrap)
    assert fake_grizzly.wait_for(lambda f: len(f.successes()) >= 200, 60)
    own_broker.stop()
    own_broker.start()
    produce_inbound(own_broker.bootstrap, topic, burst(fake_pool, 500, first_id=1001))
    assert fake_grizzly.wait_for(lambda f: len(f.delivered_ids()) == 1500, 90), len(fake_grizzly.delivered_ids())
    assert fake_grizzly.duplicates() == {}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A Redis this test may kill and start again, persisted as production runs it (AOF, appendfsync always)."""
    server = LocalRedis(tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_redis_killed_and_restarted_under_load_loses_no_sms_and_repeats_none(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    own_redis: LocalRedis,
) -> None:
    """Redis holds the only copy of the retry schedule and the ledger: killed (kill -9) while pushes succeed and
    fail and retries are due, then started again from its append-only file, it has lost none of them."""
    messages = burst(fake_pool, 2000, numbers=50)
    fake_grizzly.fail_for(8.0)  # the first seconds' pushes wait in the retry schedule
    pusher(REDIS_URL=own_redis.url, PUSHER_RETRY_S="2", PUSHER_LEASE_S="12")
    producing = produce_paced(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages, 10.0)
    time.sleep(5.0)
    own_redis.kill()
    time.sleep(1.5)
    own_redis.start()
    time.sleep(5.0)  # the platform answers again meanwhile: successes while the pusher reconnects
    own_redis.kill()
    own_redis.start()
    producing.join(30)
    expected = set(range(1, 2001))
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() >= expected, 90), len(fake_grizzly.delivered_ids())
    time.sleep(2.0)
    after_success = sum(n - 1 for n in fake_grizzly.duplicates().values())
    report("Redis kill -9 and restart twice under load: pushes after SUCCESS", after_success)
    assert after_success == 0


def test_record_read_again_after_a_crash_leaves_the_push_to_its_retry_entry(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    """What a pusher killed after scheduling a retry and before committing leaves behind: the record, uncommitted,
    and its push's retry entry, due. The restarted pusher must push it once per retry delay, not once for the entry
    and again for the record read again (two owners)."""
    fake_pool.open(BASE_NUMBER, 700)
    fake_grizzly.mode = "error"
    message = inbound(7, BASE_NUMBER)
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", [message])
    due = PushTask(message=message, upstream="grizzly", activation_id=700, attempt=1, not_before_ms=0)
    client = redis_sync.Redis.from_url(redis_url)
    client.zadd("pusher:retry:due", {"grizzly:7": 0})
    client.hset("pusher:retry:tasks", "grizzly:7", encode(due))
    client.close()
    pusher(PUSHER_RETRY_S="10", PUSHER_LEASE_S="12")
    assert fake_grizzly.wait_for(lambda f: len(f.pushes_for(7)) >= 1, 10)
    fake_grizzly.wait_for(lambda f: len(f.pushes_for(7)) >= 2, 12)  # the consumer re-reads the record meanwhile
    gaps = retry_gaps(fake_grizzly)
    assert gaps and min(gaps) >= 9.0, gaps
