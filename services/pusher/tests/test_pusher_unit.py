"""Pusher pieces without processes: request bodies, reply classification, settings, and the Redis scripts."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
from collections.abc import Awaitable, Callable
from email.parser import BytesParser
from email.policy import HTTP

import orjson
import pytest
import redis.exceptions
from grizzly_common.events import InboundMessage, PushTask
from grizzly_common.pool_client import PoolUnavailable
from grizzly_common.redis_client import make_redis
from grizzly_common.settings import SettingsError, Upstream
from grizzly_pusher.delivery import build_request, classify, is_transient
from grizzly_pusher.settings import Settings
from grizzly_pusher.store import DUE_KEY, OWNER_KEY, TASKS_KEY, PushStore, Status, now_ms
from redis.asyncio import Redis

KEY = "unit-test-partner-key"
UPSTREAM = Upstream(
    name="grizzly", key=KEY, push_url="http://127.0.0.1:1/x", user_agent="ua/1", gzip=False, push_timeout_s=5
)


def message(kind: str = "sms", **fields: object) -> InboundMessage:
    values: dict[str, object] = dict(
        sms_id=42,
        number=447700900123,
        phone_from="Telegram",
        text="code 1",
        received_at_ms=1,
        ingested_at_ms=1,
        source="generic",
    )
    values.update(fields)
    return InboundMessage(kind=kind, **values)  # type: ignore[arg-type]


def test_push_sms_body_has_numbers_as_json_numbers_and_the_user_agent() -> None:
    body, headers = build_request(UPSTREAM, message())
    assert orjson.loads(body) == {
        "action": "PUSH_SMS",
        "key": KEY,
        "smsId": 42,
        "phone": 447700900123,
        "phoneFrom": "Telegram",
        "text": "code 1",
    }
    assert headers == {"User-Agent": "ua/1", "Content-Type": "application/json"}


def test_push_call_body() -> None:
    body, _ = build_request(UPSTREAM, message("call"))
    assert orjson.loads(body) == {
        "action": "PUSH_CALL",
        "key": KEY,
        "callId": 42,
        "phone": 447700900123,
        "phoneFrom": "Telegram",
    }


def test_gzip_upstream_gets_a_gzip_body() -> None:
    upstream = Upstream(**{**UPSTREAM.__dict__, "gzip": True})
    body, headers = build_request(upstream, message())
    assert headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(body))["smsId"] == 42


def test_push_call_record_is_multipart_with_the_file() -> None:
    audio = b"\x00\x01wav-bytes\r\n--not-a-boundary"
    body, headers = build_request(
        UPSTREAM, message("call_record", recording_b64=base64.b64encode(audio).decode(), recording_type="audio/wav")
    )
    parsed = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body)
    parts = {p.get_param("name", header="content-disposition"): p for p in parsed.iter_parts()}
    assert set(parts) == {"action", "key", "callId", "phone", "phoneFrom", "text", "file"}
    assert parts["action"].get_payload(decode=True) == b"PUSH_CALL_RECORD"
    assert parts["callId"].get_payload(decode=True) == b"42"
    assert parts["file"].get_payload(decode=True) == audio
    assert parts["file"].get_content_type() == "audio/wav"


@pytest.mark.parametrize(
    ("status", "reply", "result"),
    [
        (200, b'{"status":"SUCCESS"}', "success"),
        (200, b'{"status":"ERROR","error":"no activation"}', "error"),
        (200, b"<html>maintenance</html>", "garbage"),
        (200, b"[1,2]", "garbage"),
        (500, b'{"status":"SUCCESS"}', "http_error"),
        (200, b'{"status":"success"}', "error"),
    ],
)
def test_only_status_success_counts(status: int, reply: bytes, result: str) -> None:
    assert classify(status, reply).result == result


def test_settings_defaults_and_errors_name_the_variable() -> None:
    env = {"UPSTREAM_GRIZZLY_KEY": KEY, "POOL_API_TOKEN": "pusher-unit-pool-token"}
    settings = Settings.from_env(env)
    assert "pusher-unit-pool-token" not in repr(settings)
    assert (settings.retry_s, settings.concurrency, settings.group_id) == (10.0, 64, "grizzly-pusher")
    assert settings.ledger_ttl_s == 30 * 86400 and settings.max_retry_age_s == 86400
    assert KEY not in repr(settings)
    with pytest.raises(SettingsError, match="PUSHER_CONCURRENCY"):
        Settings.from_env({**env, "PUSHER_CONCURRENCY": "many"})
    with pytest.raises(SettingsError, match="PUSHER_LEASE_S"):
        Settings.from_env({**env, "PUSHER_LEASE_S": "2", "UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S": "5"})


def task_of(sms_id: int, attempt: int = 0, not_before_ms: int = 0) -> PushTask:
    return PushTask(
        message=message(sms_id=sms_id),
        upstream="grizzly",
        activation_id=1,
        attempt=attempt,
        not_before_ms=not_before_ms,
    )


def run_with_store(redis_url: str, test: Callable[[Redis, PushStore], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = make_redis(redis_url)
        try:
            store = PushStore(redis, hold_s=0.3, ledger_ttl_s=3600, audit_retention_s=3600)
            await test(redis, store)
            await store.aclose()
        finally:
            await redis.aclose()  # make_redis: the client owns its pool and closes it

    asyncio.run(run())


def test_store_one_fenced_owner_per_push(redis_url: str) -> None:
    async def test(redis: Redis, store: PushStore) -> None:
        task = task_of(7)
        first = await store.begin(task)  # the first attempt, from Kafka
        assert (first.status, first.first_seen) == (Status.OWNER, True)
        replay = await store.begin(task)  # the record read again after a crash: the push has its owner
        assert (replay.status, replay.first_seen) == (Status.OWNED_ELSEWHERE, False)
        assert await store.offer(task, create=False)  # the replayed record's body makes the entry complete

        failed = task_of(7, attempt=1, not_before_ms=1)
        assert await store.reschedule(failed, first.token)  # failed: durable, ownership released
        await redis.script_flush()  # scripts come back after a cache flush (EVALSHA -> NOSCRIPT -> load)
        [claimed] = await store.claim(10)
        assert (claimed.task_id, claimed.task) == ("grizzly:7", failed)
        assert await store.claim(10) == []  # held: not due again until the hold runs out
        assert (await store.begin(task)).status is Status.OWNED_ELSEWHERE

        await asyncio.sleep(0.4)
        [again] = await store.claim(10)  # the first claimer died (or stalled): taken over
        assert again.token != claimed.token
        assert (await store.begin(failed, token=claimed.token)).status is Status.LOST
        assert not await store.reschedule(failed, claimed.token)  # fenced: the old owner's write changes nothing
        assert (await redis.zscore(DUE_KEY, "grizzly:7") or 0) > now_ms()  # still held by the new owner

        assert (await store.begin(failed, token=again.token)).status is Status.OWNER
        assert await store.delivered(failed, again.token)
        assert await redis.zcard(DUE_KEY) == 0 and await redis.hlen(TASKS_KEY) == 0 and await redis.hlen(OWNER_KEY) == 0
        assert (await store.begin(task)).status is Status.DELIVERED  # never pushed again
        assert (await store.begin(failed, token=again.token)).status is Status.DELIVERED

    run_with_store(redis_url, test)


def test_store_owner_that_died_mid_push_leaves_nothing_behind(redis_url: str) -> None:
    async def test(redis: Redis, store: PushStore) -> None:
        await store.begin(task_of(8))  # first attempt in flight, no body stored: its Kafka record is uncommitted
        await asyncio.sleep(0.4)
        assert await store.claim(10) == []  # the record comes back from Kafka: the empty entry is dropped
        assert await redis.zcard(DUE_KEY) == 0 and await redis.hlen(OWNER_KEY) == 0
        assert (await store.begin(task_of(8))).status is Status.OWNER  # the re-read record owns it now

    run_with_store(redis_url, test)


def test_store_owner_whose_hold_ran_out_still_never_loses_a_push(redis_url: str) -> None:
    async def test(redis: Redis, store: PushStore) -> None:
        begin = await store.begin(task_of(9))
        await asyncio.sleep(0.4)  # e.g. Redis away for longer than the hold
        assert await store.claim(10) == []  # the empty entry is dropped
        assert not await store.reschedule(task_of(9, attempt=1, not_before_ms=1), begin.token)  # no longer the owner
        [claimed] = await store.claim(10)  # ... but the failed push is in the schedule all the same
        assert claimed.task == task_of(9, attempt=1, not_before_ms=1)

    run_with_store(redis_url, test)


def test_a_claimed_attempt_renews_its_hold_when_it_begins(redis_url: str) -> None:
    async def test(redis: Redis, store: PushStore) -> None:
        await store.offer(task_of(10), create=True)
        [claimed] = await store.claim(10)
        await asyncio.sleep(0.2)  # e.g. waiting for a free push slot
        assert (await store.begin(claimed.task or task_of(10), token=claimed.token)).status is Status.OWNER
        await asyncio.sleep(0.2)  # past the claim's hold, within the renewed one
        assert await store.claim(10) == []

    run_with_store(redis_url, test)


def test_a_record_read_again_after_its_empty_entry_was_dropped_still_leaves_an_entry(redis_url: str) -> None:
    async def test(redis: Redis, store: PushStore) -> None:
        assert (await store.begin(task_of(11))).status is Status.OWNER  # then the pusher dies mid-push
        assert (await store.begin(task_of(11))).status is Status.OWNED_ELSEWHERE  # its record, read again
        await asyncio.sleep(0.4)
        assert await store.claim(10) == []  # the dead owner's empty entry is dropped meanwhile
        assert await store.offer(task_of(11, not_before_ms=1), create=True)  # what the re-read record then does
        [claimed] = await store.claim(10)
        assert claimed.task == task_of(11, not_before_ms=1)

    run_with_store(redis_url, test)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (redis.exceptions.ConnectionError("gone"), True),
        (redis.exceptions.BusyLoadingError("loading"), True),
        (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"), True),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.exceptions.ResponseError("MISCONF Errors writing to the AOF file"), True),
        (OSError("reset"), True),
        (TimeoutError(), True),
        (PoolUnavailable(), True),
        (redis.exceptions.DataError("Invalid input of type: 'NoneType'"), False),
        (binascii.Error("Incorrect padding"), False),
        (orjson.JSONEncodeError("str is not valid UTF-8: surrogates not allowed"), False),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), False),
    ],
)
def test_only_failures_of_the_record_itself_are_parked(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_the_ledger_outlives_every_retry() -> None:
    env = {"UPSTREAM_GRIZZLY_KEY": KEY, "POOL_API_TOKEN": "pusher-unit-pool-token", "PUSHER_LEDGER_TTL_S": "3600",
           "PUSHER_MAX_RETRY_AGE_S": "7200"}  # fmt: skip
    with pytest.raises(SettingsError, match="PUSHER_LEDGER_TTL_S"):
        Settings.from_env(env)


def test_due_times_and_holds_come_from_the_redis_clock(redis_url: str) -> None:
    """Pushers on hosts whose clocks differ still agree: they hand Redis a delay, Redis adds its own time."""

    async def test(redis: Redis, store: PushStore) -> None:
        seconds, micros = await redis.time()
        redis_now = seconds * 1000 + micros // 1000
        await store.offer(task_of(12, not_before_ms=now_ms() + 100_000), create=True)
        due = await redis.zscore(DUE_KEY, "grizzly:12") or 0
        assert abs(due - (redis_now + 100_000)) < 1000
        await store.begin(task_of(13))
        held = await redis.zscore(DUE_KEY, "grizzly:13") or 0
        assert abs(held - (redis_now + store.hold_ms)) < 1000

    run_with_store(redis_url, test)


def test_an_audit_trail_that_is_not_a_list_never_stops_a_push(redis_url: str) -> None:
    """The trail serves disputes; a key in its place that is not a list (written by something else) is skipped,
    and the pushes sharing the Lua call with it go on."""

    async def test(redis: Redis, store: PushStore) -> None:
        await redis.set("audit:act:1", "not a list")
        other = PushTask(message=message(sms_id=15), upstream="grizzly", activation_id=2, attempt=0, not_before_ms=0)
        first, second = await asyncio.gather(
            store.begin(task_of(14), event=b'{"event":"sms"}'), store.begin(other, event=b'{"event":"sms"}')
        )
        assert (first.status, second.status) == (Status.OWNER, Status.OWNER)
        assert await store.delivered(task_of(14), first.token, event=b'{"event":"push_attempt"}')
        assert await redis.get("audit:act:1") == b"not a list"
        assert await redis.llen("audit:act:2") == 1

    run_with_store(redis_url, test)
