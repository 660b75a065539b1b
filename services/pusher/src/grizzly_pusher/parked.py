"""Parked records (the pusher:parked stream): list, show, re-push, delete. Shared by the admin API and the CLI.

A parked entry is either a Kafka record (fields topic, partition, offset, key; `raw` is the record's value) or a
retry task (field task_id; `raw` is the PushTask JSON). A re-push turns it into a retry task and hands it to the
retry schedule with repush.lua, which removes it from the stream in the same step: the retrier then claims it like
any retry (a new owner token, the ledger checked as the attempt begins), so the smsId is the original one and
nothing is pushed after a SUCCESS. A Kafka record becomes a "?:{smsId}" task: the retrier looks its number up as for
an SMS read while the pool was down, so it only goes to the activation that was open when it arrived.
An entry whose raw value does not decode with this code cannot be re-pushed: it can only be shown and deleted.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from grizzly_common import audit
from grizzly_common.errors import DecodeError
from grizzly_common.events import PushTask, decode_inbound, decode_task, encode
from grizzly_common.logging import log_fields
from grizzly_common.redis_client import NOW_MS_FUNCTION, load_lua
from msgspec.structs import replace

import grizzly_pusher.lua
from grizzly_pusher import metrics
from grizzly_pusher.store import DUE_KEY, PARKED_INDEX_KEY, PARKED_KEY, TASKS_KEY, now_ms, task_id

log = logging.getLogger(__name__)

ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
MAX_PAGE = 1000
LIST_PREVIEW = 120
SHOW_PREVIEW = 4000


class ParkedError(Exception):
    """An operator's request that cannot be done; `status` is the admin API's HTTP code."""

    status = 400

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class BadRequest(ParkedError):
    status = 400


class NotFound(ParkedError):
    status = 404


class NotRepushable(ParkedError):
    status = 409


def check_id(entry_id: str) -> str:
    if not ENTRY_ID.fullmatch(entry_id):
        raise BadRequest(f"bad parked id {entry_id[:40]!r}: a stream id like 1764547200000-0")
    return entry_id


def check_operator(by: str) -> str:
    """Who made a change (X-Operator; the CLI is "cli"): 1-64 of [A-Za-z0-9._@-]."""
    if not audit.is_operator_name(by):
        raise BadRequest("bad operator name: 1-64 characters of A-Z a-z 0-9 . _ @ -")
    return by


def check_count(count: int) -> int:
    if not 1 <= count <= MAX_PAGE:
        raise BadRequest(f"count must be between 1 and {MAX_PAGE}")
    return count


def preview(raw: bytes, limit: int) -> str:
    """The raw bytes as printable text: invalid UTF-8 and control characters escaped, cut at `limit` bytes."""
    text = raw[:limit].decode("utf-8", "backslashreplace")
    safe = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return safe + ("..." if len(raw) > limit else "")


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


def _int(value: bytes | None, default: int = -1) -> int:
    """A number field of an entry; anything else (written by hand, say) shows as the default, never an error."""
    return int(value) if value is not None and value.isdigit() and len(value) < 20 else default


def _entries(answer: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """XRANGE's answer as (id, fields); the client is made with bytes answers (make_redis)."""
    out = []
    for entry_id, fields in answer or []:
        out.append((entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id), dict(fields or {})))
    return out


