"""The pusher's durable state in Redis: the delivery ledger, push leases, and the retry schedule.

Keys:
  pusher:ledger:{upstream}:{smsId}  "delivered": written right after the platform answered SUCCESS (TTL ledger_ttl)
  pusher:lease:{upstream}:{smsId}   the push lease (SET NX PX): one pusher at a time attempts one push
  pusher:seen:{upstream}:{smsId}    the SMS was already recorded in the audit trail (TTL ledger_ttl)
  pusher:retry:due                  ZSET task id -> due time in ms (a claimed task: claim time + lease)
  pusher:retry:tasks                HASH task id -> PushTask JSON
  pusher:parked                     stream of Kafka records that could not be decoded (kept, never retried)
A task id is "{upstream}:{smsId}" (one entry per push), or "?:{smsId}" while the activation is not looked up yet.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from grizzly_common import audit
from grizzly_common.coalesce import Coalescer
from grizzly_common.events import PushTask, decode_task, encode
from grizzly_common.redis_client import load_lua

import grizzly_pusher.lua

DUE_KEY = "pusher:retry:due"
TASKS_KEY = "pusher:retry:tasks"
PARKED_KEY = "pusher:parked"
PARKED_MAXLEN = 100_000


def now_ms() -> int:
    return int(time.time() * 1000)


def task_id(upstream: str, sms_id: int) -> str:
    return f"{upstream or '?'}:{sms_id}"


def _key(kind: str, upstream: str, sms_id: int) -> str:
    return f"pusher:{kind}:{upstream}:{sms_id}"


@dataclass(frozen=True)
class Begin:
    delivered: bool  # the ledger says this smsId already reached this upstream
    leased: bool  # we hold the push lease (token)
    first_seen: bool  # never recorded in the audit trail before
    token: str


@dataclass(frozen=True)
class _BeginItem:
    upstream: str
    sms_id: int
    token: str
    activation_id: int
    event: bytes  # the "sms" audit event, written only when the push is first seen (b"" = none)


@dataclass(frozen=True)
class _SettleItem:
    upstream: str
    sms_id: int
    token: str  # our lease token ("" = none)
    ledger_value: bytes  # b"" = do not write the ledger (dropped or parked)
    activation_id: int
    event: bytes  # audit event written after the ledger (b"" = none)


@dataclass(frozen=True)
class Claimed:
    task_id: str
    task: PushTask | None  # None: the stored body no longer decodes (kept in the log, dropped from the schedule)
    raw: bytes


class PushStore:
    """Ledger checks, leases and settles of concurrent pushes are coalesced: one Lua call per batch, not per SMS."""

    def __init__(self, redis: aioredis.Redis, *, lease_s: float, ledger_ttl_s: int, max_batch: int = 256) -> None:
        self.redis = redis
        self.lease_ms = int(lease_s * 1000)
        self.ledger_ttl_s = ledger_ttl_s
        self._begin_many = redis.register_script(load_lua(grizzly_pusher.lua, "begin_many.lua"))
        self._settle_many = redis.register_script(load_lua(grizzly_pusher.lua, "settle_many.lua"))
        self._schedule = redis.register_script(load_lua(grizzly_pusher.lua, "schedule.lua"))
        self._claim = redis.register_script(load_lua(grizzly_pusher.lua, "claim.lua"))
        self._begins: Coalescer[_BeginItem, Begin] = Coalescer(self._begin_batch, max_batch=max_batch)
        self._settles: Coalescer[_SettleItem, None] = Coalescer(self._settle_batch, max_batch=max_batch)

    async def aclose(self) -> None:
        await self._begins.aclose()
        await self._settles.aclose()

    async def begin(self, upstream: str, sms_id: int, *, activation_id: int = 0, event: bytes = b"") -> Begin:
        """Already delivered? Take the push lease; first time seen? (then `event` goes to the activation's trail)."""
        return await self._begins(_BeginItem(upstream, sms_id, uuid.uuid4().hex, activation_id, event))

    async def _begin_batch(self, items: list[_BeginItem]) -> list[Begin]:
        keys: list[str] = []
        args: list[str | int | bytes] = [self.lease_ms, self.ledger_ttl_s, audit.DEFAULT_RETENTION_S]
        for item in items:
            keys += [
                _key("ledger", item.upstream, item.sms_id),
                _key("lease", item.upstream, item.sms_id),
                _key("seen", item.upstream, item.sms_id),
                audit.activation_key(item.activation_id),
            ]
            args += [item.token, item.event]
        flat = await self._begin_many(keys=keys, args=args)
        return [
            Begin(bool(flat[3 * i]), bool(flat[3 * i + 1]), bool(flat[3 * i + 2]), item.token)
            for i, item in enumerate(items)
        ]

    async def delivered(self, task: PushTask, token: str, *, event: bytes = b"") -> None:
        """The platform answered SUCCESS: never push this smsId to this upstream again (then `event` is audited)."""
        value = orjson.dumps({"ts_ms": now_ms(), "activation_id": task.activation_id, "attempt": task.attempt + 1})
        await self._settles(_SettleItem(task.upstream, task.message.sms_id, token, value, task.activation_id, event))

    async def drop(self, upstream: str, sms_id: int, token: str = "") -> None:
        """Remove the retry entry (already delivered, or parked) and release our lease; the ledger is untouched."""
        await self._settles(_SettleItem(upstream, sms_id, token, b"", 0, b""))

    async def _settle_batch(self, items: list[_SettleItem]) -> list[None]:
        keys: list[str] = [DUE_KEY, TASKS_KEY]
        args: list[str | int | bytes] = [self.ledger_ttl_s, audit.DEFAULT_RETENTION_S]
        for item in items:
            keys += [
                _key("ledger", item.upstream, item.sms_id),
                _key("lease", item.upstream, item.sms_id),
                audit.activation_key(item.activation_id),
            ]
            args += [item.token, item.ledger_value, task_id(item.upstream, item.sms_id), item.event]
        await self._settle_many(keys=keys, args=args)
        return [None] * len(items)

    async def schedule(self, task: PushTask, *, token: str = "", keep_existing: bool = False) -> None:
        """Durably schedule the task at task.not_before_ms, then release our lease (if token)."""
        keys = [DUE_KEY, TASKS_KEY, _key("lease", task.upstream, task.message.sms_id)]
        tid = task_id(task.upstream, task.message.sms_id)
        mode = "nx" if keep_existing else "set"
        await self._schedule(keys=keys, args=[tid, task.not_before_ms, encode(task), token, mode])

    async def claim(self, limit: int) -> list[Claimed]:
        flat = await self._claim(keys=[DUE_KEY, TASKS_KEY], args=[now_ms(), self.lease_ms, limit])
        claimed = []
        for i in range(0, len(flat), 2):
            tid = flat[i].decode() if isinstance(flat[i], bytes) else str(flat[i])
            raw = flat[i + 1]
            try:
                claimed.append(Claimed(tid, decode_task(raw), raw))
            except Exception:  # noqa: BLE001 - DecodeError: handled by the caller (parked)
                claimed.append(Claimed(tid, None, raw))
        return claimed

    async def forget(self, tid: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(DUE_KEY, tid)
            pipe.hdel(TASKS_KEY, tid)
            await pipe.execute()

    async def depth(self) -> int:
        return int(await self.redis.zcard(DUE_KEY))

    async def park_raw(self, raw: bytes, **fields: str | int) -> None:
        entry: dict[str | bytes, str | int | bytes] = {"raw": raw, **fields, "ts_ms": now_ms()}
        await self.redis.xadd(PARKED_KEY, entry, maxlen=PARKED_MAXLEN, approximate=True)  # type: ignore[arg-type]

    async def is_delivered(self, upstream: str, sms_id: int) -> bool:
        return bool(await self.redis.exists(_key("ledger", upstream, sms_id)))
