"""What the admin API reads for the console, on a real Redis: the activation listing (ids walked downward in bounded
pages), a number's chain of activations, and the device rows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from grizzly_common.redis_client import make_redis
from grizzly_pool.store import ACT_GAP, NumberRow, PoolStore

T = TypeVar("T")


def run(redis_url: str, body: Callable[[PoolStore], Awaitable[T]]) -> T:
    async def main() -> T:
        client = make_redis(redis_url)
        try:
            return await body(PoolStore(client, "gp:", suspect_streak=1))
        finally:
            await client.aclose()

    return asyncio.run(main())


async def claim(store: PoolStore, service: str = "tg") -> int:
    got = await store.claim(upstream="grizzly", country="ru", operator="any", service=service, sum="1", currency=None,
                            exclude_prefixes=[], request_json="{}")  # fmt: skip
    assert got is not None
    return got.activation_id


def every(row: dict[str, Any]) -> bool:
    return True


def test_listing_walks_ids_down_in_bounded_calls_and_skips_small_gaps(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers([NumberRow.checked(79008000000 + i, "ru", "mts", "d1", str(i)) for i in range(3)])
        old = [await claim(store, "wa")]
        await store.finish(upstream="grizzly", activation_id=old[0], status=4)
        gap = ACT_GAP - 10  # ids that expired (or never existed): skipped
        await store.redis.incrby(store.keys.fixed("actid"), gap)
        middle = await claim(store)
        await store.finish(upstream="grizzly", activation_id=middle, status=4)
        await store.redis.incrby(store.keys.fixed("actid"), gap)
        ids = []
        for _ in range(5):
            ids.append(await claim(store))
            await store.finish(upstream="grizzly", activation_id=ids[-1], status=4)

        rows, after = await store.activations(before=None, count=2, keep=every)
        assert [r["id"] for r in rows] == ids[:2:-1][:2] and after == ids[3]
        rows, after = await store.activations(before=None, count=50, keep=every)
        assert [r["id"] for r in rows] == [*ids[::-1], middle, *old]
        if after is not None:  # the call ran out of its bound below the old one: the next one ends
            assert await store.activations(before=after, count=50, keep=every) == ([], None)
        # a call reads a bounded number of ids (at least ACT_GAP): one that finds nothing says where to go on, and
        # following `next` reaches the old one and ends
        rows, before = await store.activations(before=None, count=5, keep=lambda r: r["service"] == "wa", scan_max=1)
        assert rows == [] and before is not None and before < middle
        found: list[int] = []
        for _ in range(5):
            rows, before = await store.activations(before=before, count=5, keep=lambda r: r["service"] == "wa")
            found += [r["id"] for r in rows]
            if before is None:
                break
        assert found == old and before is None
        # a gap of ACT_GAP missing ids ends the listing
        await store.redis.incrby(store.keys.fixed("actid"), ACT_GAP + 1)
        newest = await claim(store)
        rows, after = await store.activations(before=None, count=50, keep=every)
        assert [r["id"] for r in rows] == [newest] and after is None

    run(redis_url, body)


def test_a_numbers_chain_ends_at_an_expired_activation(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers([NumberRow.checked(79008000100, "ru", "mts", "d1", "1")])
        ids = []
        for _ in range(4):
            ids.append(await claim(store))
            await store.finish(upstream="grizzly", activation_id=ids[-1], status=4)
        chain = await store.number_activations(79008000100)
        assert [r["id"] for r in chain] == ids[::-1]
        assert [r["id"] for r in await store.number_activations(79008000100, limit=2)] == ids[:1:-1]
        await store.redis.delete(store.keys.act(ids[1]))  # expired
        assert [r["id"] for r in await store.number_activations(79008000100)] == [ids[3], ids[2]]

    run(redis_url, body)


def test_device_rows_count_free_busy_offline_and_suspects(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        rows = [NumberRow.checked(79008000200 + i, "ru", ("mts", "bee")[i % 2], "d1", str(i)) for i in range(6)]
        rows += [NumberRow.checked(79008000300, "ru", "mts", "d2", "1")]
        await store.add_numbers(rows)
        await store.set_online([79008000200], False)
        busy = await claim(store)  # on d1 or d2
        suspect = await claim(store)
        await store.finish(upstream="grizzly", activation_id=suspect, status=4)  # no SMS: suspect
        assert await store.device_names() == ["d1", "d2"]
        d1, d2 = await store.devices(["d1", "d2"])
        assert d1["numbers"] == 6 and d2["numbers"] == 1 and d1["busy"] + d2["busy"] == 1
        assert d1["offline"] == 1 and d2["offline"] == 0
        assert d1["free"] + d2["free"] == 7 - 1 - 1
        assert d1["suspects"] + d2["suspects"] == 1 and d1["cap"] is None and d1["last_seen_ms"] is None
        assert busy != suspect

    run(redis_url, body)