@dataclass(frozen=True)
class Parked:
    id: str
    reason: str
    error: str
    ts_ms: int
    raw: bytes = field(repr=False)
    source: dict[str, Any]  # the Kafka record's position, or the retry task's id
    task: PushTask | None  # what a re-push schedules; None: the raw value does not decode
    decode_error: str

    @classmethod
    def from_stream(cls, entry_id: str, fields: dict[bytes, bytes]) -> Parked:
        raw = fields.get(b"raw", b"")
        source: dict[str, Any]
        task: PushTask | None = None
        decode_error = ""
        try:
            if b"task_id" in fields:
                source = {"task_id": _text(fields[b"task_id"])}
                task = replace(decode_task(raw), not_before_ms=now_ms())
            else:
                source = {
                    "topic": _text(fields.get(b"topic")),
                    "partition": _int(fields.get(b"partition")),
                    "offset": _int(fields.get(b"offset")),
                    "key": preview(fields.get(b"key", b""), 64),
                }
                message = decode_inbound(raw)
                task = PushTask(message=message, upstream="", activation_id=0, attempt=0, not_before_ms=now_ms())
        except DecodeError as exc:
            decode_error = str(exc)[:300]
        return cls(
            id=entry_id,
            reason=_text(fields.get(b"reason")),
            error=preview(fields.get(b"error", b""), 500),
            ts_ms=_int(fields.get(b"ts_ms"), 0),
            raw=raw,
            source=source,
            task=task,
            decode_error=decode_error,
        )

    @property
    def repushable(self) -> bool:
        return self.task is not None

    def summary(self) -> dict[str, Any]:
        """What a list shows: no content beyond a short escaped preview."""
        out: dict[str, Any] = {
            "id": self.id,
            "reason": self.reason,
            "error": self.error[:200],
            "ts_ms": self.ts_ms,
            "source": self.source,
            "repushable": self.repushable,
            "raw_size": len(self.raw),
            "raw_preview": preview(self.raw, LIST_PREVIEW),
        }
        if self.task is not None:
            message = self.task.message
            out |= {"sms_id": message.sms_id, "kind": message.kind, "number": message.number}
            out |= {"upstream": self.task.upstream or None, "activation_id": self.task.activation_id or None}
        else:
            out["decode_error"] = self.decode_error
        return out

    def detail(self) -> dict[str, Any]:
        """One entry in full: the raw bytes exactly (base64) and as escaped text."""
        out = self.summary()
        out["error"] = self.error
        out["raw_preview"] = preview(self.raw, SHOW_PREVIEW)
        out["raw_b64"] = base64.b64encode(self.raw).decode("ascii")
        if self.task is None:
            out["note"] = "undecodable: it cannot be re-pushed as-is; delete it once handled"
        return out


@dataclass(frozen=True)
class RepushResult:
    id: str
    outcome: str  # scheduled | already_delivered
    sms_id: int
    task_id: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "sms_id": self.sms_id, "task_id": self.task_id}


