"""SIM health and earnings on a real Redis: kept by the claim, finish, release and SMS scripts themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from grizzly_common import audit
from grizzly_common.redis_client import make_redis
from grizzly_pool.store import Claimed, NumberRow, PoolStore, earning_days, summarize_earnings

T = TypeVar("T")
A, B = 79000000001, 79000000002


def run(redis_url: str, body: Callable[[PoolStore], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        client = make_redis(redis_url)
        try:
            store = PoolStore(client, "gp:", cancel_limit=100, **options)
            await store.add_numbers([NumberRow.checked(n, "ru", "mts", "d1", str(n)) for n in (A, B)])
            return await body(store)
        finally:
            await client.aclose()

    return asyncio.run(main())


async def claim(store: PoolStore, sum: str = "0.35", currency: int | None = 643, **kw: Any) -> Claimed:
    tracked = {k: v for k, v in kw.items() if k in ("claim_id", "deadline_ms")}
    got = await store.claim(upstream="grizzly", country="ru", operator="mts", service=kw.get("service", "tg"),
                            sum=sum, currency=currency, exclude_prefixes=[str(B if kw.get("on") == A else A)],
                            request_json="{}", **tracked)  # fmt: skip
    assert got is not None
    return got


async def sim(store: PoolStore, number: int) -> dict[str, Any]:
    _, rows = await store.sims(device="d1")
    return next(r for r in rows if r["number"] == number)


def test_sim_health_counts_every_outcome_and_the_streak_without_sms(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        for status in (4, 1, 5):
            got = await claim(store, on=A, service=f"s{status}")
            await store.finish(upstream="grizzly", activation_id=got.activation_id, status=status)
        got = await claim(store, on=A)
        assert await store.sms_seen([(A, int(time.time() * 1000))]) == 1  # the open activation got it
        await store.finish(upstream="grizzly", activation_id=got.activation_id, status=3)
        row = await sim(store, A)
        assert {k: row[k] for k in ("issued", "sold", "refused", "cancelled", "refunded", "sms", "streak")} == {
            "issued": 4, "sold": 1, "refused": 1, "cancelled": 1, "refunded": 1, "sms": 1, "streak": 0,
        }  # fmt: skip
        assert row["last_sms_ms"] > 0 and row["suspect"] is False
        # an SMS that reached ingest before the activation was opened is not this activation's
        got = await claim(store, on=A, service="wa")
        assert await store.sms_seen([(A, int(time.time() * 1000) - 60_000)]) == 0
        await store.finish(upstream="grizzly", activation_id=got.activation_id, status=4)
        assert (await sim(store, A))["streak"] == 1

    run(redis_url, body)


def test_a_streak_without_sms_makes_a_sim_suspect_and_optionally_offline_in_the_audit_trail(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        ids = []
        for i in range(3):
            got = await claim(store, on=A, service=f"x{i}")
            ids.append(got.activation_id)
            await store.finish(upstream="grizzly", activation_id=got.activation_id, status=4)
        row = await sim(store, A)
        assert row["streak"] == 3 and row["suspect"] is True and row["online"] is False
        _, suspects = await store.sims(suspect=True)
        assert [r["number"] for r in suspects] == [A]
        events = await audit.read(store.redis, ids[-1])
        flagged = [e for e in events if e["event"] == "sim_suspect"]
        assert flagged == [{**flagged[0], "number": A, "streak": 3, "offline": True}]
        assert (await store.snapshot(["tg"])).table(set())["ru"]["any"]["tg"] == 1  # only B is offered now
        # an SMS clears the suspicion; the SIM stays offline until the operator brings it back
        await store.sms_seen([(A, int(time.time() * 1000))])
        row = await sim(store, A)
        assert row["streak"] == 0 and row["suspect"] is False and row["online"] is False

    run(redis_url, body, suspect_streak=3, suspect_offline=True)


def test_earnings_are_sold_minus_refunded_per_currency_and_a_release_is_not_issued(redis_url: str) -> None:
    async def body(store: PoolStore) -> None:
        sold = await claim(store, sum="0.35", on=A)
        await store.finish(upstream="grizzly", activation_id=sold.activation_id, status=3)
        dollars = await claim(store, sum="1.5", currency=840, on=B, service="wa")
        done = await store.finish(upstream="grizzly", activation_id=dollars.activation_id, status=3)
        assert (done.currency, done.earned_micros) == ("840", 1_500_000)
        refunded = await claim(store, sum="0.20", on=A, service="vk")
        await store.finish(upstream="grizzly", activation_id=refunded.activation_id, status=3)
        for _ in range(2):  # a refund after the sale takes the sum back once, however often it is repeated
            again = await store.finish(upstream="grizzly", activation_id=refunded.activation_id, status=5)
        assert again.earned_micros == 0
        released = await claim(store, on=B, claim_id="c1", deadline_ms=int(time.time() * 1000) + 60_000)
        assert await store.release_claims(["c1"]) == 1
        cancelled = await claim(store, on=B, service="ok")
        await store.finish(upstream="grizzly", activation_id=cancelled.activation_id, status=4)
        assert released.number == B

        rows = summarize_earnings(await store.earnings(earning_days("1d")), ["upstream"])
        assert rows == [
            {"upstream": "grizzly", "currency": "643", "issued": 3, "sold": 2, "refused": 0, "cancelled": 1,
             "refunded": 1, "amount": "0.35", "sell_through": 0.6667},
            {"upstream": "grizzly", "currency": "840", "issued": 1, "sold": 1, "refused": 0, "cancelled": 0,
             "refunded": 0, "amount": "1.5", "sell_through": 1.0},
        ]  # fmt: skip
        by_service = summarize_earnings(await store.earnings(earning_days("7d")), ["service"])
        assert [(r["service"], r["currency"], r["amount"]) for r in by_service] == [
            ("ok", "643", "0"), ("tg", "643", "0.35"), ("vk", "643", "0"), ("wa", "840", "1.5")
        ]  # fmt: skip
        assert 0 < await store.redis.ttl(store.keys.earn(earning_days("1d")[0])) <= 800 * 86400

    run(redis_url, body)
