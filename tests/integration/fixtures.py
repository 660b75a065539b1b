"""Fixtures for every test in the repository (loaded by the root conftest.py, so services/*/tests see them too).

Session-wide real Redis and Kafka (see infra.py for how they are obtained), fresh state per test, the fake
platform, and the services as real processes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from grizzly_testkit.infra import (
    NO_ENGINE,
    Broker,
    ContainerKafka,
    ContainerRedis,
    ExternalServer,
    LocalKafka,
    LocalRedis,
    RedisLike,
    ServiceProcess,
    free_port,
    infra_mode,
)

from tests.integration.fake_grizzly import FakeGrizzly

UPSTREAM_KEY = "test-partner-key-0001"


def pytest_report_header(config: pytest.Config) -> str:
    """One line saying where Redis and Kafka come from (and why, when no Docker engine answers)."""
    try:
        mode = infra_mode()
    except RuntimeError as exc:
        return f"integration infra: {exc}"
    if mode == "containers":
        redis_image = os.environ.get("TEST_REDIS_IMAGE", "redis:7")
        kafka_image = os.environ.get("TEST_KAFKA_IMAGE", "apache/kafka:4.1.1")
        return f"integration infra: containers ({redis_image}, {kafka_image})"
    if mode == "local" and os.environ.get("TEST_INFRA", "auto") in ("auto", "containers"):
        return f"integration infra: local ({NO_ENGINE})"
    return f"integration infra: {mode}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """TEST_INFRA_ONLY=1 (the second CI suite): keep only the tests whose outcome can depend on where Redis and
    Kafka come from (they use the `infra` fixture, and are not marked single_pass) and the compose tests. The rest
    behave the same in any mode and already ran in the first suite."""
    if os.environ.get("TEST_INFRA_ONLY") != "1":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        compose = item.nodeid.startswith("tests/integration/test_compose_")
        uses_infra = "infra" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("single_pass")
        (keep if compose or uses_infra else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def infra() -> str:
    return infra_mode()


@pytest.fixture(scope="session")
def redis_server(infra: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisLike]:
    server: RedisLike
    if infra == "env":
        server = ExternalServer(os.environ["TEST_REDIS_URL"])
    elif infra == "containers":
        server = ContainerRedis()
    else:
        server = LocalRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_broker(infra: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker: Broker
    if infra == "env":
        broker = ExternalServer(os.environ["TEST_KAFKA_BOOTSTRAP"])
    elif infra == "containers":
        broker = ContainerKafka()
    else:
        broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()
    if isinstance(broker, ContainerKafka):
        broker.remove()


@pytest.fixture
def redis_url(redis_server: RedisLike) -> str:
    """Each test starts from an empty database."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


@pytest.fixture
def topic_prefix() -> str:
    """Each test gets its own topics (and consumer groups) on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def fake_grizzly() -> Iterator[FakeGrizzly]:
    fake = FakeGrizzly(key=UPSTREAM_KEY)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def stack_env(redis_url: str, kafka_broker: Broker, topic_prefix: str, fake_grizzly: FakeGrizzly) -> dict[str, str]:
    """The environment every service of one test's stack shares, with free ports for each service."""
    pool_port = free_port()
    return {
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "UPSTREAMS": "grizzly",
        "UPSTREAM_GRIZZLY_KEY": UPSTREAM_KEY,
        "UPSTREAM_GRIZZLY_PUSH_URL": fake_grizzly.url,
        "POOL_PORT": str(pool_port),
        "POOL_ADMIN_PORT": str(free_port()),
        "POOL_ADMIN_TOKEN": "test-admin-token-0001",
        # test numbers come from Ofcom's drama ranges (+44 7700 900xxx: reserved, never a real SIM), which the
        # phone-number plan calls invalid; test_pool_api checks the default (strict) on its own
        "POOL_NUMBER_CHECK": "off",
        "EDGE_PORT": str(free_port()),
        "EDGE_OPS_PORT": str(free_port()),
        "POOL_API_TOKEN": "test-pool-api-token-0001",
        "EDGE_POOL_URL": f"http://127.0.0.1:{pool_port}",
        "INGEST_PORT": str(free_port()),
        "INGEST_TOKEN": "test-ingest-token-0001",
        "INGEST_GOIP_TOKEN": "test-goip-token-0001",
        "INGEST_POOL_URL": f"http://127.0.0.1:{pool_port}",
        "PUSHER_PORT": str(free_port()),
        "PUSHER_POOL_URL": f"http://127.0.0.1:{pool_port}",
        "PUSHER_RETRY_S": "1",
        "LOG_LEVEL": "INFO",
    }


SERVICE_MODULES = {
    "pool": ("grizzly_pool", "POOL_PORT"),
    "edge": ("grizzly_edge", "EDGE_PORT"),
    "ingest": ("grizzly_ingest", "INGEST_PORT"),
    "pusher": ("grizzly_pusher", "PUSHER_PORT"),
    "console": ("grizzly_console", "CONSOLE_PORT"),
}


@pytest.fixture
def start_service(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """start_service("pool") starts that service as a process with the test's environment (plus overrides)."""
    started: list[ServiceProcess] = []

    def start(name: str, **overrides: str) -> ServiceProcess:
        module, port_var = SERVICE_MODULES[name]
        env = dict(stack_env, **overrides)
        process = ServiceProcess(module, env, int(env[port_var]), tmp_path / f"{name}-{len(started)}.log")
        if name == "edge" and int(env.get("EDGE_OPS_PORT", "0")):
            process.ready_port = int(env["EDGE_OPS_PORT"])
        started.append(process)
        process.start()
        return process

    yield start
    for process in reversed(started):
        process.stop()