class ParkedStore:
    def __init__(self, redis: aioredis.Redis, *, audit_retention_s: int) -> None:
        self.redis = redis
        self.audit_retention_s = audit_retention_s
        self._repush = redis.register_script(
            load_lua(grizzly_pusher.lua, "repush.lua", NOW_MS_FUNCTION, audit.APPEND_FUNCTION)
        )

    async def page(self, after: str = "", count: int = 50) -> tuple[list[Parked], str | None]:
        """Up to `count` entries after `after` (oldest first) and the cursor of the next page (None: last page)."""
        check_count(count)
        start = "(" + check_id(after) if after else "-"
        entries = _entries(
            await self.redis.xrange(PARKED_KEY, start, "+", count=count + 1)
        )  # one more: is there a next
        parked = [Parked.from_stream(entry_id, fields) for entry_id, fields in entries[:count]]
        return parked, (parked[-1].id if len(entries) > count else None)

    async def get(self, entry_id: str) -> Parked:
        check_id(entry_id)
        entries = _entries(await self.redis.xrange(PARKED_KEY, entry_id, entry_id))
        if not entries:
            raise NotFound(f"no parked entry {entry_id}")
        return Parked.from_stream(*entries[0])

    async def count(self) -> int:
        return int(await self.redis.xlen(PARKED_KEY))

    async def repush(self, entry_id: str, *, via: str, by: str) -> RepushResult:
        check_operator(by)
        parked = await self.get(entry_id)
        result = await self._repush_one(parked, via, by)
        task = parked.task
        await self._record_operator(
            by, "parked_repush", parked_id=parked.id, reason=parked.reason, sms_id=result.sms_id,
            task_id=result.task_id, outcome=result.outcome, activation_id=task.activation_id if task else None,
            upstream=(task.upstream if task else "") or None, via=via,
        )  # fmt: skip
        return result

    async def _record_operator(self, by: str, action: str, **fields: Any) -> None:
        """Who made the change, in the operator stream (audit:ops) the console shows. The change is made by then:
        a failure here is logged, not answered as a failure (a retry would find nothing left to do)."""
        await audit.record_operator_or_log(self.redis, by, action, **fields)

    async def _repush_one(self, parked: Parked, via: str, by: str) -> RepushResult:
        task = parked.task
        if task is None:
            raise NotRepushable(
                f"parked entry {parked.id} is undecodable ({parked.decode_error}): it cannot be re-pushed as-is;"
                " delete it once handled"
            )
        sms_id = task.message.sms_id
        tid = task_id(task.upstream, sms_id)
        event = b""
        if task.activation_id:
            event = audit.encode_event(
                "parked_repush", sms_id=sms_id, upstream=task.upstream, parked_id=parked.id, reason=parked.reason,
                via=via, by=by,
            )  # fmt: skip
        keys = [DUE_KEY, TASKS_KEY, PARKED_KEY, f"pusher:ledger:{task.upstream or '?'}:{sms_id}",
                audit.activation_key(task.activation_id)]  # fmt: skip
        args: list[str | int | bytes] = [parked.id, tid, encode(task), event, self.audit_retention_s]
        answer = await self._repush(keys=keys, args=args)
        outcome = answer.decode() if isinstance(answer, bytes) else str(answer)
        if outcome == "gone":
            raise NotFound(f"no parked entry {parked.id} (re-pushed or deleted meanwhile)")
        result = RepushResult(parked.id, "already_delivered" if outcome == "delivered" else "scheduled", sms_id, tid)
        await self._unindex(parked)
        log.info(
            "parked entry re-pushed",
            extra=log_fields(
                parked_id=parked.id,
                reason=parked.reason,
                sms_id=sms_id,
                task=tid,
                outcome=result.outcome,
                via=via,
                by=by,
            ),
        )
        return result

    async def _unindex(self, parked: Parked) -> None:
        """The console's parked index (store.park_raw) forgets a re-pushed push; best effort: the SMS log reads the
        ledger and the retry schedule before the index, so a member left behind changes nothing it shows."""
        tid = parked.source.get("task_id")
        if not tid:
            return
        try:
            await self.redis.zrem(PARKED_INDEX_KEY, tid)
        except Exception as exc:  # noqa: BLE001 - the re-push is done; only the console's view is concerned
            metrics.ACTIVITY_WRITE_FAILURES.inc()
            log.warning("parked index not updated", extra=log_fields(task=tid, error=type(exc).__name__))

    async def last_id(self) -> str:
        newest = _entries(await self.redis.xrevrange(PARKED_KEY, count=1))
        return newest[0][0] if newest else ""

    async def repush_batch(
        self, *, after: str = "", until: str = "", count: int = 100, via: str, by: str
    ) -> dict[str, Any]:
        """Re-push up to `count` entries after `after`, up to `until` (the newest entry when the walk began, so what is
        parked again during the walk waits for the next one). Undecodable entries are skipped and stay parked.
        Answers the counts and the cursor for the next call (`next`, None when done)."""
        check_count(count)
        check_operator(by)
        start = "(" + check_id(after) if after else "-"
        until = check_id(until) if until else await self.last_id()
        report: dict[str, Any] = {"scheduled": 0, "already_delivered": 0, "gone": 0, "skipped": [], "until": until}
        report["next"] = None
        if not until:
            return report
        entries = _entries(await self.redis.xrange(PARKED_KEY, start, until, count=count + 1))
        for entry_id, fields in entries[:count]:
            parked = Parked.from_stream(entry_id, fields)
            if parked.task is None:
                report["skipped"].append({"id": parked.id, "reason": parked.reason, "error": parked.decode_error})
                continue
            try:
                result = await self._repush_one(parked, via, by)
            except NotFound:
                report["gone"] += 1
                continue
            report[result.outcome] += 1
        if len(entries) > count:
            report["next"] = entries[count - 1][0]
        if entries:  # one operator event per batch; each entry's own event is in its activation's trail
            await self._record_operator(
                by, "parked_repush_all", scheduled=report["scheduled"], already_delivered=report["already_delivered"],
                gone=report["gone"], skipped=len(report["skipped"]), after=after or None, until=until,
                next=report["next"], via=via,
            )  # fmt: skip
        return report

    async def delete(self, entry_id: str, *, via: str, by: str) -> Parked:
        """Remove one entry (after an operator handled it): logged, and recorded in the activation's trail if known."""
        check_operator(by)
        parked = await self.get(entry_id)
        if not await self.redis.xdel(PARKED_KEY, entry_id):
            raise NotFound(f"no parked entry {entry_id} (re-pushed or deleted meanwhile)")
        sms_id = parked.task.message.sms_id if parked.task else None
        if parked.task is not None and parked.task.activation_id:
            event = audit.encode_event(
                "parked_delete", sms_id=sms_id, upstream=parked.task.upstream, parked_id=entry_id,
                reason=parked.reason, via=via, by=by,
            )  # fmt: skip
            await audit.append(self.redis, parked.task.activation_id, event, retention_s=self.audit_retention_s)
        log.info(
            "parked entry deleted",
            extra=log_fields(parked_id=entry_id, reason=parked.reason, sms_id=sms_id, via=via, by=by),
        )
        task = parked.task
        await self._record_operator(
            by, "parked_delete", parked_id=entry_id, reason=parked.reason, sms_id=sms_id,
            activation_id=task.activation_id if task else None, upstream=(task.upstream if task else "") or None,
            via=via,
        )  # fmt: skip
        return parked
