"""The audit trail: every activation's request, number, SMS, and push attempt, kept in Redis for disputes.

Every service writes here through these functions (one shared REDIS_URL); the pool's admin API and CLI read it.
Keys (all under the optional prefix):
  audit:act:{activation_id}  list of JSON events, oldest first. No TTL while the activation is open (the pool's
                             claim writes it without one); from the activation's end (the pool's finish sets it)
                             it expires AUDIT_RETENTION_DAYS after the last event
  audit:unmatched            stream of SMS/calls that arrived for a number with no open activation (never pushed)
  audit:ops                  stream of operator changes (admin API, CLI, console), each with who made it
Secrets never go in: callers pass the platform's request without its key.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from grizzly_common.logging import log_fields

log = logging.getLogger(__name__)

DEFAULT_RETENTION_S = 90 * 86400  # services read AUDIT_RETENTION_DAYS (grizzly_common.settings.audit_retention_s)

# Append one event. A new list gets the TTL; an existing one only a longer TTL (GT), so an append never gives the
# trail of an open activation (no TTL) an expiry, nor shortens one set by a longer retention.
# The one way a Lua script appends to a trail (prepended with load_lua, like NEXT_ID_FUNCTION). A new trail gets the
# TTL; an existing one only a longer TTL (GT), so an append never gives the trail of an open activation (no TTL) an
# expiry, nor shortens one set by a longer retention. A key that is not a list (written by something else) is
# skipped: the trail serves disputes, and delivery must never fail because of it.
APPEND_FUNCTION = """
local function audit_append(key, event, retention_s)
  local n = redis.pcall('RPUSH', key, event)
  if type(n) ~= 'number' then
    return
  end
  if n == 1 then
    redis.call('EXPIRE', key, retention_s)
  else
    redis.call('EXPIRE', key, retention_s, 'GT')
  end
end
"""
_APPEND = APPEND_FUNCTION + "audit_append(KEYS[1], ARGV[1], ARGV[2])\n"
UNMATCHED_MAXLEN = 1_000_000  # approximate cap of the unmatched stream (oldest trimmed first)
OPS_MAXLEN = 100_000  # approximate cap of the operator stream: years of hand-made changes
# who made a change (X-Operator, a console login, "cli"): the one rule every service checks names against
OPERATOR_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def is_operator_name(by: str) -> bool:
    return OPERATOR_NAME.fullmatch(by) is not None


def activation_key(activation_id: int, prefix: str = "") -> str:
    return f"{prefix}audit:act:{activation_id}"


def unmatched_key(prefix: str = "") -> str:
    return f"{prefix}audit:unmatched"


def ops_key(prefix: str = "") -> str:
    return f"{prefix}audit:ops"


def _event(event: str, fields: dict[str, Any]) -> bytes:
    return orjson.dumps({"ts_ms": int(time.time() * 1000), "event": event, **fields}, default=str)


def encode_event(event: str, **fields: Any) -> bytes:
    """One trail event exactly as record() stores it, for writers that append it themselves (e.g. in a Lua script)."""
    return _event(event, fields)


async def record(
    redis: aioredis.Redis,
    activation_id: int,
    event: str,
    *,
    prefix: str = "",
    retention_s: int = DEFAULT_RETENTION_S,
    **fields: Any,
) -> None:
    """Append one event (e.g. "issued", "finish", "sms", "push_attempt") to an activation's trail."""
    await append(redis, activation_id, _event(event, fields), prefix=prefix, retention_s=retention_s)


async def append(
    redis: aioredis.Redis,
    activation_id: int,
    encoded_event: bytes,
    *,
    prefix: str = "",
    retention_s: int = DEFAULT_RETENTION_S,
) -> None:
    """Append an event already made by encode_event() to an activation's trail."""
    script = redis.register_script(_APPEND)  # EVALSHA; the script is loaded on the first NOSCRIPT
    await script(keys=[activation_key(activation_id, prefix)], args=[encoded_event, retention_s])


async def read(redis: aioredis.Redis, activation_id: int, *, prefix: str = "") -> list[dict[str, Any]]:
    raw = await redis.lrange(activation_key(activation_id, prefix), 0, -1)
    return [orjson.loads(item) for item in raw]


async def record_unmatched(redis: aioredis.Redis, *, prefix: str = "", **fields: Any) -> None:
    """An SMS or call for a number without an open activation: kept for an operator, not pushed."""
    await redis.xadd(
        unmatched_key(prefix), {"event": _event("unmatched", fields)}, maxlen=UNMATCHED_MAXLEN, approximate=True
    )


async def read_unmatched(redis: aioredis.Redis, *, prefix: str = "", count: int = 100) -> list[dict[str, Any]]:
    """The newest `count` unmatched messages, newest first."""
    entries = await redis.xrevrange(unmatched_key(prefix), count=count)
    return [orjson.loads(fields[b"event"]) for _id, fields in entries or [] if fields]


async def record_operator(redis: aioredis.Redis, by: str, action: str, *, prefix: str = "", **fields: Any) -> None:
    """One change an operator made (a device cap, a re-push, an import), with who made it."""
    await redis.xadd(
        ops_key(prefix), {"event": _event(action, {"by": by, **fields})}, maxlen=OPS_MAXLEN, approximate=True
    )


async def read_operator(redis: aioredis.Redis, *, prefix: str = "", count: int = 100) -> list[dict[str, Any]]:
    """The newest `count` operator changes, newest first."""
    entries = await redis.xrevrange(ops_key(prefix), count=count)
    return [orjson.loads(fields[b"event"]) for _id, fields in entries or [] if fields]


async def record_operator_or_log(
    redis: aioredis.Redis, by: str, action: str, *, prefix: str = "", **fields: Any
) -> None:
    """record_operator for a change already made: a failure is logged with who and what, never raised (the change
    stands, and a retry would find nothing left to do)."""
    try:
        await record_operator(redis, by, action, prefix=prefix, **fields)
    except Exception as exc:  # noqa: BLE001 - logged, never lost silently
        log.error(
            "operator change not recorded in audit:ops",
            extra=log_fields(by=by, action=action, error=type(exc).__name__, **fields),
        )
