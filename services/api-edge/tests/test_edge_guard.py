"""The partner URL's own defences: health and metrics only on the ops port, each upstream's source allowlist, a
per-source rate limit that never touches a platform, key rotation, and the pool's shared secret on every call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from edge_fake_pool import FakePool
from grizzly_common.security import RateLimiter
from grizzly_common.settings import SettingsError
from grizzly_edge.app import create_app
from grizzly_edge.settings import Settings
from starlette.testclient import TestClient

KEY = "edge-guard-test-key-1"
NEXT_KEY = "edge-guard-test-key-1-next"
OTHER_KEY = "edge-guard-test-key-2"
PLATFORM = ("203.0.113.7", 40000)  # inside grizzly's allowlist
STRANGER = ("198.51.100.9", 40000)
SERVICES = {"action": "GET_SERVICES", "key": KEY}


@pytest.fixture(scope="module")
def pool() -> Iterator[FakePool]:
    fake = FakePool()
    fake.start()
    yield fake
    fake.stop()


def settings(pool_url: str, **env: str) -> Settings:
    base = {
        "UPSTREAMS": "grizzly,smshub",
        "UPSTREAM_GRIZZLY_KEY": KEY,
        "UPSTREAM_SMSHUB_KEY": OTHER_KEY,
        "EDGE_POOL_URL": pool_url,
        "POOL_API_TOKEN": "edge-guard-pool-token",
    }
    return Settings.from_env({**base, **env})


def post(client: TestClient, body: dict[str, Any], base: str = "") -> dict[str, Any]:
    reply = client.post(base + "/", content=orjson.dumps(body))
    assert reply.status_code == 200
    answer: dict[str, Any] = reply.json()
    return answer


def test_health_and_metrics_only_on_the_ops_port(pool: FakePool) -> None:
    app = create_app(settings(pool.url, EDGE_PORT="8080", EDGE_OPS_PORT="8086"))
    with TestClient(app, base_url="http://edge:8080") as client:
        for path in ("/metrics", "/readyz", "/healthz"):
            assert client.get(path).status_code == 404
            assert client.get("http://edge:8086" + path).status_code == 200
        assert post(client, SERVICES)["status"] == "SUCCESS"
        assert client.post("http://edge:8086/", content=orjson.dumps(SERVICES)).status_code == 404


def test_every_pool_call_carries_the_shared_secret(pool: FakePool) -> None:
    pool.reset()
    with TestClient(create_app(settings(pool.url, EDGE_OPS_PORT="0"))) as client:
        post(client, SERVICES)
    assert pool.tokens == ["edge-guard-pool-token"]


def test_a_key_is_accepted_only_from_its_upstreams_networks(pool: FakePool) -> None:
    config = settings(pool.url, EDGE_OPS_PORT="0", UPSTREAM_GRIZZLY_ALLOW_CIDRS="203.0.113.0/24, 2001:db8::/32")
    app = create_app(config)
    with TestClient(app, client=PLATFORM) as client:
        assert post(client, SERVICES)["status"] == "SUCCESS"
    with TestClient(app, client=("2001:db8::5", 1)) as client:
        assert post(client, SERVICES)["status"] == "SUCCESS"
    pool.reset()
    with TestClient(app, client=STRANGER) as client:
        assert post(client, SERVICES) == {"status": "ERROR", "error": "source address not allowed"}
        # smshub has no list: its key works from anywhere
        assert post(client, {**SERVICES, "key": OTHER_KEY})["status"] == "SUCCESS"
    assert len(pool.requests) == 1


def test_when_every_upstream_is_restricted_strangers_are_refused_before_the_body(pool: FakePool) -> None:
    config = settings(
        pool.url,
        EDGE_OPS_PORT="0",
        UPSTREAM_GRIZZLY_ALLOW_CIDRS="203.0.113.0/24",
        UPSTREAM_SMSHUB_ALLOW_CIDRS="10.1.0.0/16",
    )
    with TestClient(create_app(config), client=STRANGER) as client:
        assert post(client, {"garbage": True}) == {"status": "ERROR", "error": "source address not allowed"}


def test_the_rate_limit_refuses_a_flood_but_never_a_platform(pool: FakePool) -> None:
    config = settings(
        pool.url,
        EDGE_OPS_PORT="0",
        UPSTREAM_GRIZZLY_ALLOW_CIDRS="203.0.113.0/24",
        EDGE_RATE_LIMIT_RPS="1",
        EDGE_RATE_LIMIT_BURST="3",
    )
    app = create_app(config)
    with TestClient(app, client=STRANGER) as client:
        answers = [post(client, {**SERVICES, "key": OTHER_KEY})["status"] for _ in range(6)]
        assert answers[:3] == ["SUCCESS"] * 3
        assert post(client, SERVICES) == {"status": "ERROR", "error": "rate limited, retry"}
    with TestClient(app, client=PLATFORM) as client:
        assert all(post(client, SERVICES)["status"] == "SUCCESS" for _ in range(50))
    with TestClient(app, client=("127.0.0.1", 1)) as client:  # this machine: the conformance kit
        assert all(post(client, {**SERVICES, "key": OTHER_KEY})["status"] == "SUCCESS" for _ in range(10))


def test_token_bucket_refills_and_its_table_is_bounded() -> None:
    limiter = RateLimiter(rate=10, burst=2, max_sources=100)
    assert [limiter.allow("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("a", now=0.1)  # one token back after 1/rate seconds
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", now=1.0)
    assert len(limiter) == 100
    assert RateLimiter(rate=0, burst=1).allow("x")  # 0: no limit


def test_during_a_key_changeover_both_keys_work(pool: FakePool) -> None:
    config = settings(pool.url, EDGE_OPS_PORT="0", UPSTREAM_GRIZZLY_NEXT_KEY=NEXT_KEY)
    assert NEXT_KEY not in repr(config)
    with TestClient(create_app(config)) as client:
        assert post(client, SERVICES)["status"] == "SUCCESS"
        assert post(client, {**SERVICES, "key": NEXT_KEY})["status"] == "SUCCESS"
        assert post(client, {**SERVICES, "key": NEXT_KEY + "x"}) == {"status": "ERROR", "error": "wrong key"}
    pool.reset()
    # the changeover done: NEXT_KEY became KEY, the old key is refused
    with TestClient(create_app(settings(pool.url, EDGE_OPS_PORT="0", UPSTREAM_GRIZZLY_KEY=NEXT_KEY))) as client:
        assert post(client, SERVICES) == {"status": "ERROR", "error": "wrong key"}
        assert post(client, {**SERVICES, "key": NEXT_KEY})["status"] == "SUCCESS"
    assert [body["upstream"] for _, body in pool.requests] == ["grizzly"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"UPSTREAM_GRIZZLY_NEXT_KEY": OTHER_KEY}, "NEXT_KEY"),  # another upstream's key
        ({"UPSTREAM_GRIZZLY_ALLOW_CIDRS": "203.0.113.0/33"}, "UPSTREAM_GRIZZLY_ALLOW_CIDRS"),
        ({"EDGE_OPS_PORT": "8080", "EDGE_PORT": "8080"}, "EDGE_OPS_PORT"),
        ({"EDGE_TLS_CERTFILE": "/tmp/cert.pem"}, "EDGE_TLS_KEYFILE"),
        ({"UPSTREAM_GRIZZLY_KEY": "REPLACE_ME_protocol_key"}, "UPSTREAM_GRIZZLY_KEY"),
        ({"UPSTREAM_GRIZZLY_KEY": "local-dev-partner-key"}, "UPSTREAM_GRIZZLY_KEY"),  # on 0.0.0.0
        ({"POOL_API_TOKEN": ""}, "POOL_API_TOKEN"),
        ({"POOL_API_TOKEN": "local-dev-pool-token", "EDGE_POOL_URL": "http://pool:8081"}, "POOL_API_TOKEN"),
    ],
)
def test_settings_errors_name_the_variable(pool: FakePool, env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        settings(pool.url, **env)


def test_example_values_are_fine_on_loopback(pool: FakePool) -> None:
    config = settings(
        pool.url, EDGE_HOST="127.0.0.1", UPSTREAM_GRIZZLY_KEY="local-dev-partner-key", POOL_API_TOKEN="local-dev-pool"
    )
    assert config.host == "127.0.0.1"
