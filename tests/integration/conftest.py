"""Fixtures of the integration tests live in tests/integration/fixtures.py (loaded by the root conftest.py so that
services/*/tests share them). Add fixtures used only here below."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grizzly_testkit.infra import LocalKafka, ServiceProcess

from tests.integration.fake_grizzly import FakePool


@pytest.fixture
def fake_pool() -> Iterator[FakePool]:
    """The pool's lookup API from a dict, for pusher tests that must not depend on the pool service."""
    pool = FakePool()
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker this test may stop and start (never the shared one)."""
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def start_pusher(start_service: Callable[..., ServiceProcess], fake_pool: FakePool) -> Callable[..., ServiceProcess]:
    """Start a pusher that looks numbers up in the fake pool and pushes to the fake platform, with a short lease and
    push timeout; a test module's own settings and each call's go on top."""

    def start(**overrides: str) -> ServiceProcess:
        env = {"PUSHER_POOL_URL": fake_pool.url, "PUSHER_LEASE_S": "4", "UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S": "1"}
        return start_service("pusher", **dict(env, **overrides))

    return start
