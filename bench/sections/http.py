"""GET_NUMBER and GET_SERVICES through api-edge, next to the framework limit and the storage limit.

- framework limit: a trivial Starlette JSON endpoint in its own uvicorn process, served like the services;
- storage limit: the pool's Redis claim script called directly (sections/storage.py);
- api-edge -> pool -> Redis: GET_NUMBER+FINISH_ACTIVATION cycles (the pool does not drain) and GET_SERVICES.
Closed-loop loads use wrk (bench/wrkgen.py, C, 2 threads) when it is installed, else the aiohttp client in its own
process (bench/loadgen.py, or with BENCH_LOADGEN=python), the same for the trivial endpoint and the partner URL; each
row notes the generator's CPU share. With wrk the partner rows count requests (GET_NUMBER and FINISH alternating),
with the aiohttp client GET_NUMBER+FINISH cycles. The open-loop (paced) row always uses the aiohttp client.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from bench import pool_load, wrkgen
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


def use_wrk() -> bool:
    return wrkgen.available() and os.environ.get("BENCH_LOADGEN", "") != "python"


def closed_loop(spec: dict[str, Any], pids: dict[str, int] | None = None) -> dict[str, Any]:
    """A closed-loop load with this run's generator (wrk, else the aiohttp client). With wrk, the CPU per request of
    each process in pids (name -> pid) over the timed run is result["cpu_us"][name]."""
    return wrkgen.run(spec, pids) if use_wrk() else run_loadgen(spec)


def cpu_note(result: dict[str, Any]) -> str:
    """CPU per request of each measured process: on a shared machine a steadier figure than requests/s."""
    cpu = result.get("cpu_us") or {}
    return ("CPU per request " + ", ".join(f"{name} {us:.0f} µs" for name, us in cpu.items()) + "; ") if cpu else ""


def generator_note(result: dict[str, Any]) -> str:
    return f"{result.get('generator', 'aiohttp')} used {result.get('loadgen_cpu', 0)} CPU"


def tail_note(result: dict[str, Any], concurrency: int) -> str:
    """p99 against the queueing floor (Little's law: clients / throughput) and the slowest request, for the trivial
    endpoint too; with wrk, a run whose latencies contradict its throughput says so (wrkgen.latencies_wrong)."""
    floor = concurrency / result["ops_per_s"] * 1000 if result["ops_per_s"] else 0.0
    note = f"floor {floor:.1f} ms, p99/floor {result['p99_ms'] / floor if floor else 0:.2f}, max {result['max_ms']} ms"
    if result.get("generator") == "wrk" and wrkgen.latencies_wrong(result["mean_ms"], result["ops_per_s"], concurrency):
        in_flight = wrkgen.in_flight(result["mean_ms"], result["ops_per_s"])
        note += f" (latencies wrong: mean x throughput = {in_flight:.0f} in flight for {concurrency} clients)"
    return note


def hot_path_note(result: dict[str, Any], concurrency: int) -> str:
    """The tail (tail_note), the FINISH latencies, what failed, the CPU."""
    note = tail_note(result, concurrency)
    if "finish_p50_ms" in result:
        note += f"; FINISH p50/p99 {result['finish_p50_ms']}/{result['finish_p99_ms']} ms"
    failed = result["errors"] + result.get("no_numbers", 0) + result.get("finish_errors", 0)
    if failed:
        note += (
            f"; errors {result['errors']}, NO_NUMBERS {result.get('no_numbers', 0)}, finish errors "
            f"{result.get('finish_errors', 0)}"
        )
    return f"{note}; {cpu_note(result)}{generator_note(result)}"


def run(env: BenchEnv, concurrencies: tuple[int, ...] = CONCURRENCIES) -> list[Row]:
    rows: list[Row] = []
    for row in storage.run(env, concurrencies):
        row.section, row.ref = SECTION, TRIVIAL
        rows.append(row)

    have_services = module_available("grizzly_pool") and module_available("grizzly_edge")
    trivial_port = env.start_trivial()
    trivial_url = f"http://127.0.0.1:{trivial_port}/"
    trivial_pids = {name: pid for name, pid in (("trivial", env.pid(trivial_port)),) if pid is not None}
    url = ""
    hops: dict[str, int] = {}  # the partner URL's processes: api-edge, the pool, Redis
    numbers = env.n(20000, 100000)
    if have_services:
        env.flush_redis()
        stack = env.stack_env()
        stack.update(pool_load.POOL_ENV)
        pool_load.bulk_import(env, stack, pool_load.write_csv(env.workdir / "edge.csv", numbers))
        env.start_service("pool", stack)
        env.start_service("edge", stack)
        url = f"http://127.0.0.1:{stack['EDGE_PORT']}/"
        ports = {"edge": int(stack["EDGE_PORT"]), "pool": int(stack["POOL_PORT"])}
        ports["Redis"] = int(stack["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        hops = {name: pid for name, port in ports.items() if (pid := env.pid(port)) is not None}
    else:
        rows.append(Row(SECTION, "api-edge", note="skipped: grizzly_pool / grizzly_edge not installed yet"))
    # the trivial endpoint and the partner URL back to back at each concurrency: on a shared machine the load of
    # other work changes within minutes, so each ratio compares two loads taken seconds apart
    for concurrency in concurrencies:
        body = orjson.dumps({"action": "GET_SERVICES", "key": UPSTREAM_KEY}).decode()
        result = closed_loop(_spec(trivial_url, concurrency, env, body=body), trivial_pids)
        note = f"{tail_note(result, concurrency)}; {cpu_note(result)}{generator_note(result)}"
        rows.append(Row.from_summary(SECTION, TRIVIAL, result, concurrency=concurrency, note=note))
        if not url:
            continue
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
        result = closed_loop(spec, hops)
        case = "GET_NUMBER+FINISH requests via api-edge" if use_wrk() else "GET_NUMBER (+FINISH) via api-edge"
        rows.append(
            Row.from_summary(
                SECTION, case, result, concurrency=concurrency, ref=TRIVIAL, note=hot_path_note(result, concurrency)
            )
        )
    if not url:
        env.stop_all()
        return rows
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
        result = closed_loop(_spec(url, concurrency, env, body=body))
        rows.append(
            Row.from_summary(
                SECTION,
                "GET_SERVICES via api-edge",
                result,
                concurrency=concurrency,
                ref=TRIVIAL,
                note=f"{pool_load.SERVICES_COUNT} services, {numbers} numbers; {generator_note(result)}",
            )
        )
    env.stop_all()
    return rows
