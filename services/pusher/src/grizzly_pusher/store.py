"""The pusher's durable state in Redis: the delivery ledger and the retry schedule, which names each push's owner.

A push (one smsId to one upstream) has at most one owner at a time, fenced by a token: the first attempt's pusher
(begin, mode "new") or whoever claimed it from the schedule (claim). Only the owner's outcome changes the push's
entry; an owner whose hold ran out (it died, or Redis was away for longer than the hold) has lost it, and another
pusher takes it over once the entry is due. A Kafka record read again after a crash finds the entry and leaves the
push to its owner. The ledger is checked at every begin, so nothing is pushed again after a SUCCESS except when a
pusher dies between the platform's SUCCESS and its ledger write.

Keys:
  pusher:ledger:{upstream}:{smsId}  "delivered": written right after the platform answered SUCCESS (TTL ledger_ttl)
  pusher:seen:{upstream}:{smsId}    the SMS was already recorded in the audit trail (TTL ledger_ttl)
  pusher:retry:due                  ZSET task id -> when the next attempt is due, or when the owner's hold ends (ms)
  pusher:retry:tasks                HASH task id -> PushTask JSON (no body while a first attempt is in flight)
  pusher:retry:owner                HASH task id -> the owner's token, while someone owns the push
  pusher:parked                     stream of records and tasks that can never be pushed (kept, never retried)
  pusher:parked:tasks               ZSET task id -> when it was parked (at most PARKED_MAXLEN; best effort): which
                                    pushes are parked, for the console's SMS log (activity.py)
A task id is "{upstream}:{smsId}" (one entry per push), or "?:{smsId}" while the activation is not looked up yet.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import IntEnum

import orjson
import redis.asyncio as aioredis
from grizzly_common import audit
from grizzly_common.coalesce import Coalescer
from grizzly_common.errors import DecodeError
from grizzly_common.events import PushTask, decode_task, encode
from grizzly_common.redis_client import NOW_MS_FUNCTION, load_lua

import grizzly_pusher.lua
from grizzly_pusher import metrics

DUE_KEY = "pusher:retry:due"
TASKS_KEY = "pusher:retry:tasks"
OWNER_KEY = "pusher:retry:owner"
PARKED_KEY = "pusher:parked"
PARKED_INDEX_KEY = "pusher:parked:tasks"
PARKED_MAXLEN = 100_000


def now_ms() -> int:
    return int(time.time() * 1000)


def _until(when_ms: int) -> int:
    """ms from now (this host's clock) until `when_ms`: Redis adds it to its own clock, so hosts whose clocks differ
    agree on every due time."""
    return max(0, when_ms - now_ms())


def task_id(upstream: str, sms_id: int) -> str:
    return f"{upstream or '?'}:{sms_id}"


def _key(kind: str, upstream: str, sms_id: int) -> str:
    return f"pusher:{kind}:{upstream}:{sms_id}"


class Status(IntEnum):
    OWNER = 0  # we own the push: attempt it now
    DELIVERED = 1  # the ledger says this smsId already reached this upstream
    OWNED_ELSEWHERE = 2  # (first attempt) the push already has an entry and an owner or a due time
    LOST = 3  # (claimed attempt) claimed again by another pusher since: leave it


@dataclass(frozen=True)
class Begin:
    status: Status
    first_seen: bool  # never recorded in the audit trail before
    token: str


@dataclass(frozen=True)
class _BeginItem:
    tid: str
    upstream: str
    sms_id: int
    token: str
    mode: str  # "new" | "own"
    activation_id: int
    event: bytes  # the "sms" audit event, written only when the push is first seen (b"" = none)


@dataclass(frozen=True)
class _OutcomeItem:
    tid: str
    token: str
    ledger_key: str
    ledger_value: bytes  # b"" = do not write the ledger
    next_in_ms: int | None  # ms until the next attempt (Redis's clock); None = done: remove the entry
    body: bytes  # the PushTask for the next attempt (when next_in_ms is not None)
    audit_key: str
    event: bytes  # audit event written after the ledger (b"" = none)


@dataclass(frozen=True)
class ClaimedRetry:
    task_id: str
    task: PushTask | None  # None: the stored body no longer decodes (parked by the caller)
    raw: bytes
    token: str


class PushStore:
    """Begins and outcomes of concurrent pushes are coalesced: one Lua call per batch, not per SMS."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        hold_s: float,
        ledger_ttl_s: int,
        audit_retention_s: int,
        max_batch: int = 256,
    ) -> None:
        self.redis = redis
        self.hold_ms = int(hold_s * 1000)
        self.ledger_ttl_s = ledger_ttl_s
        self.audit_retention_s = audit_retention_s
        lua = grizzly_pusher.lua
        self._begin_many = redis.register_script(
            load_lua(lua, "begin_many.lua", NOW_MS_FUNCTION, audit.APPEND_FUNCTION)
        )
        self._outcome_many = redis.register_script(
            load_lua(lua, "outcome_many.lua", NOW_MS_FUNCTION, audit.APPEND_FUNCTION)
        )
        self._offer = redis.register_script(load_lua(lua, "offer.lua", NOW_MS_FUNCTION))
        self._claim = redis.register_script(load_lua(lua, "claim_retries.lua", NOW_MS_FUNCTION))
        self._begins: Coalescer[_BeginItem, Begin] = Coalescer(self._begin_batch, max_batch=max_batch)
        self._outcomes: Coalescer[_OutcomeItem, bool] = Coalescer(self._outcome_batch, max_batch=max_batch)

    async def aclose(self) -> None:
        await self._begins.aclose()
        await self._outcomes.aclose()

    async def begin(self, task: PushTask, *, token: str = "", event: bytes = b"") -> Begin:
        """Before an attempt: delivered already? Do we own the push? First time seen? (then `event` is audited).

        Without a token this is a first attempt: we become the owner unless the push has an entry already. With the
        token of a claim, the claim must still be ours.
        """
        mode = "own" if token else "new"
        item = _BeginItem(
            task_id(task.upstream, task.message.sms_id),
            task.upstream,
            task.message.sms_id,
            token or uuid.uuid4().hex,
            mode,
            task.activation_id,
            event,
        )
        return await self._begins(item)

    async def _begin_batch(self, items: list[_BeginItem]) -> list[Begin]:
        keys: list[str] = [DUE_KEY, TASKS_KEY, OWNER_KEY]
        args: list[str | int | bytes] = [self.hold_ms, self.ledger_ttl_s, self.audit_retention_s]
        for item in items:
            keys += [
                _key("ledger", item.upstream, item.sms_id),
                _key("seen", item.upstream, item.sms_id),
                audit.activation_key(item.activation_id),
            ]
            args += [item.tid, item.token, item.mode, item.event]
        flat = await self._begin_many(keys=keys, args=args)
        return [Begin(Status(int(flat[2 * i])), bool(flat[2 * i + 1]), item.token) for i, item in enumerate(items)]

    async def delivered(self, task: PushTask, token: str, *, event: bytes = b"") -> bool:
        """The platform answered SUCCESS: never push this smsId to this upstream again (then `event` is audited).

        Returns False when the push had another owner by then (the ledger is written all the same)."""
        value = orjson.dumps({"ts_ms": now_ms(), "activation_id": task.activation_id, "attempt": task.attempt + 1})
        return await self._write_outcome(task, token, ledger_value=value, event=event)

    async def done(self, task: PushTask, token: str, *, event: bytes = b"") -> bool:
        """No more attempts (parked, unmatched, or handed on): remove the entry if we still own it."""
        return await self._write_outcome(task, token, event=event)

    async def reschedule(self, task: PushTask, token: str, *, event: bytes = b"") -> bool:
        """Durably schedule the next attempt at task.not_before_ms and release the ownership."""
        return await self._write_outcome(task, token, next_in_ms=_until(task.not_before_ms), event=event)

    async def _write_outcome(
        self,
        task: PushTask,
        token: str,
        *,
        ledger_value: bytes = b"",
        next_in_ms: int | None = None,
        event: bytes = b"",
    ) -> bool:
        sms_id = task.message.sms_id
        item = _OutcomeItem(
            task_id(task.upstream, sms_id),
            token,
            _key("ledger", task.upstream, sms_id),
            ledger_value,
            next_in_ms,
            encode(task) if next_in_ms is not None else b"",
            audit.activation_key(task.activation_id),
            event,
        )
        return await self._outcomes(item)

    async def _outcome_batch(self, items: list[_OutcomeItem]) -> list[bool]:
        keys: list[str] = [DUE_KEY, TASKS_KEY, OWNER_KEY]
        args: list[str | int | bytes] = [self.ledger_ttl_s, self.audit_retention_s]
        for item in items:
            keys += [item.ledger_key, item.audit_key]
            next_in = "" if item.next_in_ms is None else item.next_in_ms
            args += [item.tid, item.token, item.ledger_value, next_in, item.body, item.event]
        flat = await self._outcome_many(keys=keys, args=args)
        return [bool(owned) for owned in flat]

    async def offer(self, task: PushTask, *, create: bool) -> bool:
        """Put the task's body into the push's entry without owning it (create: make the entry if there is none,
        due at task.not_before_ms). Returns False when there was no entry and create was False."""
        tid = task_id(task.upstream, task.message.sms_id)
        keys = [DUE_KEY, TASKS_KEY]
        args: list[str | int | bytes] = [tid, _until(task.not_before_ms), encode(task), "1" if create else "0"]
        return bool(await self._offer(keys=keys, args=args))

    async def claim(self, limit: int) -> list[ClaimedRetry]:
        prefix = uuid.uuid4().hex
        flat = await self._claim(keys=[DUE_KEY, TASKS_KEY, OWNER_KEY], args=[self.hold_ms, limit, prefix])
        claimed = []
        for i in range(0, len(flat), 3):
            tid = flat[i].decode() if isinstance(flat[i], bytes) else str(flat[i])
            raw = flat[i + 1]
            token = flat[i + 2].decode() if isinstance(flat[i + 2], bytes) else str(flat[i + 2])
            try:
                task: PushTask | None = decode_task(raw)
            except DecodeError:
                task = None
            claimed.append(ClaimedRetry(tid, task, raw, token))
        return claimed

    async def forget(self, tid: str, token: str) -> None:
        """Remove an entry we own whose body cannot be decoded (parked by the caller)."""
        item = _OutcomeItem(tid, token, "pusher:ledger:" + tid, b"", None, b"", audit.activation_key(0), b"")
        await self._outcomes(item)

    async def depth(self) -> int:
        return int(await self.redis.zcard(DUE_KEY))

    async def park_raw(self, raw: bytes, **fields: str | int | bytes) -> None:
        at = now_ms()
        entry: dict[str | bytes, str | int | bytes] = {"raw": raw, "ts_ms": at}
        entry.update(fields)
        tid = fields.get("task_id")
        if not isinstance(tid, str) or not tid:
            await self.redis.xadd(PARKED_KEY, entry, maxlen=PARKED_MAXLEN, approximate=True)  # type: ignore[arg-type]
            return
        # the parked index rides in the same round trip; only the stream write decides whether the push is parked
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(PARKED_KEY, entry, maxlen=PARKED_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.zadd(PARKED_INDEX_KEY, {tid: at})
        pipe.zremrangebyrank(PARKED_INDEX_KEY, 0, -PARKED_MAXLEN - 1)
        added, *index = await pipe.execute(raise_on_error=False)
        if isinstance(added, Exception):
            raise added
        if any(isinstance(result, Exception) for result in index):
            metrics.ACTIVITY_WRITE_FAILURES.inc()
