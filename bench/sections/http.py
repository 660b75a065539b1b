"""GET_NUMBER and GET_SERVICES through api-edge, next to the framework limit and the storage limit.

- framework limit: a trivial Starlette JSON endpoint in its own uvicorn process, served like the services;
- storage limit: the pool's Redis claim script called directly (sections/storage.py);
- api-edge -> pool -> Redis: GET_NUMBER+FINISH_ACTIVATION cycles (the pool does not drain) and GET_SERVICES.
The load generator is an aiohttp client in its own process (bench/loadgen.py), the same for every target.
"""

from __future__ import annotations

from typing import Any

import orjson

from bench import pool_load
from bench.infra import UPSTREAM_KEY, BenchEnv, module_available, run_loadgen
from bench.sections import storage
from bench.stats import Row

SECTION = "partner API (api-edge)"
TRIVIAL = "trivial Starlette endpoint"
CONCURRENCIES = (16, 64, 200)


def _spec(url: str, concurrency: int, env: BenchEnv, **kwargs: Any) -> dict[str, Any]:
    return {
        "url": url,
        "concurrency": concurrency,
        "duration_s": env.s(2.5, 10.0),
        "warmup_s": env.s(0.5, 2.0),
        "max_requests": env.n(40000, 200000),
        **kwargs,
    }


def run(env: BenchEnv, concurrencies: tuple[int, ...] = CONCURRENCIES) -> list[Row]:
    rows: list[Row] = []
    port = env.start_trivial()
    for concurrency in concurrencies:
        body = orjson.dumps({"action": "GET_SERVICES", "key": UPSTREAM_KEY}).decode()
        result = run_loadgen(_spec(f"http://127.0.0.1:{port}/", concurrency, env, body=body))
        rows.append(Row.from_summary(SECTION, TRIVIAL, result, concurrency=concurrency))
    env.stop_all()

    for row in storage.run(env, concurrencies):
        row.section, row.ref = SECTION, TRIVIAL
        rows.append(row)

    if not (module_available("grizzly_pool") and module_available("grizzly_edge")):
        rows.append(Row(SECTION, "api-edge", note="skipped: grizzly_pool / grizzly_edge not installed yet"))
        return rows

    env.flush_redis()
    stack = env.stack_env()
    stack.update(pool_load.POOL_ENV)
    numbers = env.n(20000, 100000)
    pool_load.bulk_import(env, stack, pool_load.write_csv(env.workdir / "edge.csv", numbers))
    env.start_service("pool", stack)
    env.start_service("edge", stack)
    url = f"http://127.0.0.1:{stack['EDGE_PORT']}/"
    for concurrency in concurrencies:
        spec = _spec(
            url,
            concurrency,
            env,
            mode="cycle",
            key=UPSTREAM_KEY,
            country=pool_load.COUNTRY,
            operator="any",
            services=list(pool_load.SERVICES[:10]),
            finish_status=4,
        )
        result = run_loadgen(spec)
        note = f"FINISH p50/p99 {result['finish_p50_ms']}/{result['finish_p99_ms']} ms"
        if result["errors"] or result["no_numbers"] or result["finish_errors"]:
            note += (
                f"; errors {result['errors']}, NO_NUMBERS {result['no_numbers']}, finish errors "
                f"{result['finish_errors']}"
            )
        rows.append(
            Row.from_summary(
                SECTION, "GET_NUMBER (+FINISH) via api-edge", result, concurrency=concurrency, ref=TRIVIAL, note=note
            )
        )
    # the platform's clients are not a closed loop: 200 clients, each asking once a second (open loop)
    clients = max(concurrencies)
    spec = _spec(
        url,
        clients,
        env,
        mode="cycle",
        key=UPSTREAM_KEY,
        country=pool_load.COUNTRY,
        operator="any",
        services=list(pool_load.SERVICES[:10]),
        finish_status=4,
        rate=float(clients),
    )
    spec["duration_s"] = env.s(4.0, 15.0)
    spec["warmup_s"] = env.s(2.0, 3.0)  # every client has connected (edge and pool sides) before the timed part
    result = run_loadgen(spec)
    rows.append(
        Row.from_summary(
            SECTION,
            f"GET_NUMBER (+FINISH), paced {clients}/s",
            result,
            concurrency=clients,
            note=f"open loop, each client once a second; errors {result['errors']}, NO_NUMBERS {result['no_numbers']}",
        )
    )
    for concurrency in concurrencies:
        body = orjson.dumps({"action": "GET_SERVICES", "key": UPSTREAM_KEY}).decode()
        result = run_loadgen(_spec(url, concurrency, env, body=body))
        rows.append(
            Row.from_summary(
                SECTION,
                "GET_SERVICES via api-edge",
                result,
                concurrency=concurrency,
                ref=TRIVIAL,
                note=f"{pool_load.SERVICES_COUNT} services, {numbers} numbers",
            )
        )
    env.stop_all()
    return rows
