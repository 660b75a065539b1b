"""The audit trail's TTL rules on a real Redis: an append never gives an open activation's trail an expiry."""

from __future__ import annotations

import asyncio

from grizzly_common import audit
from grizzly_common.redis_client import make_redis


def test_append_gives_a_new_trail_the_retention_and_never_shortens_or_adds_one(redis_url: str) -> None:
    async def main() -> None:
        redis = make_redis(redis_url, max_connections=2)
        try:
            await audit.record(redis, 1, "sms", retention_s=100)  # no trail yet: the append creates it
            assert 90 < await redis.ttl(audit.activation_key(1)) <= 100
            await audit.record(redis, 1, "push_attempt", retention_s=50)  # shorter: kept at 100
            assert await redis.ttl(audit.activation_key(1)) > 90
            await audit.record(redis, 1, "push_attempt", retention_s=500)  # longer: extended
            assert await redis.ttl(audit.activation_key(1)) > 400

            await redis.rpush(audit.activation_key(2), b'{"event":"issued"}')  # an open activation's trail
            await audit.record(redis, 2, "sms", retention_s=100)
            assert await redis.ttl(audit.activation_key(2)) == -1
            assert [e["event"] for e in await audit.read(redis, 2)] == ["issued", "sms"]
        finally:
            await redis.aclose()

    asyncio.run(main())
