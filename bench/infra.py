"""Where the benchmark runs: its own Redis/Kafka (or BENCH_REDIS_URL / BENCH_KAFKA_BOOTSTRAP), and processes.

Reuses grizzly_testkit.infra (LocalRedis, LocalKafka, ServiceProcess) so the services start exactly as in the
integration tests, with an environment shaped like tests/integration/fixtures.py stack_env.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from grizzly_testkit.infra import LocalKafka, LocalRedis, ServiceProcess, free_port

UPSTREAM_KEY = "bench-partner-key-0001"
SERVICE_MODULES = {
    "pool": ("grizzly_pool", "POOL_PORT"),
    "edge": ("grizzly_edge", "EDGE_PORT"),
    "ingest": ("grizzly_ingest", "INGEST_PORT"),
    "pusher": ("grizzly_pusher", "PUSHER_PORT"),
}


def module_available(module: str, part: str = "__main__") -> bool:
    """The service package has landed (by default: it has an entry point), so its section can run."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None and importlib.util.find_spec(f"{module}.{part}") is not None
    except ImportError:
        return False


@dataclass
class BenchEnv:
    """One benchmark run's servers, work dir and processes; close() stops everything it started."""

    quick: bool
    scale: float = 1.0  # multiplies every count and duration (--scale; the smoke test uses a tiny one)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="grizzly-bench-")))
    redis_url: str = ""
    kafka_bootstrap: str = ""
    imports: dict[int, dict[str, Any]] = field(default_factory=dict)  # pool size -> import figures of this run
    _owned: list[Any] = field(default_factory=list)
    _processes: list[ServiceProcess] = field(default_factory=list)

    def n(self, quick: int, full: int) -> int:
        """A count for this mode, scaled."""
        return max(1, int((quick if self.quick else full) * self.scale))

    def s(self, quick: float, full: float) -> float:
        """A duration (s) for this mode, scaled."""
        return max(0.2, (quick if self.quick else full) * self.scale)

    def redis(self) -> str:
        if not self.redis_url:
            url = os.environ.get("BENCH_REDIS_URL", "")
            if not url:
                server = LocalRedis(self.workdir / "redis")
                server.start()
                self._owned.append(server)
                url = server.url
            self.redis_url = url
        return self.redis_url

    def kafka(self) -> str:
        if not self.kafka_bootstrap:
            bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP", "")
            if not bootstrap:
                broker = LocalKafka(self.workdir / "kafka")
                broker.start()
                self._owned.append(broker)
                bootstrap = broker.bootstrap
            self.kafka_bootstrap = bootstrap
        return self.kafka_bootstrap

    def flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis())
        try:
            client.flushdb()
        finally:
            client.close()

    def stack_env(
        self, fake_push_url: str = "http://127.0.0.1:9/agent/api/sms", with_kafka: bool = False
    ) -> dict[str, str]:
        pool_port = free_port()
        env = {
            "REDIS_URL": self.redis(),
            "KAFKA_BOOTSTRAP": self.kafka() if with_kafka else os.environ.get("BENCH_KAFKA_BOOTSTRAP", "127.0.0.1:9"),
            "KAFKA_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}-",
            "UPSTREAMS": "grizzly",
            "UPSTREAM_GRIZZLY_KEY": UPSTREAM_KEY,
            "UPSTREAM_GRIZZLY_PUSH_URL": fake_push_url,
            "POOL_PORT": str(pool_port),
            "POOL_ADMIN_PORT": str(free_port()),
            "POOL_ADMIN_TOKEN": "bench-admin-token-0001",
            "EDGE_PORT": str(free_port()),
            "EDGE_OPS_PORT": "0",  # /readyz on EDGE_PORT, where the bench waits for it
            "EDGE_RATE_LIMIT_RPS": "0",  # the load comes from one address
            "POOL_API_TOKEN": "bench-pool-api-token-0001",
            "EDGE_POOL_URL": f"http://127.0.0.1:{pool_port}",
            "INGEST_PORT": str(free_port()),
            "INGEST_TOKEN": "bench-ingest-token-0001",
            "PUSHER_PORT": str(free_port()),
            "PUSHER_POOL_URL": f"http://127.0.0.1:{pool_port}",
            "PUSHER_RETRY_S": "10",
            "LOG_LEVEL": "WARNING",
        }
        return env

    def start_service(self, name: str, env: dict[str, str]) -> ServiceProcess:
        module, port_var = SERVICE_MODULES[name]
        return self.start_module(module, env, int(env[port_var]), name)

    def start_module(self, module: str, env: dict[str, str], port: int, name: str) -> ServiceProcess:
        process = ServiceProcess(module, env, port, self.workdir / "logs" / f"{name}-{len(self._processes)}.log")
        self._processes.append(process)
        process.start(timeout_s=90.0)
        return process

    def start_trivial(self) -> int:
        port = free_port()
        self.start_module("bench.trivial", {"BENCH_TRIVIAL_PORT": str(port)}, port, "trivial")
        return port

    def pid(self, port: int) -> int | None:
        """The process id of a service this run started (by the port it answers on), or of its own Redis (by
        Redis's port); None when the bench did not start it (BENCH_REDIS_URL)."""
        for process in self._processes:
            if process.port == port and process.process is not None:
                return process.process.pid
        for server in self._owned:
            if isinstance(server, LocalRedis) and server.port == port and server.process is not None:
                return server.process.pid
        return None

    def start_fake_push(self) -> int:
        port = free_port()
        self.start_module("bench.fake_push", {"BENCH_FAKE_PORT": str(port)}, port, "fake-push")
        return port

    def stop(self, process: ServiceProcess) -> None:
        process.stop()
        with contextlib.suppress(ValueError):
            self._processes.remove(process)

    def stop_all(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()

    def close(self) -> None:
        self.stop_all()
        for server in reversed(self._owned):
            with contextlib.suppress(Exception):
                server.stop()
        self._owned.clear()
        if os.environ.get("BENCH_KEEP_WORKDIR", "") != "1":  # CSVs, Kafka/Redis data, service logs
            shutil.rmtree(self.workdir, ignore_errors=True)


def run_loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """python -m bench.loadgen in its own process; bounded by the spec's duration plus a margin."""
    limit = spec.get("warmup_s", 0) + spec["duration_s"] + 60
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the services are not reaped meanwhile: the loadgen's
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", orjson.dumps(spec).decode()],
        capture_output=True,
        timeout=limit,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    result["loadgen_cpu"] = round(cpu / wall, 2) if wall > 0 else 0.0  # cores it used (warmup and startup included)
    result["generator"] = "aiohttp"
    return result


def http_json(url: str, body: dict[str, Any] | None = None, timeout_s: float = 30.0) -> Any:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as reply:
        return orjson.loads(reply.read())


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
