"""What the operator console shows of the pusher: a bounded log of recent SMS, per-minute counters, and each
upstream's last push answers. Best-effort observability, never part of delivery.

Writes are buffered in memory and sent by one background task as one pipeline every FLUSH_S (one round trip per
flush, not per SMS): recording never waits for Redis, and a failed write is counted
(`pusher_activity_write_failures_total`) and dropped, so it can never fail or delay a push. Every key is bounded:

  pusher:activity:sms               stream of SMS first seen (one entry per push), at most PUSHER_SMS_LOG_MAX (exact)
  pusher:activity:minutes           HASH "{minute}:{s|o|f}" -> count (SMS first seen, pushes answered SUCCESS,
                                    failed attempts); fields older than an hour are deleted
  pusher:activity:answers:{upstream}  list of the last ANSWERS_MAX push answers (newest first)
Each key also expires when nothing was written to it for PUSHER_LEDGER_TTL_S (the minutes: 2 h at most): a log
entry older than the ledger could not say whether its SMS was pushed anyway, and Redis returns to its baseline.
  pusher:parked:tasks               ZSET task id -> when parked (store.park_raw), at most PARKED_MAXLEN: tells the
                                    SMS log which pushes are parked

The status of a logged SMS is not stored: it is read from the pusher's own state when asked (ledger, retry schedule,
parked index), so it is never stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from grizzly_common import audit
from grizzly_common.errors import DecodeError
from grizzly_common.events import PushTask, decode_task
from grizzly_common.logging import log_fields
from grizzly_common.messages import is_digits

from grizzly_pusher import metrics
from grizzly_pusher.store import DUE_KEY, OWNER_KEY, PARKED_INDEX_KEY, PARKED_KEY, TASKS_KEY, now_ms, task_id

log = logging.getLogger(__name__)

SMS_LOG_KEY = "pusher:activity:sms"
MINUTES_KEY = "pusher:activity:minutes"
ANSWERS_PREFIX = "pusher:activity:answers:"
ANSWERS_MAX = 20
ANSWER_CHARS = 200
TEXT_CHARS = 1000  # an SMS text in the log (the audit trail keeps it whole)
FLUSH_S = 0.2
BUFFER_MAX = 20_000  # SMS waiting for a flush; beyond it they are dropped (counted), never held in memory
MINUTES_TTL_S = 2 * 3600
WINDOW_MIN = 60
TRAIL_TAIL = 8  # audit events read per SMS for its last answer
MAX_COUNT = 500
SCAN_MAX = 1000  # log entries examined at most by one filtered /admin/sms (it runs on the delivery loop)


def answers_key(upstream: str) -> str:
    return ANSWERS_PREFIX + upstream


def minute_of(ms: int) -> int:
    return ms // 60_000


def printable(raw: bytes, limit: int) -> str:
    """A platform's answer as text: invalid UTF-8 and control characters escaped, cut at `limit` characters."""
    text = raw[: limit * 4].decode("utf-8", "backslashreplace")
    safe = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return safe[:limit]


def mask_key(key: str) -> str:
    """A protocol key as an operator may see it: its first and last 2 characters at most, never the rest."""
    if len(key) >= 12:
        return f"{key[:2]}...{key[-2:]}"
    return "***" if key else ""


def scrub(text: str, key: str) -> str:
    """A platform may echo the key in an error: never keep it."""
    return text.replace(key, mask_key(key)) if len(key) >= 4 else text


