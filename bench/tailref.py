"""The tail servers that do no partner work show under wrk: what "p99 against the queueing floor" can be here.

    python -m bench.tailref [--clients 200] [--seconds 5] [--rounds 2] [--spin-us 60] [--threads 1,2]

Issue #14 asks for p99 <= 1.2x the queueing floor (clients / throughput) at 200 closed-loop clients. This loads,
with the same wrk script as the partner rows (bench/wrk.lua) and 1 and 2 wrk threads, three servers in turn:
- raw: a bare uvloop protocol answering a constant HTTP response (no framework; wrk is the bottleneck);
- raw + spin: the same, busy for --spin-us of CPU per request (about the trivial endpoint's cost), so it saturates
  its one core like a real server;
- trivial: the trivial Starlette endpoint the partner rows are compared with (bench/trivial.py).
and prints each one's throughput, p50, p99, slowest request, p99 against its floor, and mean latency x throughput
(the requests in flight by Little's law: never more than the clients when the latencies are right; wrk's are not
always right at 200 connections against a server that saturates its core, and such a run is marked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import orjson
import uvloop
from grizzly_testkit.infra import free_port

from bench import wrkgen
from bench.infra import BenchEnv

_RESPONSE = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{"status":"SUCCESS"}'


class _Raw(asyncio.Protocol):
    """Answers each request (head, then content-length bytes of body) with _RESPONSE, after spin_s of busy CPU."""

    def __init__(self, spin_s: float) -> None:
        self._spin_s = spin_s
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end].lower()
            length = 0
            if (at := head.find(b"content-length:")) >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            until = time.perf_counter() + self._spin_s
            while time.perf_counter() < until:
                pass
            assert self._transport is not None
            self._transport.write(_RESPONSE)


async def _serve(port: int, spin_s: float) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: _Raw(spin_s), "127.0.0.1", port, backlog=2048)
    await server.serve_forever()


def load(url: str, clients: int, seconds: float, threads: int) -> dict[str, float]:
    body = orjson.dumps({"action": "GET_SERVICES", "key": "k"}).decode()
    spec = {"url": url, "concurrency": clients, "threads": threads, "body": body}
    wrkgen._wrk(spec, 1.0)  # warm up
    result, _, _ = wrkgen._wrk(spec, seconds)
    rps = result["requests"] / (result["duration_us"] / 1e6)
    floor_ms = clients / rps * 1000 if rps else float("inf")
    return {"rps": rps, "p50": result["p50_us"] / 1000, "p99": result["p99_us"] / 1000,
            "max": result["max_us"] / 1000, "floor": floor_ms, "in_flight": result["mean_us"] / 1e6 * rps}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tailref", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spin-us", type=float, default=60.0)
    parser.add_argument("--threads", default="1,2", help="wrk thread counts to load each server with")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the raw server itself, on this port
    args = parser.parse_args(argv)
    if args.serve:
        uvloop.run(_serve(args.serve, args.spin_us / 1e6))
        return
    if not wrkgen.available():
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    env = BenchEnv(quick=True, workdir=Path(tempfile.mkdtemp(prefix="grizzly-tailref-")))
    try:
        targets: dict[str, str] = {}
        for name, spin in (("raw", 0.0), (f"raw + {args.spin_us:.0f} µs spin", args.spin_us)):
            port = free_port()
            command = [sys.executable, "-m", "bench.tailref", "--serve", str(port), "--spin-us", str(spin)]
            process = subprocess.Popen(command, env=os.environ.copy())
            env._owned.append(_Stopper(process))
            _wait_port(port)
            targets[name] = f"http://127.0.0.1:{port}/"
        targets["trivial Starlette endpoint"] = f"http://127.0.0.1:{env.start_trivial()}/"
        print(f"{'server':28s} wrk -t {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>8s} {'floor ms':>8s} "
              "p99/floor in flight")  # fmt: skip
        for _ in range(args.rounds):
            for name, url in targets.items():
                for threads in (int(t) for t in args.threads.split(",")):
                    r = load(url, args.clients, args.seconds, threads)
                    wrong = "  latencies wrong" if r["in_flight"] > 1.05 * args.clients else ""
                    print(f"{name:28s} {threads:6d} {r['rps']:8.0f} {r['p50']:7.1f} {r['p99']:7.1f} {r['max']:8.1f} "
                          f"{r['floor']:8.1f} {r['p99'] / r['floor']:9.2f} {r['in_flight']:9.0f}{wrong}",
                          flush=True)  # fmt: skip
    finally:
        env.close()


class _Stopper:
    """A raw server process in BenchEnv's list of things close() stops."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"raw server not listening on :{port}")


if __name__ == "__main__":
    main()
