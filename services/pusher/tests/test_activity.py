"""The console's view (activity.py): masking, answers as text, each push's status from the pusher's own state, and
the per-minute counters staying bounded. Real Redis, no processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from grizzly_common.events import InboundMessage, PushTask
from grizzly_common.redis_client import make_redis
from grizzly_pusher import activity
from grizzly_pusher.activity import Activity, mask_key, minute_of, recent_sms
from grizzly_pusher.admin import masked_url
from grizzly_pusher.delivery import answer_text
from grizzly_pusher.store import PushStore, Status, now_ms
from msgspec.structs import replace
from redis.asyncio import Redis


def task_of(sms_id: int) -> PushTask:
    message = InboundMessage(
        kind="sms", sms_id=sms_id, number=447700900123, phone_from="Telegram", text="code 1", received_at_ms=1,
        ingested_at_ms=1, source="generic",
    )  # fmt: skip
    return PushTask(message=message, upstream="grizzly", activation_id=1, attempt=0, not_before_ms=0)


def run_with_store(redis_url: str, test: Callable[[Redis, PushStore], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = make_redis(redis_url)
        try:
            store = PushStore(redis, hold_s=30, ledger_ttl_s=3600, audit_retention_s=3600)
            await test(redis, store)
            await store.aclose()
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_a_key_is_never_shown_whole() -> None:
    assert mask_key("test-partner-key-0001") == "te...01"
    assert mask_key("short-key01") == "***" and mask_key("") == ""
    key = "secret-key-0123456789"
    text = answer_text(b'{"status":"ERROR","error":"bad key secret-key-0123456789"}\x00\xff' + b"x" * 500, key)
    assert key not in text and "se...89" in text and "\\x00\\xff" in text and len(text) == 200
    assert masked_url("https://u:pw@h.example:8443/p?token=abc&x=") == "https://u:***@h.example:8443/p?token=***&x=***"
    assert masked_url("http://127.0.0.1:9/agent/api/sms") == "http://127.0.0.1:9/agent/api/sms"


def test_status_comes_from_the_ledger_the_schedule_and_the_parked_index(redis_url: str) -> None:
    async def test(redis: Redis, store: PushStore) -> None:
        log = Activity(redis, sms_log_max=100, ttl_s=3600)
        tasks = [task_of(sms_id) for sms_id in (1, 2, 3, 4, 5)]
        begins = [await store.begin(task) for task in tasks]
        assert all(b.status is Status.OWNER and b.first_seen for b in begins)
        await redis.xadd(activity.SMS_LOG_KEY, {"e": b'{"sms_id": 7}'})  # not ours: skipped, never a 500
        for task in tasks:
            log.sms(task)
        await log.flush()
        await store.delivered(tasks[1], begins[1].token)  # 2: pushed
        later = replace(tasks[2], attempt=1, not_before_ms=now_ms() + 60_000)
        await store.reschedule(later, begins[2].token)  # 3: failed once, waiting
        await store.park_raw(b"{}", task_id="grizzly:4", reason="max_retry_age", error="x")
        await store.done(tasks[3], begins[3].token)  # 4: parked
        await store.done(tasks[4], begins[4].token)  # 5: no trace anywhere (its owner died): pending
        found = {e["sms_id"]: (e["status"], e["attempts"]) for e in await recent_sms(redis, count=10)}
        assert found == {1: ("pending", 0), 2: ("pushed", 1), 3: ("retrying", 1), 4: ("parked", 0), 5: ("pending", 0)}
        assert [e["sms_id"] for e in await recent_sms(redis, count=2)] == [5, 4]  # newest first
        assert [e["sms_id"] for e in await recent_sms(redis, count=10, status="pending")] == [5, 1]
        queue = await activity.queue(redis, count=10)
        assert [(e["task_id"], e["in_flight"]) for e in queue["entries"]] == [("grizzly:1", True), ("grizzly:3", False)]

    run_with_store(redis_url, test)


def test_minute_counters_keep_only_the_last_hours(redis_url: str) -> None:
    async def run() -> None:
        redis = make_redis(redis_url)
        try:
            minute = minute_of(now_ms())
            stale = {f"{m}:s": 1 for m in range(minute - 179, minute - 60)}
            await redis.hset(activity.MINUTES_KEY, mapping=stale | {f"{minute - 30}:o": 7})  # type: ignore[arg-type]
            log = Activity(redis, sms_log_max=10, ttl_s=60)
            log.sms(task_of(9))
            log.answer("grizzly", 9, ok=False, result="timeout", http_status=None, answer="no answer within 1s")
            await log.flush()
            fields = sorted(k.decode() if isinstance(k, bytes) else k for k in await redis.hkeys(activity.MINUTES_KEY))
            assert fields == sorted([f"{minute - 30}:o", f"{minute}:s", f"{minute}:f"])
            assert 0 < await redis.ttl(activity.MINUTES_KEY) <= 60  # never longer than the ledger's TTL
            stats = await activity.stats(redis)
            assert stats["pushes_1h"] == {"ok": 7, "failed": 1} and stats["success_rate_1h"] == 0.875
            assert stats["sms_per_minute"][-1] == [minute * 60_000, 1]
        finally:
            await redis.aclose()

    asyncio.run(run())
