"""One push attempt: ledger check and ownership, the HTTP request, then ledger write or durable retry.

The order is what makes the guarantees: the ledger is checked and the push's ownership taken before sending
(store.py: one fenced owner per push); the ledger is written the moment SUCCESS comes back (before anything else,
audit included); a failed attempt is written to the Redis retry schedule as it releases the ownership.
Exactly-once is impossible against an HTTP endpoint: a crash between SUCCESS and the ledger write re-sends that SMS
once, with the same smsId.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import aiohttp
import orjson
import redis.asyncio as aioredis
import redis.exceptions
from grizzly_common import audit
from grizzly_common.events import InboundMessage, PushTask, encode
from grizzly_common.logging import log_fields
from grizzly_common.messages import push_call_body, push_sms_body, push_succeeded
from grizzly_common.pool_api import LookupResult
from grizzly_common.pool_client import PoolClient, PoolUnavailable
from grizzly_common.settings import Upstream
from msgspec.structs import replace

from grizzly_pusher import metrics
from grizzly_pusher.activity import ANSWER_CHARS, Activity, printable, scrub
from grizzly_pusher.settings import Settings
from grizzly_pusher.store import PushStore, Status, now_ms, task_id

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_REPLY_BYTES = 64 * 1024


class Outcome(Enum):
    DELIVERED = "delivered"
    ALREADY_DELIVERED = "already_delivered"
    SCHEDULED = "scheduled"  # failed, durably scheduled for the next attempt
    OWNED_ELSEWHERE = "owned_elsewhere"  # the push already has an owner or a due entry: left to it
    LOST = "lost"  # our claim was taken over by another pusher before we began: left to it
    HANDED_BACK = "handed_back"  # shutting down: scheduled for now, for whichever pusher claims it
    PARKED = "parked"  # too old: kept in the audit trail, no more attempts


@dataclass(frozen=True)
class PushResult:
    result: str  # success | error | garbage | http_error | timeout | network
    http_status: int | None = None
    error: str | None = None
    answer: str = ""  # the platform's reply (or what went wrong), escaped and cut: for the console, never the key

    @property
    def ok(self) -> bool:
        return self.result == "success"


def is_transient(exc: BaseException) -> bool:
    """A failure that passes by itself: Redis, the pool or the network away, and every error Redis answers (out of
    memory, read-only after a failover, its AOF not writable, loading, a script error: the scripts never read the
    content, so their errors are Redis's state, not the record's). The record is tried again. Anything else comes
    from the record's content and never passes: it is parked."""
    if isinstance(exc, redis.exceptions.DataError):  # refused by the client before sending: what we gave it
        return False
    return isinstance(exc, (redis.exceptions.RedisError, OSError, TimeoutError, PoolUnavailable))


