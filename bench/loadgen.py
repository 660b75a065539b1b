"""HTTP load generator, run as its own process so it does not share an event loop (or a core) with the target.

python -m bench.loadgen '<json spec>'  prints one JSON object (see `run`) on stdout.

Spec: url, mode ("post": the same body every time; "cycle": GET_NUMBER then FINISH_ACTIVATION so the pool does not
drain), concurrency, duration_s, max_requests, warmup_s, rate (optional: requests/s in total, open loop; default:
closed loop, every client sends again as soon as it has its answer), raw (include every latency), and for "post"
`body`, for "cycle" `key`, `country`, `operator`, `services` (rotated), `finish_status`.
Every load stops at duration_s or max_requests, whichever first.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from typing import Any

import aiohttp
import orjson

from bench import aio
from bench.stats import summarize


async def _phase(
    session: aiohttp.ClientSession, spec: dict[str, Any], duration_s: float, max_requests: int
) -> dict[str, Any]:
    url = spec["url"]
    mode = spec.get("mode", "post")
    body = spec.get("body", "").encode()
    services = itertools.cycle(spec.get("services", ["tg"]))
    latencies: list[float] = []
    finish_latencies: list[float] = []
    counts = {"errors": 0, "no_numbers": 0, "finish_errors": 0}
    issued = 0
    rate = float(spec.get("rate", 0.0))
    begin = time.perf_counter()
    deadline = begin + duration_s
    headers = {"Content-Type": "application/json"}

    async def post(payload: bytes) -> dict[str, Any]:
        async with session.post(url, data=payload, headers=headers) as reply:
            raw = await reply.read()
            if reply.status != 200:
                return {"status": f"HTTP {reply.status}"}
            return orjson.loads(raw)  # type: ignore[no-any-return]

    async def worker() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            seq = issued
            issued += 1
            if rate:  # open loop: request `seq` is due at begin + seq / rate, whatever the earlier answers did
                await asyncio.sleep(max(0.0, begin + seq / rate - time.perf_counter()))
            if mode == "post":
                payload = body
            else:
                payload = orjson.dumps(
                    {
                        "action": "GET_NUMBER",
                        "key": spec["key"],
                        "country": spec["country"],
                        "operator": spec["operator"],
                        "service": next(services),
                        "sum": 0.35,
                    }
                )
            t0 = time.perf_counter()
            try:
                answer = await post(payload)
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                counts["errors"] += 1
                continue
            latencies.append(time.perf_counter() - t0)
            status = answer.get("status")
            if status == "NO_NUMBERS":
                counts["no_numbers"] += 1
            elif status != "SUCCESS":
                counts["errors"] += 1
            elif mode == "cycle":
                finish = orjson.dumps(
                    {
                        "action": "FINISH_ACTIVATION",
                        "key": spec["key"],
                        "activationId": answer["activationId"],
                        "status": spec.get("finish_status", 4),
                    }
                )
                t1 = time.perf_counter()
                try:
                    done = await post(finish)
                    if done.get("status") != "SUCCESS":
                        counts["finish_errors"] += 1
                except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                    counts["finish_errors"] += 1
                finish_latencies.append(time.perf_counter() - t1)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    elapsed = time.perf_counter() - start
    fin = summarize(finish_latencies, elapsed)
    raw = {"latencies": latencies} if spec.get("raw") else {}
    return summarize(
        latencies,
        elapsed,
        counts["errors"],
        no_numbers=counts["no_numbers"],
        finish_errors=counts["finish_errors"],
        finish_p50_ms=fin["p50_ms"],
        finish_p99_ms=fin["p99_ms"],
        **raw,
    )


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=spec["concurrency"], force_close=False)
    timeout = aiohttp.ClientTimeout(total=spec.get("timeout_s", 10.0))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if spec.get("warmup_s", 0) > 0:
            await _phase(session, spec, spec["warmup_s"], spec["max_requests"])
        return await _phase(session, spec, spec["duration_s"], spec["max_requests"])


def main() -> None:
    spec = orjson.loads(sys.argv[1])
    result = aio.run(run(spec))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
