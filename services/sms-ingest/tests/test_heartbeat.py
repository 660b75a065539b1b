from __future__ import annotations

import asyncio
from typing import Any

from grizzly_common.pool_api import SEEN_MAX, SeenRequest, SeenResult
from grizzly_common.pool_client import PoolUnavailable
from grizzly_ingest.heartbeat import Heartbeats


class FakePool:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.down = False

    async def call(self, path: str, request: SeenRequest, result_type: type[Any]) -> SeenResult:
        assert path == "/v1/seen" and result_type is SeenResult
        if self.down:
            raise PoolUnavailable()
        self.calls.append(list(request.devices))
        return SeenResult(status="SUCCESS", known=len(request.devices))


def beats(pool: FakePool) -> Heartbeats:
    return Heartbeats(pool, 1.0)  # type: ignore[arg-type] # the fake has PoolClient.call's shape


def test_many_beats_of_one_device_are_one_entry_of_one_call() -> None:
    pool = FakePool()
    hb = beats(pool)
    for _ in range(1000):
        hb.seen("goip-a")
        hb.seen("pixel-7")
    assert asyncio.run(hb.flush()) == 2
    assert pool.calls == [["goip-a", "pixel-7"]]
    assert asyncio.run(hb.flush()) == 0 and len(pool.calls) == 1  # nothing new: no call


def test_calls_carry_at_most_seen_max_devices() -> None:
    pool = FakePool()
    hb = beats(pool)
    for index in range(SEEN_MAX * 2 + 5):
        hb.seen(f"dev-{index}")
    assert asyncio.run(hb.flush()) == SEEN_MAX * 2 + 5
    assert [len(call) for call in pool.calls] == [SEEN_MAX, SEEN_MAX, 5]


def test_a_failed_flush_keeps_the_devices_for_the_next() -> None:
    pool = FakePool()
    hb = beats(pool)
    hb.seen("goip-a")
    pool.down = True
    assert asyncio.run(hb.flush()) == 0
    pool.down = False
    assert asyncio.run(hb.flush()) == 1 and pool.calls == [["goip-a"]]


def test_names_the_pool_would_refuse_are_not_sent() -> None:
    pool = FakePool()
    hb = beats(pool)
    hb.seen("bad name with spaces")
    hb.seen("")
    hb.seen("x" * 200)
    assert asyncio.run(hb.flush()) == 0 and pool.calls == []


def test_without_a_pool_beats_are_ignored() -> None:
    hb = Heartbeats(None, 1.0)
    hb.seen("goip-a")
    assert asyncio.run(hb.flush()) == 0
