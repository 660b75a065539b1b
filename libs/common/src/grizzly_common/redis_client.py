"""Redis connections and Lua scripts shipped as package files."""

from __future__ import annotations

from importlib import resources
from types import ModuleType

import redis.asyncio as aioredis


def make_redis(url: str, max_connections: int = 64, timeout_s: float = 5.0, password: str = "") -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of raising "Too many connections". password:
    REDIS_PASSWORD (from the Secret; a password written in the URL wins).

    redis-py's default asyncio pool raises MaxConnectionsError under load; a blocking pool
    bounds the connections and queues the rest for up to timeout_s.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        password=password or None,
    )
    # from_pool: the client owns the pool, so aclose() also disconnects every pooled connection
    return aioredis.Redis.from_pool(pool)


def load_lua(package: str | ModuleType, name: str, *preludes: str) -> str:
    """The text of a .lua file shipped inside a package (e.g. grizzly_pool.lua), after the shared Lua functions
    it uses (preludes such as NEXT_ID_FUNCTION): Redis scripts cannot import, so shared code is prepended."""
    return "".join(preludes) + resources.files(package).joinpath(name).read_text(encoding="utf-8")


# Redis's own clock in ms: scripts that compute due times and holds use it, so pushers on hosts whose clocks
# differ still space retries and holds exactly. Loaded with load_lua(..., NOW_MS_FUNCTION).
NOW_MS_FUNCTION = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Unique numeric ids that survive a Redis wipe: the counter starts at (now in ms) * 1000, so a counter
# re-created later starts above every id handed out before (unless >1000 ids/ms were sustained).
# Stays below 2**53, so JSON consumers that parse numbers as doubles keep every digit.
# A script that hands out ids is loaded with load_lua(..., NEXT_ID_FUNCTION) and calls next_id(counter_key).
NEXT_ID_FUNCTION = """
local function next_id(counter_key)
  local id = redis.call('INCR', counter_key)
  if id < 1000000000000 then
    local t = redis.call('TIME')
    id = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
    redis.call('SET', counter_key, id)
  end
  return id
end
"""


async def persistence_warning(redis: aioredis.Redis) -> str | None:
    """Why this Redis could lose acknowledged writes on a crash or a power cut, or None when it is append-only with
    fsync per write (or does not let us ask: a managed Redis without CONFIG)."""
    try:
        config = await redis.config_get("append*")
    except aioredis.ResponseError:
        return None
    if config.get("appendonly") != "yes":
        return "Redis runs without its append-only file: a restart loses activations, pending pushes and the ledger"
    if config.get("appendfsync") != "always":
        return f"Redis fsyncs its append-only file {config.get('appendfsync')}: a power cut can lose the last writes"
    return None
