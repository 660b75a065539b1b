"""PoolStore against a real Redis: inventory, counts, claims and finishes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from grizzly_common import audit
from grizzly_common.redis_client import make_redis
from grizzly_pool.store import Claimed, InventoryError, NumberRow, PoolStore

T = TypeVar("T")


def run(
    redis_url: str,
    body: Callable[[PoolStore], Awaitable[T]],
    *,
    cancel_limit: int = 4,
    sample_size: int = 16,
    retention_s: int = audit.DEFAULT_RETENTION_S,
) -> T:
    async def main() -> T:
        client = make_redis(redis_url)
        try:
            store = PoolStore(
                client, "gp:", cancel_limit=cancel_limit, sample_size=sample_size, retention_s=retention_s
            )
            return await body(store)
        finally:
            await client.aclose()

    return asyncio.run(main())


def rows(
    count: int, *, country: str = "ru", operator: str = "mts", device: str = "d1", start: int = 79000000000
) -> list[NumberRow]:
    return [NumberRow.checked(start + i, country, operator, device, str(i)) for i in range(count)]


async def claim(
    store: PoolStore, service: str = "tg", operator: str = "any", country: str = "ru", **kw: object
) -> Claimed | None:
    return await store.claim(
        upstream=str(kw.get("upstream", "grizzly")),
        country=country,
        operator=operator,
        service=service,
        sum="0.35",
        currency=None,
        exclude_prefixes=list(kw.get("prefixes", [])),  # type: ignore[call-overload]
        request_json="{}",
    )


async def count(store: PoolStore, service: str = "tg", country: str = "ru", operator: str = "any") -> int:
    table = (await store.snapshot(["tg", "wa"])).table(set())
    return table.get(country, {}).get(operator, {}).get(service, 0)


def test_concurrent_claims_after_count_give_exactly_that_many_distinct_numbers(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(60, device="d1") + rows(60, device="d2", start=79100000000))
        await store.set_device("d1", cap=25)
        assert await count(store) == 85
        results = await asyncio.gather(*(claim(store) for _ in range(200)))
        numbers = [r.number for r in results if r is not None]
        assert len(numbers) == 85 == len(set(numbers))
        assert len({r.activation_id for r in results if r is not None}) == 85
        assert await count(store) == 0

    run(redis_url, body)


def test_device_cap_offline_device_and_offline_number(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(5, device="d1") + rows(5, device="d2", start=79100000000))
        await store.set_device("d1", cap=2)
        assert await count(store) == 7
        await store.set_device("d2", online=False)
        assert await count(store) == 2
        await store.set_online([79000000000], False)
        assert await count(store) == 2  # still 4 free on d1, cap 2
        await store.set_device("d1", cap=0)
        assert await count(store) == 4
        got = {claimed.number for _ in range(4) if (claimed := await claim(store)) is not None}
        assert 79000000000 not in got and len(got) == 4
        assert await claim(store) is None

    run(redis_url, body)


def test_blocked_statuses_1_3_and_4_after_four_cancels(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(1))
        for status in (1, 3):
            await store.add_numbers(rows(1, device=f"d{status + 1}", start=79000000001 + status))
        first = await claim(store)
        assert first is not None
        assert (await store.finish(upstream="grizzly", activation_id=first.activation_id, status=1)).outcome == (
            "finished"
        )
        # every number except the one finished with 1 is still counted for tg
        assert await count(store) == 2
        assert await count(store, "wa") == 3
        sold = []
        for _ in range(2):
            c = await claim(store)
            assert c is not None and c.number != first.number
            await store.finish(upstream="grizzly", activation_id=c.activation_id, status=3)
            sold.append(c.number)
        assert await count(store) == 0
        assert await claim(store) is None
        # 4 cancels for wa on one number block it for wa only
        assert (await store.remove_numbers(sold)).removed == 2
        for _ in range(4):
            assert await count(store, "wa") == 1
            c = await claim(store, "wa")
            assert c is not None and c.number == first.number
            await store.finish(upstream="grizzly", activation_id=c.activation_id, status=4)
        assert await count(store, "wa") == 0
        assert await claim(store, "wa") is None

    run(redis_url, body)


def test_excluded_prefixes_of_several_lengths(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(
            [NumberRow.checked(n, "ru", "mts", "d1", str(i)) for i, n in enumerate(
                [79181110000, 79281110000, 79283110000, 79283210000, 79990000000])]
        )  # fmt: skip
        got = set()
        while (c := await claim(store, prefixes=["7918", "79281", "792831"])) is not None:
            got.add(c.number)
        assert got == {79283210000, 79990000000}

    run(redis_url, body, sample_size=1)


def test_operator_any_matches_all_operators_and_named_operator_only_its_own(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(2, operator="mts") + rows(2, operator="beeline", device="d2", start=79100000000))
        table = (await store.snapshot(["tg"])).table({"ru"})
        assert table == {"ru": {"mts": {"tg": 2}, "beeline": {"tg": 2}}}
        assert (await store.snapshot(["tg"])).table(set()) == {"ru": {"any": {"tg": 4}}}
        a = await claim(store, operator="beeline")
        assert a is not None and a.number >= 79100000000
        got = [await claim(store, operator="any") for _ in range(4)]
        assert sum(1 for g in got if g is not None) == 3

    run(redis_url, body)


def test_finish_is_idempotent_and_unknown_or_foreign_activation_is_unknown(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(1))
        c = await claim(store)
        assert c is not None
        assert (await store.finish(upstream="other", activation_id=c.activation_id, status=3)).outcome == "unknown"
        assert (await store.finish(upstream="grizzly", activation_id=12345, status=3)).outcome == "unknown"
        assert (await store.finish(upstream="grizzly", activation_id=c.activation_id, status=4)).outcome == "finished"
        again = await store.finish(upstream="grizzly", activation_id=c.activation_id, status=3)
        assert again == type(again)("repeat", 4)
        assert await count(store) == 1  # the 3 after the 4 did not block tg
        assert (await store.lookup(c.number)).found is False
        events = [e["event"] for e in await audit.read(store.redis, c.activation_id)]
        assert events == ["issued", "finish", "finish_repeat"]

    run(redis_url, body)


def test_refund_after_sold_is_recorded_and_number_stays_blocked(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(1))
        c = await claim(store)
        assert c is not None
        assert (await store.lookup(c.number)).activation_id == c.activation_id
        await store.finish(upstream="grizzly", activation_id=c.activation_id, status=3)
        await store.finish(upstream="grizzly", activation_id=c.activation_id, status=5)
        info = await store.number_info(c.number)
        assert info is not None and info["hist"] == {"b:tg": "3", "r:tg": "1"}
        assert await count(store) == 0 and await count(store, "wa") == 1

    run(redis_url, body)


def test_claim_after_script_flush_reloads_the_script(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(2))
        assert await claim(store) is not None
        await store.redis.script_flush()
        assert await claim(store) is not None

    run(redis_url, body)


def test_concurrent_claims_and_finishes_share_pipelines_and_survive_a_script_flush(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(20))
        first = await asyncio.gather(*(claim(store) for _ in range(10)))
        await store.redis.script_flush()  # every call of the next pipeline is answered NOSCRIPT, then sent again
        finishes = [store.finish(upstream="grizzly", activation_id=c.activation_id, status=4) for c in first if c]
        claims, finished = await asyncio.gather(
            asyncio.gather(*(claim(store) for _ in range(10))), asyncio.gather(*finishes)
        )
        assert [f.outcome for f in finished] == ["finished"] * 10
        assert all(claims) and len({c.number for c in claims if c}) == 10

    run(redis_url, body)


def test_a_failing_script_call_fails_only_its_own_caller(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(2))
        good = await claim(store)
        assert good is not None
        await store.redis.set("gp:act:999", "not a hash")
        bad, done = await asyncio.gather(
            store.finish(upstream="grizzly", activation_id=999, status=4),
            store.finish(upstream="grizzly", activation_id=good.activation_id, status=4),
            return_exceptions=True,
        )
        assert isinstance(bad, Exception) and "WRONGTYPE" in str(bad)
        assert not isinstance(done, BaseException) and done.outcome == "finished"

    run(redis_url, body)


def test_resolve_and_slot_conflict_and_busy_number_is_not_removed(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        report = await store.add_numbers(rows(2) + [NumberRow.checked(79500000000, "ru", "mts", "d1", "0")])
        assert (report.added, report.conflicts) == (2, [79500000000])
        assert (await store.resolve("d1", "1")).number == 79000000001
        assert (await store.resolve("d1", "9")).found is False
        c = await claim(store)
        assert c is not None
        removal = await store.remove_numbers([c.number, 79999999999])
        assert (removal.removed, removal.missing, removal.busy) == (0, 1, [c.number])

    run(redis_url, body)


def test_bad_inventory_values_are_refused() -> None:
    with pytest.raises(InventoryError, match="number"):
        NumberRow.checked("12ab", "ru", "mts", "d1", "1")
    with pytest.raises(InventoryError, match="operator 'any'"):
        NumberRow.checked("79000000000", "ru", "any", "d1", "1")
    with pytest.raises(InventoryError, match="country"):
        NumberRow.checked("79000000000", "r|u", "mts", "d1", "1")


def test_audit_trail_written_by_the_scripts_has_the_audit_module_format(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(1))
        c = await store.claim(upstream="grizzly", country="ru", operator="any", service="tg", sum="0.35",
                              currency=643, exclude_prefixes=[], request_json='{"action":"GET_NUMBER"}')  # fmt: skip
        assert c is not None
        await store.finish(upstream="grizzly", activation_id=c.activation_id, status=4)
        await store.finish(upstream="grizzly", activation_id=c.activation_id, status=3)
        events = await audit.read(store.redis, c.activation_id)
        assert all(isinstance(e.pop("ts_ms"), int) for e in events)
        assert events == [
            {"event": "issued", "upstream": "grizzly", "number": c.number, "country": "ru", "operator": "any",
             "service": "tg", "sum": "0.35", "currency": 643, "request": '{"action":"GET_NUMBER"}'},
            {"event": "finish", "upstream": "grizzly", "status": 4, "first": 4},
            {"event": "finish_repeat", "upstream": "grizzly", "status": 3, "first": 4},
        ]  # fmt: skip
        assert await store.redis.ttl(audit.activation_key(c.activation_id)) > 86400

    run(redis_url, body)


def test_migrate_builds_the_counts_and_indexes_of_a_pool_written_without_them(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(3) + rows(2, operator="bee", device="d2", start=79100000000))
        await store.add_numbers(rows(2, country="kz", operator="kcell", device="d2", start=77000000000))
        await store.set_device("d1", cap=2)
        busy = await claim(store)
        done = await claim(store, service="wa")
        assert busy is not None and done is not None
        await store.finish(upstream="grizzly", activation_id=done.activation_id, status=3)
        before = await store.snapshot(["tg", "wa"])
        stats = await store.stats()
        # what a version without them wrote: no terms, per-device groups, rows, totals, indexes nor layout
        derived = [k for pattern in ("cs:*", "ca:*", "dg:*", "cg:*", "og:*")
                   async for k in store.redis.scan_iter(f"gp:{pattern}")]  # fmt: skip
        await store.redis.delete(*derived, "gp:co", "gp:totals", "gp:layout")
        await store.redis.sadd("gp:cg:ru", "ru|mts|gone")  # a stale entry from an interrupted migration
        await store.redis.sadd("gp:numbers", 79000000000, 79000000001)  # the set of every number they kept
        assert await store.migrate() is True
        assert not await store.redis.exists("gp:numbers")
        await store.redis.sadd("gp:numbers", 79000000000)  # written by an older process still running
        assert await store.migrate() is False  # once; a later start still drops the old set
        assert not await store.redis.exists("gp:numbers")
        assert await store.snapshot(["tg", "wa"]) == before
        assert await store.stats() == stats
        assert not await store.redis.sismember("gp:cg:ru", "ru|mts|gone")
        got = [await claim(store) for _ in range(4)]
        assert len({c.number for c in got if c is not None}) == 3  # d1 holds one more (cap 2), d2 two bee
        assert await claim(store) is None

    run(redis_url, body)


def test_claim_walks_every_group_when_the_sample_misses(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        for d in range(40):
            await store.add_numbers(rows(2, device=f"d{d:02d}", start=79000000000 + 100 * d))
            await store.set_device(f"d{d:02d}", online=d == 17)
        got = [await claim(store) for _ in range(3)]
        assert [c is not None for c in got] == [True, True, False]
        assert {c.number for c in got if c is not None} == {79000001700, 79000001701}

    run(redis_url, body)


def test_finished_activation_and_its_trail_expire_after_the_retention_open_ones_never(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await store.add_numbers(rows(2))
        done, still_open = await claim(store), await claim(store)
        assert done is not None and still_open is not None
        assert await store.redis.ttl(f"gp:act:{done.activation_id}") == -1
        assert await store.redis.ttl(audit.activation_key(done.activation_id)) == -1
        await store.finish(upstream="grizzly", activation_id=done.activation_id, status=3)
        for key in (f"gp:act:{done.activation_id}", audit.activation_key(done.activation_id)):
            assert 3000 < await store.redis.ttl(key) <= 3600
        for key in (f"gp:act:{still_open.activation_id}", audit.activation_key(still_open.activation_id)):
            assert await store.redis.ttl(key) == -1
        await store.redis.expire(f"gp:act:{done.activation_id}", 10)
        await store.finish(upstream="grizzly", activation_id=done.activation_id, status=5)  # a repeat: kept longer
        assert await store.redis.ttl(f"gp:act:{done.activation_id}") > 3000

    run(redis_url, body, retention_s=3600)


def test_the_inventory_is_listed_whole_devices_at_a_time_each_number_once(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        added = [r for d in range(12) for r in rows(40, device=f"bank{d:02d}", start=79000000000 + 1000 * d)]
        await store.add_numbers(added)
        await store.remove_numbers([added[0].number])
        seen: list[int] = []
        cursor, pages = 0, 0
        while True:
            cursor, page = await store.list_numbers(cursor, 64)
            devices = {row["device"] for row in page}
            assert len(page) < 64 + 40  # bounded whatever Redis does with a small set (SSCAN gives it all)
            assert all(sum(r["device"] == d for r in page) == 40 - (d == "bank00") for d in devices)  # whole
            seen += [row["number"] for row in page]
            pages += 1
            if cursor == 0:
                break
        assert sorted(seen) == sorted(r.number for r in added[1:]) and pages > 1
        assert (await store.stats())["numbers"] == len(added) - 1
        cursor, sims = await store.sims(count=1000)
        assert cursor == 0 and len(sims) == len(added) - 1

    run(redis_url, body)
