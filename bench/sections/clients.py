"""The pusher's HTTP client against the alternative: httpx.AsyncClient vs aiohttp.ClientSession.

Same fake push endpoint (its own process), same PUSH_SMS body, concurrency 1/16/64, a bounded number of requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from grizzly_common.messages import push_sms_body

from bench import aio
from bench.infra import BenchEnv
from bench.stats import Row, summarize

SECTION = "push HTTP client"
BODY = push_sms_body("bench-partner-key-0001", 1, 447700900123, "Telegram", "Telegram code: 51920")
HEADERS = {"Content-Type": "application/json", "User-Agent": "grizzly-partner/bench"}


async def _drive(send: Callable[[], Awaitable[None]], concurrency: int, total: int, max_s: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + max_s

    async def worker() -> None:
        nonlocal issued, errors
        while issued < total and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            try:
                await send()
            except Exception:  # noqa: BLE001 - counted, the figure shows it
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(latencies, time.perf_counter() - start, errors)


async def _aiohttp(url: str, concurrency: int, total: int, max_s: float) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as reply:
                await reply.read()

        await _drive(send, concurrency, min(total, 200), max_s)  # warm the connections
        return await _drive(send, concurrency, total, max_s)


async def _httpx(url: str, concurrency: int, total: int, max_s: float) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def send() -> None:
            reply = await client.post(url, content=BODY, headers=HEADERS)
            reply.read()

        await _drive(send, concurrency, min(total, 200), max_s)
        return await _drive(send, concurrency, total, max_s)


def run(env: BenchEnv) -> list[Row]:
    port = env.start_fake_push()
    url = f"http://127.0.0.1:{port}/agent/api/sms"
    total = env.n(600, 10000)
    max_s = env.s(4.0, 20.0)
    rows = []
    for concurrency in (1, 16, 64):
        for name, func in (("aiohttp ClientSession", _aiohttp), ("httpx AsyncClient", _httpx)):
            summary = aio.run(func(url, concurrency, total, max_s))
            rows.append(Row.from_summary(SECTION, name, summary, concurrency=concurrency, ref="httpx AsyncClient"))
    return rows
