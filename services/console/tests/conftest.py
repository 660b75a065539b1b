"""Console unit-test fixtures: a console app in front of fake admin APIs (console_fakes.py, importable because
this folder goes on sys.path: pytest runs with importlib mode)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grizzly_console.app import create_app
from grizzly_console.settings import Settings
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from console_fakes import ENV, POOL_TOKEN, PUSHER_TOKEN, FakeAdmin, pool_answers, pusher_answers


@pytest.fixture
def pool() -> FakeAdmin:
    return FakeAdmin(POOL_TOKEN, pool_answers())


@pytest.fixture
def pusher() -> FakeAdmin:
    return FakeAdmin(PUSHER_TOKEN, pusher_answers())


@pytest.fixture
def make_client(pool: FakeAdmin, pusher: FakeAdmin) -> Iterator[Callable[..., TestClient]]:
    """make_client(**env overrides): a TestClient (lifespan running) for a console in front of the fakes."""
    clients: list[TestClient] = []

    def make(**overrides: str) -> TestClient:
        settings = Settings.from_env({**ENV, **overrides})
        app = create_app(settings, pool_transport=pool.transport(), pusher_transport=pusher.transport())
        client = TestClient(app, base_url="http://127.0.0.1:8085")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
