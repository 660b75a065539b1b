"""The pusher under failure: kill -9, SIGTERM, two instances, a Kafka broker restart, mid-burst.

Every SMS ends up delivered. After SIGTERM, with two pushers, or across a broker restart nothing is pushed again
after SUCCESS. After kill -9 the only possible re-push is an SMS whose SUCCESS arrived but whose ledger write did
not happen yet: at most the in-flight bound (PUSHER_CONCURRENCY); the number seen is reported.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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


def report(name: str, value: int) -> None:
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
