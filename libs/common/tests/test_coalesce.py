"""grizzly_common.coalesce.Coalescer: concurrent calls share batches; each caller gets its own result or error."""

from __future__ import annotations

import asyncio

import pytest
from grizzly_common.coalesce import Coalescer


def test_concurrent_calls_share_batches_and_keep_their_results() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [item * 10 for item in items]

    async def run() -> list[int]:
        coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=8)
        results = await asyncio.gather(*(coalescer(i) for i in range(20)))
        await coalescer.aclose()
        return list(results)

    assert asyncio.run(run()) == [i * 10 for i in range(20)]
    assert [len(b) for b in batches] == [8, 8, 4]  # one batch in flight at a time, the rest queue behind it
    assert [i for b in batches for i in b] == list(range(20))  # in call order


def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    async def flush(items: list[int]) -> list[int]:
        if 0 in items:
            raise ConnectionError("redis down")
        return items

    async def run() -> None:
        coalescer: Coalescer[int, int] = Coalescer(flush)
        first = await asyncio.gather(coalescer(0), coalescer(1), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in first)
        assert await coalescer(2) == 2

    asyncio.run(run())


def test_a_wrong_result_count_is_an_error_not_a_mix_up() -> None:
    async def flush(items: list[int]) -> list[int]:
        return items[:-1]

    async def run() -> None:
        coalescer: Coalescer[int, int] = Coalescer(flush)
        with pytest.raises(RuntimeError):
            await asyncio.gather(coalescer(1), coalescer(2))
        await coalescer.aclose()

    asyncio.run(run())
