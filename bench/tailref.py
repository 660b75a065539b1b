"""The tail servers that do no partner work show under wrk: what "p99 against the queueing floor" can be here.

    python -m bench.tailref [--clients 200] [--seconds 5] [--rounds 2] [--spin-us 60] [--threads 1,2]

The partner target in docs/benchmarks.md bounds p99 by 1.2x the queueing floor (clients / throughput) at 200
closed-loop clients. This loads, with the same wrk script as the partner rows (bench/wrkgen.py, bench/wrk.lua) and
each wrk thread count given, three servers in turn:
- raw: a bare uvloop protocol answering a constant HTTP response (bench/rawserver.py; wrk is the bottleneck);
- raw + spin: the same, busy for --spin-us of CPU per request, so it saturates its one core like a real server;
- trivial: the trivial Starlette endpoint the partner rows are compared with (bench/trivial.py).
and prints each one's throughput, p50, p99, slowest request, p99 against its floor, requests that failed, and mean
latency x throughput (the requests in flight by Little's law: never more than the clients when the latencies are
right; wrkgen.latencies_wrong marks a run where wrk's are not).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import orjson
from grizzly_testkit.infra import free_port

from bench import wrkgen
from bench.infra import BenchEnv


def start_raw(env: BenchEnv, spin_us: float) -> str:
    port = free_port()
    env.start_module("bench.rawserver", {"BENCH_RAW_PORT": str(port), "BENCH_RAW_SPIN_US": str(spin_us)}, port, "raw")
    return f"http://127.0.0.1:{port}/"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tailref", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spin-us", type=float, default=60.0)
    parser.add_argument("--threads", default="1,2", help="wrk thread counts to load each server with")
    args = parser.parse_args(argv)
    if not wrkgen.available():
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    env = BenchEnv(quick=True, workdir=Path(tempfile.mkdtemp(prefix="grizzly-tailref-")))
    try:
        targets = {
            "raw": start_raw(env, 0.0),
            f"raw + {args.spin_us:.0f} µs spin": start_raw(env, args.spin_us),
            "trivial Starlette endpoint": f"http://127.0.0.1:{env.start_trivial()}/",
        }
        body = orjson.dumps({"action": "GET_SERVICES", "key": "k"}).decode()
        print(f"{'server':28s} wrk -t {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>8s} {'floor ms':>8s} "
              "p99/floor failed in flight")  # fmt: skip
        for _ in range(args.rounds):
            for name, url in targets.items():
                for threads in (int(t) for t in args.threads.split(",")):
                    spec = {"url": url, "concurrency": args.clients, "threads": threads, "body": body,
                            "warmup_s": 1.0, "duration_s": args.seconds}  # fmt: skip
                    r = wrkgen.run(spec)
                    ratio = r["p99_ms"] / r["floor_ms"] if r["floor_ms"] else 0.0
                    in_flight = wrkgen.in_flight(r["mean_ms"], r["ops_per_s"])
                    wrong = wrkgen.latencies_wrong(r["mean_ms"], r["ops_per_s"], args.clients)
                    print(f"{name:28s} {threads:6d} {r['ops_per_s']:8.0f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
                          f"{r['max_ms']:8.1f} {r['floor_ms']:8.1f} {ratio:9.2f} {r['errors']:6d} "
                          f"{in_flight:9.0f}{'  latencies wrong' if wrong else ''}", flush=True)  # fmt: skip
    finally:
        env.close()


if __name__ == "__main__":
    main()