def build_request(upstream: Upstream, message: InboundMessage) -> tuple[bytes, dict[str, str]]:
    """The PUSH_* body and headers for one message (numbers as JSON numbers, gzip when the upstream wants it)."""
    if message.kind == "sms":
        body = push_sms_body(upstream.key, message.sms_id, message.number, message.phone_from, message.text)
        content_type = "application/json"
    elif message.kind == "call":
        body = push_call_body(upstream.key, message.sms_id, message.number, message.phone_from)
        content_type = "application/json"
    else:
        body, content_type = _call_record_multipart(upstream.key, message)
    headers = {"User-Agent": upstream.user_agent, "Content-Type": content_type}
    if upstream.gzip:
        body = gzip.compress(body, compresslevel=6, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return body, headers


_EXTENSIONS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/ogg": "ogg", "audio/mp4": "m4a"}


def _call_record_multipart(key: str, message: InboundMessage) -> tuple[bytes, str]:
    """PUSH_CALL_RECORD: multipart/form-data with action, key, callId, phone, phoneFrom, text and file."""
    boundary = "grizzly" + uuid.uuid4().hex
    fields = {
        "action": "PUSH_CALL_RECORD",
        "key": key,
        "callId": str(message.sms_id),
        "phone": str(message.number),
        "phoneFrom": message.phone_from,
        "text": message.text,
    }
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    mime = message.recording_type or "application/octet-stream"
    filename = f"call-{message.sms_id}.{_EXTENSIONS.get(mime, 'bin')}"
    audio = base64.b64decode(message.recording_b64) if message.recording_b64 else b""
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {mime}\r\n\r\n".encode()
        + audio
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def classify(status: int, reply: bytes) -> PushResult:
    if status != 200:
        return PushResult("http_error", status, f"HTTP {status}")
    if push_succeeded(reply):
        return PushResult("success", status)
    try:
        decoded = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return PushResult("garbage", status, "unparsable reply")
    if isinstance(decoded, dict):
        error = decoded.get("error") or decoded.get("status") or "no status"
        return PushResult("error", status, str(error)[:200])
    return PushResult("garbage", status, "unexpected reply")


def answer_text(raw: bytes, key: str) -> str:
    """The reply as the console shows it: escaped, the key masked wherever the platform echoes it, cut."""
    try:
        return scrub(printable(raw, 5 * ANSWER_CHARS), key)[:ANSWER_CHARS]
    except Exception:  # noqa: BLE001 - only for the console: never a reason to fail a push
        return ""


CLOCK_SLACK_MS = 2000  # ingest's and the pool's clocks may differ by this much


def open_when_ingested(lookup: LookupResult, message: InboundMessage) -> bool:
    """The number's open activation is this SMS's only if it was open when the SMS reached us. After a pool outage
    or a Kafka backlog the number may have been given to a newer activation since: never push it there."""
    return not lookup.created_ms or message.ingested_at_ms >= lookup.created_ms - CLOCK_SLACK_MS


async def keep_unmatched(redis: aioredis.Redis, message: InboundMessage) -> None:
    """An SMS or call for a number with no open activation: kept in the audit trail for an operator, never pushed."""
    await audit.record_unmatched(
        redis,
        sms_id=message.sms_id,
        kind=message.kind,
        number=message.number,
        phone_from=message.phone_from,
        text=message.text,
        received_at_ms=message.received_at_ms,
        source=message.source,
    )
    metrics.UNMATCHED.inc()


class Pusher:
    """Pushes and records outcomes; shared by the Kafka consumer (first attempts) and the retrier (later ones)."""

    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis,
        session: aiohttp.ClientSession,
        store: PushStore,
        pool: PoolClient,
        activity: Activity | None = None,
    ) -> None:
        self.settings = settings
        self.activity = activity or Activity.disabled()  # the console's view: best effort, never waited for
        self.redis = redis
        self.session = session
        self.store = store
        self.pool = pool
        self.semaphore = asyncio.Semaphore(settings.concurrency)
        self.stopping = False  # set on SIGTERM: no new HTTP requests, pending work is handed back

    # -- HTTP ---------------------------------------------------------------------------------------------
    async def send(self, upstream: Upstream, kind: str, body: bytes, headers: dict[str, str]) -> PushResult:
        metrics.PUSH_ATTEMPTS.labels(upstream.name, kind).inc()
        started = time.perf_counter()
        try:
            async with self.session.post(
                upstream.push_url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=upstream.push_timeout_s),
                allow_redirects=False,  # the key is in the body: a redirect must not carry it elsewhere
            ) as reply:
                raw = await reply.content.read(MAX_REPLY_BYTES)
                result = classify(reply.status, raw)
                result = dataclasses.replace(result, answer=answer_text(raw, upstream.key))
        except TimeoutError:
            error = f"no answer within {upstream.push_timeout_s}s"
            result = PushResult("timeout", None, error, error)
        except aiohttp.ClientError as exc:
            result = PushResult("network", None, type(exc).__name__, type(exc).__name__)
        metrics.PUSH_LATENCY.labels(upstream.name).observe(time.perf_counter() - started)
        metrics.PUSH_RESULTS.labels(upstream.name, result.result).inc()
        return result

    # -- one attempt --------------------------------------------------------------------------------------
    async def attempt(self, task: PushTask, token: str = "") -> Outcome:
        """One attempt of a resolved task; returns only once the outcome is durable in Redis.

        Without a token this is the first attempt (a Kafka record); with one, the attempt of a claimed retry.
        """
        message = task.message
        # everything that depends on the content comes first: content that cannot be pushed raises before we own it
        upstream = self.settings.upstream(task.upstream)
        request = build_request(upstream, message) if upstream is not None else None
        sms_event = audit.encode_event(
            "sms",
            sms_id=message.sms_id,
            kind=message.kind,
            number=message.number,
            phone_from=message.phone_from,
            text=message.text,
            received_at_ms=message.received_at_ms,
            upstream=task.upstream,
        )
        # ledger check, ownership, and the "sms" audit event when first seen: one Lua call shared with other pushes
        begin = await self.store.begin(task, token=token, event=sms_event)
        if begin.status is Status.DELIVERED:
            metrics.ALREADY_DELIVERED.labels(task.upstream).inc()
            return Outcome.ALREADY_DELIVERED
        if begin.status is Status.OWNED_ELSEWHERE:
            # read again after a crash or a rebalance: the push's owner (or its due entry) brings it to the platform.
            # The entry may be gone by now (its owner died and the empty entry was dropped): then this record makes
            # one, due a retry delay later; if the push was delivered meanwhile, the ledger check drops it then.
            later = replace(task, not_before_ms=now_ms() + int(self.settings.retry_s * 1000))
            await self.store.offer(later, create=True)
            metrics.OWNED_ELSEWHERE.inc()
            return Outcome.OWNED_ELSEWHERE
        if begin.status is Status.LOST:
            metrics.OWNERSHIP_LOST.labels("begin").inc()
            return Outcome.LOST
        token = begin.token
        if begin.first_seen:
            self.activity.sms(task)
        if self.stopping:
            await self._until_done(lambda: self.store.reschedule(replace(task, not_before_ms=now_ms()), token))
            return Outcome.HANDED_BACK
        if upstream is None or request is None:
            result = PushResult("network", None, f"upstream {task.upstream!r} is not configured")
        else:
            result = await self.send(upstream, message.kind, *request)
            self.activity.answer(
                upstream.name,
                message.sms_id,
                ok=result.ok,
                result=result.result,
                http_status=result.http_status,
                answer=result.answer,
            )
        attempt = task.attempt + 1
        event = self._attempt_event(task, attempt, result)
        if result.ok:
            # the ledger first, before anything else; the attempt's audit event follows it in the same Lua call
            owned = await self._until_done(lambda: self.store.delivered(task, token, event=event))
            self._count_lost(owned, "delivered")
            metrics.PUSH_SUCCESSES.labels(task.upstream).inc()
            metrics.END_TO_END_LAG.labels(task.upstream).observe(max(0, now_ms() - message.received_at_ms) / 1000)
            return Outcome.DELIVERED
        age_s = (now_ms() - message.ingested_at_ms) / 1000
        if age_s > self.settings.max_retry_age_s:
            gave_up = audit.encode_event(
                "push_undeliverable",
                sms_id=message.sms_id,
                upstream=task.upstream,
                attempts=attempt,
                age_s=int(age_s),
                last_result=result.result,
                last_error=result.error,
            )
            # kept in pusher:parked first (an operator can re-push it), then the entry goes
            parked = encode(replace(task, attempt=attempt))
            error = f"{result.result}: {result.error or ''}"[:500]
            tid = task_id(task.upstream, message.sms_id)
            await self._until_done(
                lambda: self.store.park_raw(parked, task_id=tid, reason="max_retry_age", error=error)
            )
            await self._until_done(lambda: self.store.done(task, token, event=event))
            await self._until_done(lambda: self.store.done(task, "", event=gave_up))  # no token: the event only
            metrics.PARKED.labels("max_retry_age").inc()
            log.error(
                "push undeliverable: retries exhausted, parked in the audit trail",
                extra=log_fields(
                    sms_id=message.sms_id,
                    activation_id=task.activation_id,
                    upstream=task.upstream,
                    attempts=attempt,
                    age_s=int(age_s),
                    result=result.result,
                ),
            )
            return Outcome.PARKED
        later = replace(task, attempt=attempt, not_before_ms=now_ms() + int(self.settings.retry_s * 1000))
        owned = await self._until_done(lambda: self.store.reschedule(later, token, event=event))
        self._count_lost(owned, "rescheduled")
        metrics.RETRIES_SCHEDULED.labels(task.upstream).inc()
        log.info(
            "push failed, retry scheduled",
            extra=log_fields(
                sms_id=message.sms_id,
                upstream=task.upstream,
                attempt=attempt,
                result=result.result,
                http_status=result.http_status,
                error=result.error,
            ),
        )
        return Outcome.SCHEDULED

    @staticmethod
    def _count_lost(owned: bool, stage: str) -> None:
        """Our hold ran out before the outcome was recorded (Redis away for longer): another pusher may own it now."""
        if not owned:
            metrics.OWNERSHIP_LOST.labels(stage).inc()
            log.warning("push outcome recorded after its hold ran out", extra=log_fields(stage=stage))

    @staticmethod
    def _attempt_event(task: PushTask, attempt: int, result: PushResult) -> bytes:
        return audit.encode_event(
            "push_attempt",
            sms_id=task.message.sms_id,
            upstream=task.upstream,
            attempt=attempt,
            result=result.result,
            http_status=result.http_status,
            error=result.error,
        )

    async def _until_done(self, write: Callable[[], Awaitable[T]]) -> T:
        """The write that must follow an HTTP answer: retried through any transient failure (a Redis outage, Redis
        out of memory or read-only), even while stopping: after a SUCCESS it is the ledger."""
        delay = 0.1
        while True:
            try:
                return await write()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("redis write failed, retrying", extra=log_fields(error=type(exc).__name__))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
