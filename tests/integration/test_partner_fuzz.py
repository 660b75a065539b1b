"""A property-based fuzz of the partner URL: whatever arrives (garbage bytes, any JSON, deep nesting, hostile field
values with a wrong or the right key), the answer is the protocol's envelope at HTTP 200, never a 500, and a refused
request (ERROR) leaves the pool's Redis exactly as it was. api-edge runs in this process, the pool as a real process
on real Redis."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis
from grizzly_common.redis_client import make_redis
from grizzly_edge.app import create_app
from grizzly_edge.settings import Settings
from grizzly_pool.store import NumberRow, PoolStore
from grizzly_testkit.infra import ServiceProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.integration.fixtures import UPSTREAM_KEY
from tests.integration.test_ingest_hostile_input import HOSTILE, encode, overridden, values

EXAMPLES = 6000  # with the ingest fuzz (test_ingest_hostile_input): over 10,000 cases a CI run
GET_NUMBER = {
    "action": "GET_NUMBER",
    "key": UPSTREAM_KEY,
    "country": 0,
    "operator": "any",
    "service": "tg",
    "sum": 0.35,
}
GET_NUMBER_FIELDS = ["country", "operator", "service", "sum", "currency", "exceptionPhoneSet", "canGetAnotherSms"]
FINISH = {"action": "FINISH_ACTIVATION", "key": UPSTREAM_KEY, "activationId": 1, "status": 1}
FINISH_FIELDS = ["activationId", "status", "action"]
CODES = st.sampled_from(["tg", "0", "any", "t|g", "tg\x00", "a b", "x" * 33, "", " tg ", "ru:0", "gp:*", "%s"])
AMOUNTS = st.sampled_from([0.35, 1e-7, 12.34567, 2**64 - 1, 2**64, -1, 10**13, 643, 0, -0.0, 1e-4, 5e-5])

envelopes = st.one_of(
    overridden(GET_NUMBER, GET_NUMBER_FIELDS),
    st.fixed_dictionaries(
        {"country": CODES | st.integers(), "operator": CODES, "service": CODES, "sum": AMOUNTS, "currency": AMOUNTS}
    ).map(lambda fields: {**GET_NUMBER, **fields}),
    overridden(FINISH, FINISH_FIELDS),
    st.fixed_dictionaries(
        {
            "activationId": st.sampled_from(HOSTILE) | st.integers(),
            "status": st.integers(-1, 7) | st.sampled_from(HOSTILE),
        }
    ).map(lambda fields: {**FINISH, **fields}),
    overridden({"action": "GET_SERVICES", "key": UPSTREAM_KEY}, ["action", "key"]),
    st.fixed_dictionaries({"action": st.text(max_size=12) | st.sampled_from(HOSTILE), "key": st.just(UPSTREAM_KEY)}),
)
bodies = st.one_of(
    envelopes.map(lambda body: (body, False)),
    envelopes.map(lambda body: ({**body, "key": "not-the-partner-key"}, False)),
    values.map(lambda body: (body, False)),
    envelopes.map(lambda body: (body, True)),  # gzip
    st.binary(max_size=64).map(lambda raw: (raw, False)),
    st.binary(max_size=64).map(lambda raw: (raw, True)),
)


async def _seed(redis_url: str) -> None:
    client = make_redis(redis_url, max_connections=2)
    try:
        rows = [NumberRow.checked(79005000000 + i, "xq", "mts", "fuzz", f"s{i}") for i in range(5)]
        assert (await PoolStore(client).add_numbers(rows)).added == len(rows)
    finally:
        await client.aclose()


def redis_state(client: redis.Redis) -> dict[bytes, Any]:
    """Every key of the pool's database and its DUMP. A day's earnings hash is compared by its fields without the
    "_" placeholder the store writes, once a day, to give the key its TTL (the first pool call of a day, refused or
    not, makes it)."""
    keys = sorted(client.scan_iter(count=1000))
    dumps = client.pipeline(transaction=False)
    for key in keys:
        if key.startswith(b"gp:earn:"):
            dumps.hgetall(key)
        else:
            dumps.dump(key)
    state: dict[bytes, Any] = {}
    for key, value in zip(keys, dumps.execute(), strict=True):
        if isinstance(value, dict):
            value = sorted((k, v) for k, v in value.items() if k != b"_")
            if not value:
                continue
        state[key] = value
    return state


def settled(edge: TestClient, timeout_s: float = 10.0) -> None:
    """Wait until the edge's claim settler has sent every confirmation and release (they reach the pool after the
    answer, in the background)."""
    claims = edge.app_state["claims"]
    deadline = time.monotonic() + timeout_s
    while claims.backlog and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not claims.backlog, "the edge did not settle its claims"


@pytest.fixture
def edge(start_service: Callable[..., ServiceProcess], stack_env: dict[str, str]) -> Iterator[TestClient]:
    asyncio.run(_seed(stack_env["REDIS_URL"]))
    start_service("pool", POOL_SERVICES="tg,wa")
    config = Settings.from_env({**stack_env, "EDGE_OPS_PORT": "0", "EDGE_RATE_LIMIT_RPS": "0"})
    with TestClient(create_app(config), raise_server_exceptions=True) as client:
        yield client


@pytest.mark.single_pass  # 6,000 generated requests: the edge's answers, not how Redis and Kafka run
def test_every_answer_is_the_envelope_at_200_and_refusals_leave_the_pool_unchanged(
    edge: TestClient, stack_env: dict[str, str], record_property: Callable[[str, object], None]
) -> None:
    store = redis.Redis.from_url(stack_env["REDIS_URL"])
    baseline = [redis_state(store)]
    answered: dict[str, int] = {}
    first: list[tuple[Any, ...]] = []
    previous: list[Any] = [None]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies, depth=st.integers(min_value=1, max_value=5000), path=st.sampled_from(["/", "/GrizzlySMS.php"]))
    def post(body: tuple[Any, bool], depth: int, path: str) -> None:
        payload, zipped = body
        raw = payload if isinstance(payload, bytes) else encode(payload, depth)
        headers = {"Content-Encoding": "gzip"} if zipped else {}
        reply = edge.post(path, content=gzip.compress(raw) if zipped else raw, headers=headers)
        assert reply.status_code == 200, (reply.status_code, reply.text, raw[:300])
        answer = orjson.loads(reply.content)
        status = answer["status"]
        prior, previous[0] = previous[0], (raw[:200], answer)
        answered[status] = answered.get(status, 0) + 1
        assert status in ("SUCCESS", "NO_NUMBERS", "ERROR"), answer
        if status == "ERROR":
            assert set(answer) == {"status", "error"} and isinstance(answer["error"], str), answer
            assert answer["error"] != "internal error", raw[:300]
            now = redis_state(store)
            if now != baseline[0]:
                changed = sorted(k for k in set(now) | set(baseline[0]) if now.get(k) != baseline[0].get(k))
                first.append((changed, answer, raw[:300], prior))  # the one that did it (shrinking replays)
                raise AssertionError(f"a refused request changed {first[0][0]}: {first[0][1]}, {first[0][2]!r}, "
                                     f"after {first[0][3]}")  # fmt: skip
        else:  # GET_SERVICES, NO_NUMBERS: what it looks like once the edge has settled its claims
            settled(edge)
            baseline[0] = redis_state(store)

    try:
        post()
    finally:
        store.close()
    for status, count in sorted(answered.items()):
        record_property(f"answered_{status}", count)
    assert sum(answered.values()) >= EXAMPLES and answered.get("ERROR", 0) > EXAMPLES // 2, answered
