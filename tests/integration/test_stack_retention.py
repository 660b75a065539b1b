"""Months of activations in a few seconds: with a short retention, Redis returns to its baseline.

Every service's per-event keys (finished activations and their audit trail, ingest fingerprints, the pusher's
ledger and seen marks, claims and their settlement) expire after the retention; open activations and per-number
state stay. Real Redis and Kafka, all four services, the fake platform answering every push.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis as redis_sync
from grizzly_testkit.infra import ServiceProcess

from tests.integration.fake_grizzly import FakeGrizzly
from tests.integration.fixtures import UPSTREAM_KEY

NUMBERS = [447700910000 + i for i in range(40)]
CYCLES = 120
RETENTION_S = 4


# state of the farm, not of events: a number's history (which services it was sold or cancelled for) and health, a
# group's blocked counters and count terms, the day's earnings (kept POOL_EARNINGS_DAYS), id counters
STATE = ("gp:hist:", "gp:sh:", "gp:suspects", "gp:bf:", "gp:cs:", "gp:ca:", "gp:earn:", "gp:actid", "ingest:next-id")


def keys_of(client: redis_sync.Redis) -> set[str]:
    return {key.decode() for key in client.scan_iter(count=1000)}


def test_redis_returns_to_its_baseline_after_the_retention(
    start_service: Callable[..., ServiceProcess],
    stack_env: dict[str, str],
    fake_grizzly: FakeGrizzly,
    redis_url: str,
) -> None:
    retention = {
        "AUDIT_RETENTION_DAYS": str(RETENTION_S / 86400),
        "PUSHER_LEDGER_TTL_S": str(RETENTION_S),
        "PUSHER_MAX_RETRY_AGE_S": str(RETENTION_S),  # the ledger must outlive the retries
        "POOL_CLAIM_HOLD_S": "2",  # a claim's own key lives twice the hold
        "POOL_CANCEL_LIMIT": "1000000",  # every cycle cancels: no number gets blocked for tg
        "INGEST_DEDUPE_NO_TS_TTL_S": "2",  # a fingerprint of an SMS without the source's clock (default 2 min)
    }
    start_service("pool", **retention)
    edge = start_service("edge", **retention)
    ingest = start_service("ingest", **retention)
    start_service("pusher", **retention)
    client = redis_sync.Redis.from_url(redis_url)
    partner = httpx.Client(base_url=f"http://127.0.0.1:{edge.port}", timeout=10)
    source = httpx.Client(
        base_url=f"http://127.0.0.1:{ingest.port}",
        headers={"Authorization": f"Bearer {stack_env['INGEST_TOKEN']}"},
        timeout=10,
    )

    def call(**body: Any) -> dict[str, Any]:
        reply = partner.post("/GrizzlySMS.php", json={"key": UPSTREAM_KEY, **body})
        assert reply.status_code == 200
        return reply.json()  # type: ignore[no-any-return]

    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}",
        headers={"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"},
        timeout=10,
    ) as admin:
        rows = [
            {"number": n, "country": "16", "operator": "vodafone", "device": "bank-1", "slot": i}
            for i, n in enumerate(NUMBERS)
        ]
        assert admin.post("/admin/numbers", json={"numbers": rows}).status_code == 200
    open_activation = call(action="GET_NUMBER", country="16", operator="any", service="wa", sum=1)["activationId"]
    open_keys = {f"gp:act:{open_activation}", f"audit:act:{open_activation}"}

    def cycles(count: int, first: int) -> None:
        for cycle in range(first, first + count):
            issued = call(action="GET_NUMBER", country="16", operator="any", service="tg", sum=0.5)
            assert issued["status"] == "SUCCESS", issued
            sms = source.post(
                "/v1/sms", json={"number": issued["number"], "from": "Telegram", "text": f"code {cycle:05d}"}
            )
            assert sms.status_code == 200, sms.text
            sms_id = sms.json()["smsId"]
            assert fake_grizzly.wait_for(lambda f, i=sms_id: i in f.delivered_ids(), 15)
            finished = call(action="FINISH_ACTIVATION", activationId=issued["activationId"], status=4)
            assert finished == {"status": "SUCCESS"}

    def settled(baseline: set[str]) -> list[str]:
        """Per-event keys beyond `baseline`, once the retention has passed (or what is still there after 20 s)."""
        deadline = time.monotonic() + RETENTION_S + 20
        while True:
            extra = sorted(k for k in keys_of(client) - baseline - open_keys if not k.startswith(STATE))
            if not extra or time.monotonic() > deadline:
                return extra
            time.sleep(0.5)

    # the baseline: every script loaded, every number's history started, the warm-up's own keys gone
    inventory = keys_of(client)
    cycles(len(NUMBERS), 0)
    assert settled(inventory) == []
    baseline_keys = keys_of(client)
    baseline_memory = int(client.info("memory")["used_memory"])

    cycles(CYCLES, len(NUMBERS))
    peak_keys = keys_of(client)
    peak_memory = int(client.info("memory")["used_memory"])

    left = settled(baseline_keys)
    memory = int(client.info("memory")["used_memory"])
    keys_of_after = keys_of(client)
    still_open = open_keys <= keys_of_after
    partner.close()
    source.close()
    client.close()
    assert left == [], left
    assert still_open, "an open activation and its trail never expire"
    assert len(peak_keys) > len(baseline_keys) + CYCLES  # the cycles did leave keys behind, for a while
    sys.stderr.write(
        f"\n[retention] {CYCLES} cycles: keys {len(baseline_keys)} -> {len(peak_keys)} -> {len(keys_of_after)}, "
        f"used_memory {baseline_memory} -> {peak_memory} -> {memory}\n"
    )
    # what is left above the baseline: per-number state the cycles changed, allocator slack
    assert memory - baseline_memory < (peak_memory - baseline_memory) / 4, (baseline_memory, peak_memory, memory)