@dataclass
class _Buffer:
    sms: list[bytes] = field(default_factory=list)
    answers: dict[str, deque[bytes]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


class Activity:
    """Buffered, best-effort writer of the console's view (see the module doc). run() flushes until stop()."""

    def __init__(self, redis: aioredis.Redis | None, *, sms_log_max: int, ttl_s: int, flush_s: float = FLUSH_S) -> None:
        self.redis = redis
        self.sms_log_max = sms_log_max
        self.ttl_s = ttl_s
        self.flush_s = flush_s
        self._buffer = _Buffer()
        self._stop = asyncio.Event()
        self._trimmed_minute = 0

    @classmethod
    def disabled(cls) -> Activity:
        return cls(None, sms_log_max=1, ttl_s=1)

    # -- recording (never raises, never waits) ----------------------------------------------------------
    def sms(self, task: PushTask) -> None:
        """A push seen for the first time (its Kafka record, or a looked-up task)."""
        if self.redis is None:
            return
        try:
            if len(self._buffer.sms) >= BUFFER_MAX:
                metrics.ACTIVITY_DROPPED.inc()
                return
            message = task.message
            entry = {
                "sms_id": message.sms_id,
                "activation_id": task.activation_id,
                "number": message.number,
                "upstream": task.upstream,
                "kind": message.kind,
                "text": message.text[:TEXT_CHARS],
                "received_ms": message.received_at_ms,
            }
            self._buffer.sms.append(orjson.dumps(entry))
            self._buffer.counts[f"{minute_of(now_ms())}:s"] += 1
        except Exception:  # noqa: BLE001 - observability never stops a push
            metrics.ACTIVITY_DROPPED.inc()

    def answer(
        self, upstream: str, sms_id: int, *, ok: bool, result: str, http_status: int | None, answer: str
    ) -> None:
        """One push answer (or timeout / network error) of an upstream."""
        if self.redis is None:
            return
        try:
            at = now_ms()
            entry = {"at_ms": at, "sms_id": sms_id, "http_status": http_status, "answer": answer[:ANSWER_CHARS]}
            entry |= {"ok": ok, "result": result}
            answers = self._buffer.answers.setdefault(upstream, deque(maxlen=ANSWERS_MAX))
            answers.append(orjson.dumps(entry))
            self._buffer.counts[f"{minute_of(at)}:{'o' if ok else 'f'}"] += 1
        except Exception:  # noqa: BLE001 - observability never stops a push
            metrics.ACTIVITY_DROPPED.inc()

    # -- flushing -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.flush_s)
            try:
                await self.flush()
            except Exception:  # a bug here must not end the loop (nor ever the pusher)
                metrics.ACTIVITY_WRITE_FAILURES.inc()
                log.exception("activity flush failed")

    async def flush(self) -> None:
        buffer, self._buffer = self._buffer, _Buffer()
        if self.redis is None or not (buffer.sms or buffer.answers or buffer.counts):
            return
        pipe = self.redis.pipeline(transaction=False)
        for entry in buffer.sms:
            pipe.xadd(SMS_LOG_KEY, {"e": entry}, maxlen=self.sms_log_max, approximate=False)
        if buffer.sms:
            pipe.expire(SMS_LOG_KEY, self.ttl_s)
        for upstream, answers in buffer.answers.items():
            pipe.lpush(answers_key(upstream), *answers)  # oldest first: the newest ends at the head
            pipe.ltrim(answers_key(upstream), 0, ANSWERS_MAX - 1)
            pipe.expire(answers_key(upstream), self.ttl_s)
        if buffer.counts:
            for name, n in buffer.counts.items():
                pipe.hincrby(MINUTES_KEY, name, n)
            pipe.expire(MINUTES_KEY, min(MINUTES_TTL_S, self.ttl_s))
            minute = minute_of(now_ms())
            if minute != self._trimmed_minute:
                # once a minute: the fields of the two hours before the window (the key expires after two idle hours)
                old = [f"{m}:{c}" for m in range(minute - 3 * WINDOW_MIN, minute - WINDOW_MIN) for c in "sof"]
                pipe.hdel(MINUTES_KEY, *old)
                self._trimmed_minute = minute
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - Redis away: this flush is lost, delivery is not concerned
            metrics.ACTIVITY_WRITE_FAILURES.inc(len(pipe) or 1)
            log.debug("activity flush failed", extra=log_fields(error=type(exc).__name__))
            return
        failed = sum(1 for r in results if isinstance(r, Exception))
        if failed:
            metrics.ACTIVITY_WRITE_FAILURES.inc(failed)

    async def aclose(self) -> None:
        self.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 2)


# -- reading (the admin routes) ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json(raw: Any) -> Any:
    try:
        return orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None


def _last_attempt(trail: list[bytes], sms_id: int, upstream: str) -> dict[str, Any] | None:
    """The newest push_attempt event of this push in the tail of its activation's audit trail."""
    for raw in reversed(trail or []):
        event = _json(raw)
        if (
            isinstance(event, dict)
            and event.get("event") == "push_attempt"
            and event.get("sms_id") == sms_id
            and event.get("upstream") == upstream
        ):
            return event
    return None


