"""Fixtures of the integration tests live in tests/integration/fixtures.py (loaded by the root conftest.py so that
services/*/tests share them). Add fixtures used only here below."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from grizzly_testkit.infra import LocalKafka

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
