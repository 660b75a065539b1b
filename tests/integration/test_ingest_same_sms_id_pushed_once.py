"""Why a second record with the same smsId is harmless: the pusher pushes each smsId once.

The ingest avoids the second record where it can (a retry waits for the send still in flight). It can remain when
the retry reaches another ingest instance while the first send is still queued, or when the producer reported a
send failed that the broker had in fact written. Real Kafka, Redis and pusher; FakeGrizzly counts the SUCCESSes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from grizzly_testkit.infra import Broker, ServiceProcess

from tests.integration.fake_grizzly import FakeGrizzly, FakePool, inbound, produce_inbound

NUMBER = 447700900123


def test_two_records_with_one_sms_id_are_pushed_once(
    start_service: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
) -> None:
    fake_pool.open(NUMBER, 7001)
    record = inbound(7101, NUMBER, text="Telegram code: 51920")
    later = inbound(7102, NUMBER, text="another SMS")
    # the send a request gave up on, then the retry's own record, then the next SMS
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", [record, record, later])
    start_service("pusher", PUSHER_POOL_URL=fake_pool.url, UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S="1")
    assert fake_grizzly.wait_for(lambda f: {7101, 7102} <= f.delivered_ids(), 30)
    time.sleep(2)  # two retry periods (PUSHER_RETRY_S=1): nothing more is pushed
    assert fake_grizzly.success_counts()[7101] == 1 and fake_grizzly.duplicates() == {}