def _answer_of(event: dict[str, Any] | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {k: event.get(k) for k in ("result", "http_status", "error")} | {"at_ms": event.get("ts_ms")}


async def stats(redis: aioredis.Redis) -> dict[str, Any]:
    minute = minute_of(now_ms())
    minutes = list(range(minute - WINDOW_MIN + 1, minute + 1))
    fields = [f"{m}:{c}" for m in minutes for c in "sof"]
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(MINUTES_KEY, fields)
    pipe.zcard(DUE_KEY)
    pipe.hlen(OWNER_KEY)
    pipe.xlen(PARKED_KEY)
    counts, due, owned, parked = await pipe.execute()
    values = [int(v) if v is not None else 0 for v in counts]
    per_minute = [[m * 60_000, values[3 * i]] for i, m in enumerate(minutes)]
    ok = sum(values[1::3])
    failed = sum(values[2::3])
    return {
        "sms_per_minute": per_minute,
        "pushes_1h": {"ok": ok, "failed": failed},
        "success_rate_1h": round(ok / (ok + failed), 4) if ok + failed else None,
        "retry_queue": max(0, int(due) - int(owned)),
        "parked": int(parked),
        "in_flight": int(owned),
    }


def _ledger_attempts(raw: Any) -> int | None:
    value = _json(raw)
    return int(value["attempt"]) if isinstance(value, dict) and isinstance(value.get("attempt"), int) else None


def _task(raw: Any) -> PushTask | None:
    if raw is None:
        return None
    try:
        return decode_task(raw)
    except DecodeError:
        return None


async def _with_status(redis: aioredis.Redis, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each logged push's status from the pusher's own state, in one pipeline: the ledger says pushed; an entry in
    the retry schedule says retrying (an attempt failed) or pending; the parked index says parked; else pending
    (e.g. a first attempt whose pusher died, until its record is read again)."""
    pipe = redis.pipeline(transaction=False)
    for e in entries:
        tid = task_id(e["upstream"], e["sms_id"])
        pipe.get(f"pusher:ledger:{e['upstream']}:{e['sms_id']}")
        pipe.zscore(DUE_KEY, tid)
        pipe.hget(TASKS_KEY, tid)
        pipe.zscore(PARKED_INDEX_KEY, tid)
        pipe.lrange(audit.activation_key(e["activation_id"]), -TRAIL_TAIL, -1)
    answers = await pipe.execute()
    out = []
    for i, e in enumerate(entries):
        ledger, due, body, parked, trail = answers[5 * i : 5 * i + 5]
        event = _last_attempt(trail, e["sms_id"], e["upstream"])
        attempts = int(event["attempt"]) if event and isinstance(event.get("attempt"), int) else 0
        task = _task(body)
        if ledger is not None:
            status = "pushed"
            attempts = _ledger_attempts(ledger) or attempts
        elif due is not None:
            attempts = max(attempts, task.attempt if task else 0)
            status = "retrying" if attempts > 0 else "pending"
        elif parked is not None:
            status = "parked"
        else:
            status = "pending"
        out.append(e | {"status": status, "attempts": attempts, "last_answer": _answer_of(event)})
    return out


STATUSES = ("pending", "retrying", "pushed", "parked")


def _well_formed(value: Any) -> bool:
    """A log entry as Activity.sms writes it (anything else in the stream is skipped, never a 500)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("sms_id"), int)
        and isinstance(value.get("activation_id"), int)
        and isinstance(value.get("upstream"), str)
    )


async def recent_sms(
    redis: aioredis.Redis, *, count: int, activation: int | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """The newest `count` logged pushes (newest first), filtered; a filter examines at most SCAN_MAX entries."""
    found: list[dict[str, Any]] = []
    end = "+"
    examined = 0
    filtered = activation is not None or status is not None
    while len(found) < count and examined < SCAN_MAX:
        chunk = count if not filtered else MAX_COUNT
        rows = await redis.xrevrange(SMS_LOG_KEY, end, "-", count=chunk)
        if not rows:
            break
        examined += len(rows)
        entries = []
        for _, fields in rows:
            value = _json((fields or {}).get(b"e"))
            if _well_formed(value):
                entries.append(value)
        if activation is not None:
            entries = [e for e in entries if e.get("activation_id") == activation]
        if entries:
            with_status = await _with_status(redis, entries)
            found += [e for e in with_status if status is None or e["status"] == status]
        if len(rows) < chunk or not filtered:
            break
        end = "(" + _text(rows[-1][0])
    return found[:count]


async def upstream_answers(redis: aioredis.Redis, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.lrange(answers_key(name), 0, ANSWERS_MAX - 1)
    lists = await pipe.execute()
    return {
        name: [a for a in map(_json, raw or []) if isinstance(a, dict)] for name, raw in zip(names, lists, strict=True)
    }


async def queue(redis: aioredis.Redis, *, count: int) -> dict[str, Any]:
    """The retry schedule, soonest first: each push's attempts, when it is due, and its last error."""
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(DUE_KEY)
    pipe.zrange(DUE_KEY, 0, count - 1, withscores=True)
    total, due = await pipe.execute()
    ids = [_text(tid) for tid, _ in due]
    if not ids:
        return {"total": int(total), "entries": []}
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(TASKS_KEY, ids)
    pipe.hmget(OWNER_KEY, ids)
    bodies, owners = await pipe.execute()
    tasks = [_task(body) for body in bodies]
    pipe = redis.pipeline(transaction=False)
    for task in tasks:
        pipe.lrange(audit.activation_key(task.activation_id if task else 0), -TRAIL_TAIL, -1)
    trails = await pipe.execute()
    entries = []
    for tid, (_, score), task, owner, trail in zip(ids, due, tasks, owners, trails, strict=True):
        upstream, _, sms = tid.rpartition(":")
        entry: dict[str, Any] = {
            "task_id": tid,
            "sms_id": int(sms) if is_digits(sms) else None,
            "activation_id": None,
            "upstream": upstream if upstream and upstream != "?" else None,
            "attempts": 0,
            "next_attempt_ms": int(score),
            "first_seen_ms": None,
            "last_error": None,
            "in_flight": owner is not None,
        }
        if task is not None:
            entry |= {"sms_id": task.message.sms_id, "activation_id": task.activation_id or None}
            entry |= {"attempts": task.attempt, "first_seen_ms": task.message.ingested_at_ms}
            event = _last_attempt(trail, task.message.sms_id, task.upstream) if task.activation_id else None
            if event is not None:
                entry["last_error"] = event.get("error") or event.get("result")
        entries.append(entry)
    return {"total": int(total), "entries": entries}
