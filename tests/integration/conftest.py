"""Fixtures of the integration tests live in tests/integration/fixtures.py (loaded by the root conftest.py so that
services/*/tests share them). Add fixtures used only here below."""

from collections.abc import Iterator

import pytest

from tests.integration.fake_grizzly import FakePool


@pytest.fixture
def fake_pool() -> Iterator[FakePool]:
    """The pool's lookup API from a dict, for pusher tests that must not depend on the pool service."""
    pool = FakePool()
    pool.start()
    yield pool
    pool.stop()
