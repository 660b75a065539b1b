"""The pusher under failure: kill -9 (also during a platform outage), SIGTERM, two instances, a Kafka broker
restart, mid-burst.

Every SMS ends up delivered. After SIGTERM, with two pushers, across a broker restart, or after kill -9 during an
outage nothing is pushed again after SUCCESS, and no retry comes sooner than the retry delay. After kill -9 while
the platform answers SUCCESS the only possible re-push is an SMS whose SUCCESS arrived but whose ledger write did
not happen yet: at most the in-flight bound (PUSHER_CONCURRENCY); the number seen is reported.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grizzly_common.events import encode, number_key
from grizzly_common.kafka_client import ensure_topics, make_producer

from tests.integration.fake_grizzly import FakeGrizzly, FakePool, inbound, produce_inbound
from tests.integration.infra import Broker, LocalKafka, ServiceProcess, free_port

log = logging.getLogger(__name__)
CONCURRENCY = 32
BASE_NUMBER = 447700000000


def burst(fake_pool: FakePool, count: int, numbers: int = 200, first_id: int = 1) -> list[object]:
    """`count` SMS spread over `numbers` numbers, each with an open activation."""
    for n in range(numbers):
        fake_pool.open(BASE_NUMBER + n, 100_000 + n)
    return [inbound(first_id + i, BASE_NUMBER + i % numbers) for i in range(count)]


@pytest.fixture
def pusher(start_service: Callable[..., ServiceProcess], fake_pool: FakePool) -> Callable[..., ServiceProcess]:
    def start(**overrides: str) -> ServiceProcess:
        env = {
            "PUSHER_POOL_URL": fake_pool.url,
            "PUSHER_LEASE_S": "3",
            "UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S": "2",
            "PUSHER_CONCURRENCY": str(CONCURRENCY),
        }
        return start_service("pusher", **dict(env, **overrides))

    return start


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


def produce_paced(bootstrap: str, topic: str, messages: list[object], seconds: float) -> threading.Thread:
    """Publish `messages` evenly over `seconds` from a background thread (as SMS arrive from a farm)."""

    async def run() -> None:
        await ensure_topics(bootstrap, [topic], partitions=4)
        producer = make_producer(bootstrap, "pusher-test-paced")
        await producer.start()
        try:
            started = time.monotonic()
            for i, message in enumerate(messages):
                await asyncio.sleep(max(0.0, started + seconds * i / len(messages) - time.monotonic()))
                await producer.send(topic, encode(message), key=number_key(message.number))  # type: ignore[attr-defined]
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


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker this test may stop and start (never the shared one)."""
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()


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
