"""CPU per request of each hop of the partner hot path, next to the trivial endpoint's, in one run.

    python -m bench.hopcpu [--before DIR] [--clients 16,64,200] [--seconds 4] [--rounds 2] [--numbers 20000]

Wall-clock ratios on a shared 2-core machine say as much about the other work on it as about the code; CPU time
per request does not. Each stack (this checkout, and with --before the tree at DIR, e.g. a `git archive` of an
older commit, run through PYTHONPATH) gets its own Redis, pool and api-edge; wrk loads the trivial endpoint and each
stack in turn at each client count (GET_NUMBER and FINISH_ACTIVATION(4) alternating, bench/wrk.lua), and the CPU
(user + system, /proc/<pid>/stat) each process used during the run is divided by the requests answered.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from grizzly_testkit.infra import LocalRedis

from bench import pool_load, wrkgen
from bench.infra import UPSTREAM_KEY, BenchEnv

SOURCES = ("services/api-edge/src", "services/pool/src", "libs/common/src")


@dataclass
class Stack:
    name: str
    url: str
    pids: dict[str, int]  # hop -> pid
    pool_url: str


def start_stack(env: BenchEnv, name: str, numbers: int, tree: Path | None) -> Stack:
    redis = LocalRedis(env.workdir / f"redis-{name}")
    redis.start()
    env._owned.append(redis)
    env.redis_url = redis.url
    stack = env.stack_env()
    stack.update(pool_load.POOL_ENV)
    if tree is not None:
        stack["PYTHONPATH"] = os.pathsep.join(str(tree / part) for part in SOURCES)
    pool_load.bulk_import(env, stack, pool_load.write_csv(env.workdir / f"{name}.csv", numbers))
    pool = env.start_service("pool", stack)
    edge = env.start_service("edge", stack)
    assert redis.process is not None and pool.process is not None and edge.process is not None
    pids = {"edge": edge.process.pid, "pool": pool.process.pid, "redis": redis.process.pid}
    return Stack(name, f"http://127.0.0.1:{stack['EDGE_PORT']}/", pids, stack["EDGE_POOL_URL"])


def load(url: str, clients: int, seconds: float, pids: dict[str, int], cycle: bool) -> dict[str, float]:
    spec: dict[str, object] = {"url": url, "concurrency": clients, "duration_s": seconds}
    if cycle:
        spec.update(mode="cycle", key=UPSTREAM_KEY, country=pool_load.COUNTRY, operator="any",
                    services=list(pool_load.SERVICES[:10]), finish_status=4)  # fmt: skip
    else:
        spec.update(body=orjson.dumps({"action": "GET_SERVICES", "key": UPSTREAM_KEY}).decode())
    wrkgen._wrk({**spec}, 1.0)  # warm up: every connection open on every hop
    before = {hop: wrkgen.process_cpu_s(pid) for hop, pid in pids.items()}
    result, wall, wrk_cpu = wrkgen._wrk(spec, seconds)
    after = {hop: wrkgen.process_cpu_s(pid) for hop, pid in pids.items()}
    requests = max(1, result["requests"])
    row = {f"{hop}_us": (after[hop] - before[hop]) / requests * 1e6 for hop in pids}
    row["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    row["p99_ms"] = result["p99_us"] / 1000
    row["wrong"] = wrkgen.latencies_wrong(result["mean_us"] / 1000, row["rps"], clients)
    row["bad"] = result["errors"] + result["other"] + result["no_numbers"] + result["timeouts"]
    row["wrk_cpu"] = wrk_cpu / wall
    row["busy"] = sum(after[hop] - before[hop] for hop in pids) / wall  # cores the measured processes used
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hopcpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="a source tree of the code to compare with (git archive)")
    parser.add_argument("--clients", default="16,64,200")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--numbers", type=int, default=20000)
    args = parser.parse_args(argv)
    env = BenchEnv(quick=True, workdir=Path(tempfile.mkdtemp(prefix="grizzly-hopcpu-")))
    try:
        trivial_port = env.start_trivial()
        trivial = env._processes[-1]
        assert trivial.process is not None
        trivial_pids = {"trivial": trivial.process.pid}
        stacks = [start_stack(env, "after", args.numbers, None)]
        if args.before is not None:
            stacks.insert(0, start_stack(env, "before", args.numbers, args.before.resolve()))
        print("round clients target          req/s  ratio  p99ms  bad  edge_us pool_us redis_us total_us  "
              "trivial_us  wrk   busy load")  # fmt: skip
        for round_ in range(args.rounds):
            for clients in (int(c) for c in args.clients.split(",")):
                base = load(f"http://127.0.0.1:{trivial_port}/", clients, args.seconds, trivial_pids, cycle=False)
                for stack in stacks:
                    row = load(stack.url, clients, args.seconds, stack.pids, cycle=True)
                    total = row["edge_us"] + row["pool_us"] + row["redis_us"]
                    print(
                        f"{round_:5d} {clients:7d} {stack.name:10s} {row['rps']:10.0f} {row['rps'] / base['rps']:6.3f} "
                        f"{row['p99_ms']:6.1f} {row['bad']:4.0f} {row['edge_us']:8.0f} {row['pool_us']:7.0f} "
                        f"{row['redis_us']:8.0f} {total:8.0f} {base['trivial_us']:11.0f} {row['wrk_cpu']:4.2f} "
                        f"{row['busy']:5.2f} {os.getloadavg()[0]:4.1f}",
                        flush=True,
                    )
                floor_ms = clients / base["rps"] * 1000
                wrong = " (latencies wrong)" if base["wrong"] else ""
                print(
                    f"        trivial: {base['rps']:.0f} req/s, p99 {base['p99_ms']:.1f} ms = "
                    f"{base['p99_ms'] / floor_ms:.1f}x its floor{wrong}, wrk {base['wrk_cpu']:.2f} CPU",
                    flush=True,
                )
                time.sleep(0.5)
    finally:
        env.close()


if __name__ == "__main__":
    main()
