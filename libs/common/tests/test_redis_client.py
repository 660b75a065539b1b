"""Redis helpers against a real Redis: the persistence check the services log at start."""

from __future__ import annotations

import asyncio

from grizzly_common.redis_client import make_redis, persistence_warning


def test_persistence_warning_names_what_a_crash_would_lose(redis_url: str) -> None:
    async def run() -> list[str | None]:
        redis = make_redis(redis_url)
        try:
            original = str((await redis.config_get("appendfsync"))["appendfsync"])
            seen = []
            for fsync in ("everysec", "always"):
                await redis.config_set("appendfsync", fsync)
                seen.append(await persistence_warning(redis))
            await redis.config_set("appendfsync", original)
            return seen
        finally:
            await redis.aclose()

    everysec, always = asyncio.run(run())
    assert everysec is not None and "everysec" in everysec
    assert always is None
