"""api-edge's claims on a real Redis: deadline, release (before or after the claim), confirm, and the sweeper's
release of claims nobody settled. A release puts the number back exactly as it was before the claim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest
from grizzly_common import audit
from grizzly_common.redis_client import make_redis
from grizzly_pool.store import Claimed, ClaimRefused, NumberRow, PoolStore, Snapshot

T = TypeVar("T")


def run(redis_url: str, body: Callable[[PoolStore], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        client = make_redis(redis_url)
        try:
            return await body(PoolStore(client, "gp:", retention_s=3600, **options))
        finally:
            await client.aclose()

    return asyncio.run(main())


async def seed(store: PoolStore, count: int = 2) -> None:
    rows = [NumberRow.checked(79000000000 + i, "ru", "mts", "d1", str(i)) for i in range(count)]
    await store.add_numbers(rows)
    await store.set_device("d1", cap=5)


async def claim(store: PoolStore, claim_id: str, deadline_ms: int | None = None, service: str = "tg") -> Claimed | None:
    return await store.claim(
        upstream="grizzly", country="ru", operator="any", service=service, sum="0.35", currency=None,
        exclude_prefixes=[], request_json="{}", claim_id=claim_id,
        deadline_ms=int(time.time() * 1000) + 5000 if deadline_ms is None else deadline_ms,
    )  # fmt: skip


async def state(store: PoolStore) -> tuple[Snapshot, dict[str, str]]:
    """Everything a count depends on, plus the device's counters."""
    dev = cast(dict[bytes, bytes], await store.redis.hgetall("gp:dev:d1"))
    return await store.snapshot(["tg", "wa"]), {k.decode(): v.decode() for k, v in dev.items()}


def test_release_after_the_claim_puts_the_number_back_exactly_and_is_recorded(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await seed(store)
        # a number blocked for wa: the blocked-free counter must come back too
        first = await claim(store, "warmup", service="wa")
        assert first is not None
        await store.finish(upstream="grizzly", activation_id=first.activation_id, status=3)
        before = await state(store)
        assert before[0].table(set())["ru"]["any"] == {"tg": 2, "wa": 1}

        held = [await claim(store, f"c{i}") for i in range(2)]
        assert all(c is not None for c in held)
        assert await store.release_claims(["c0", "c1", "never-claimed"]) == 2
        assert await state(store) == before
        assert await store.release_claims(["c0", "c1"]) == 0  # idempotent
        assert await state(store) == before
        for c in held:
            assert c is not None
            assert (await store.activation(c.activation_id))["status"] == "released"
            assert (await store.lookup(c.number)).found is False
            events = await audit.read(store.redis, c.activation_id)
            assert [e["event"] for e in events] == ["issued", "released"]
            assert events[1]["number"] == c.number and events[1]["reason"] == "edge"
            assert 3000 < await store.redis.ttl(f"gp:act:{c.activation_id}") <= 3600
            assert (await store.finish(upstream="grizzly", activation_id=c.activation_id, status=3)).outcome == (
                "released"
            )
        assert await state(store) == before  # the finish of a released activation changed nothing
        again = {c.number for c in [await claim(store, "d0"), await claim(store, "d1")] if c is not None}
        assert again == {c.number for c in held if c is not None}  # offered again
        assert await store.redis.zcard("gp:held") == 2

    run(redis_url, body)


def test_release_before_the_claim_and_a_passed_deadline_refuse_it(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await seed(store)
        before = await state(store)
        assert await store.release_claims(["early"]) == 0
        with pytest.raises(ClaimRefused):
            await claim(store, "early")
        with pytest.raises(ClaimRefused):
            await claim(store, "late", deadline_ms=int(time.time() * 1000) - 1)
        assert await state(store) == before
        assert await store.redis.zcard("gp:held") == 0

    run(redis_url, body)


def test_unsettled_claims_are_released_after_the_hold_confirmed_and_finished_ones_never(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        await seed(store, 4)
        before = await state(store)
        lost, confirmed, finished = [await claim(store, name) for name in ("lost", "confirmed", "finished")]
        assert lost is not None and confirmed is not None and finished is not None
        assert await store.confirm([confirmed.activation_id]) == 1
        await store.finish(upstream="grizzly", activation_id=finished.activation_id, status=4)
        assert await store.release_due() == 0  # within the hold
        await asyncio.sleep(0.6)
        assert await store.release_due() == 1
        assert (await store.activation(lost.activation_id))["status"] == "released"
        assert (await audit.read(store.redis, lost.activation_id))[-1]["reason"] == "unconfirmed"
        assert (await store.activation(confirmed.activation_id))["status"] == "open"
        assert await store.release_claims(["confirmed", "finished"]) == 0  # settled already: a release is a no-op
        assert (await store.activation(confirmed.activation_id))["status"] == "open"
        await store.finish(upstream="grizzly", activation_id=confirmed.activation_id, status=4)
        assert await state(store) == before
        assert await store.redis.zcard("gp:held") == 0
        assert await store.confirm([lost.activation_id]) == 0  # too late: it was released

    run(redis_url, body, hold_s=0.5)


def test_pipelined_calls_survive_their_kept_connection_being_closed(redis_url: str) -> None:
    """The round trips of claims and finishes keep their connections between batches: one that Redis closed (a
    restart, CLIENT KILL, a timeout) is reconnected before it is used, so the next batch succeeds."""

    async def body(store: PoolStore) -> None:
        await seed(store, 4)
        day = store.keys.earn("x")
        calls = [
            store.claim_call(
                {
                    "upstream": "grizzly",
                    "country": "ru",
                    "operator": "any",
                    "service": "tg",
                    "sum": "0.35",
                    "currency": None,
                    "exclude_prefixes": [],
                    "request_json": "{}",
                    "claim_id": f"k{i}",
                },
                earn_key=day,
                day="x",
            )  # fmt: skip
            for i in range(2)
        ]
        claimed, _ = await store.run_batch(calls, [])
        assert all(isinstance(c, Claimed) for c in claimed)
        assert store._kept, "the round trip's connection is kept for the next one"
        killed = await store.redis.client_kill_filter(_type="normal", skipme=True)
        assert int(killed) >= 1
        await asyncio.sleep(0.1)  # the event loop sees the connection closed
        first = cast(Claimed, claimed[0])
        _, finished = await store.run_batch([], [store.finish_call("grizzly", first.activation_id, 4, day)])
        assert [f if isinstance(f, Exception) else f.outcome for f in finished] == ["finished"]
        assert await claim(store, "after-kill") is not None

    run(redis_url, body)
