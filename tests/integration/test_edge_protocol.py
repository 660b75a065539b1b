"""api-edge against the real pool and real Redis: the rules of the platform's tests that the edge makes visible.

Numbers are seeded straight into the pool's Redis store (PoolStore, default prefix); the pool and the edge run as
processes. Grizzly sends numeric countries: the pool maps our "ru" to Grizzly's "0" (POOL_COUNTRY_MAP_GRIZZLY).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from grizzly_common.redis_client import make_redis
from grizzly_pool.store import NumberRow, PoolStore
from grizzly_testkit.infra import ServiceProcess

from tests.integration.fixtures import UPSTREAM_KEY

pytestmark = pytest.mark.single_pass  # the protocol's answers, not how Redis and Kafka run

NUMBERS = [79001000001, 79001000002, 79181000003]
GET_NUMBER = {
    "action": "GET_NUMBER",
    "key": UPSTREAM_KEY,
    "country": 0,
    "operator": "any",
    "service": "tg",
    "sum": 0.35,
}
SERVICES = {"action": "GET_SERVICES", "key": UPSTREAM_KEY}


async def _seed(redis_url: str) -> None:
    redis = make_redis(redis_url, max_connections=2)
    try:
        rows = [NumberRow.checked(n, "ru", "mts", "bank1", f"s{i}") for i, n in enumerate(NUMBERS)]
        report = await PoolStore(redis).add_numbers(rows)
        assert report.added == len(NUMBERS)
    finally:
        await redis.aclose()


class Edge:
    def __init__(self, port: int, ops_port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.ops = f"http://127.0.0.1:{ops_port}"  # health and metrics
        self.http = httpx.Client(timeout=10)

    def post(self, body: dict[str, Any] | bytes, path: str = "/", **headers: str) -> dict[str, Any]:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        reply = self.http.post(self.base + path, content=content, headers=headers)
        assert reply.status_code == 200
        answer: dict[str, Any] = reply.json()
        return answer

    def count(self, service: str = "tg") -> int:
        answer = self.post(SERVICES)
        assert answer["status"] == "SUCCESS"
        return sum(
            services.get(service, 0)
            for country in answer["countryList"]
            for services in country["operatorMap"].values()
        )


@pytest.fixture
def stack(
    start_service: Callable[..., ServiceProcess], stack_env: dict[str, str]
) -> Iterator[tuple[Edge, ServiceProcess]]:
    asyncio.run(_seed(stack_env["REDIS_URL"]))
    pool = start_service("pool", POOL_COUNTRY_MAP_GRIZZLY="ru:0", POOL_SERVICES="tg,wa")
    start_service("edge")
    edge = Edge(int(stack_env["EDGE_PORT"]), int(stack_env["EDGE_OPS_PORT"]))
    yield edge, pool
    edge.http.close()


def test_get_number_types_are_json_numbers_with_country_code(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    answer = edge.post(GET_NUMBER)
    assert answer["status"] == "SUCCESS"
    assert type(answer["number"]) is int and type(answer["activationId"]) is int
    assert type(answer["flashcall"]) is bool and type(answer["voice"]) is bool
    assert answer["number"] in NUMBERS and str(answer["number"]).startswith("7")
    finish = {"action": "FINISH_ACTIVATION", "key": UPSTREAM_KEY, "activationId": answer["activationId"], "status": 3}
    assert edge.post(finish) == {"status": "SUCCESS"}
    assert edge.post(finish) == {"status": "SUCCESS"}  # the platform's resend: acknowledged again
    assert edge.post({**finish, "activationId": answer["activationId"] + 10**9})["status"] == "ERROR"


def test_string_country_is_accepted(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    assert edge.post({**GET_NUMBER, "country": "0"})["status"] == "SUCCESS"


def test_wrong_key_changes_nothing(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    before = edge.count()
    assert before == len(NUMBERS)
    issued = edge.post(GET_NUMBER)
    assert edge.count() == before - 1
    wrong = "wrong-partner-key-01"
    for body in (
        {**GET_NUMBER, "key": wrong},
        {**SERVICES, "key": wrong},
        {"action": "FINISH_ACTIVATION", "key": wrong, "activationId": issued["activationId"], "status": 4},
    ):
        answer = edge.post(body)
        assert answer["status"] == "ERROR" and "key" in answer["error"]
    assert edge.count() == before - 1  # no number taken, the activation still open
    finish = {"action": "FINISH_ACTIVATION", "key": UPSTREAM_KEY, "activationId": issued["activationId"], "status": 4}
    assert edge.post(finish) == {"status": "SUCCESS"}  # first finish is the real one
    assert edge.count() == before


def test_both_paths_work(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    root = edge.post(SERVICES, path="/")
    php = edge.post(SERVICES, path="/GrizzlySMS.php")
    assert root["status"] == php["status"] == "SUCCESS"
    assert root["countryList"] == php["countryList"]
    assert root["countryList"][0]["country"] == "0"


def test_gzip_in_and_out(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    body = gzip.compress(orjson.dumps(GET_NUMBER))
    with httpx.Client(timeout=10) as client:
        request = client.build_request(
            "POST",
            edge.base + "/GrizzlySMS.php",
            content=body,
            headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"},
        )
        reply = client.send(request, stream=True)
        try:
            raw = b"".join(reply.iter_raw())
        finally:
            reply.close()
    assert reply.status_code == 200
    assert reply.headers["content-encoding"] == "gzip"
    answer = orjson.loads(gzip.decompress(raw))
    assert answer["status"] == "SUCCESS" and type(answer["number"]) is int


def test_exception_prefixes_and_no_numbers(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    answer = edge.post({**GET_NUMBER, "exceptionPhoneSet": ["7900", 7918]})
    assert answer == {"status": "NO_NUMBERS"}
    assert edge.count() == len(NUMBERS)


def test_malformed_requests_are_error_200(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    for body in (b"", b"{", b"[]", b"3", orjson.dumps({**GET_NUMBER, "sum": "0.35"})):
        assert edge.post(body)["status"] == "ERROR"
    finish = {"action": "FINISH_ACTIVATION", "key": UPSTREAM_KEY, "activationId": "123", "status": 3}
    assert edge.post(finish)["status"] == "ERROR"
    reply = edge.http.get(edge.base + "/GrizzlySMS.php")
    assert reply.status_code == 200 and reply.json()["status"] == "ERROR"
    assert edge.count() == len(NUMBERS)


def test_pool_down_is_error_200(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, pool = stack
    pool.terminate()
    answer = edge.post(GET_NUMBER)
    assert answer["status"] == "ERROR" and "temporarily unavailable" in answer["error"]
    assert edge.http.get(edge.ops + "/readyz").status_code == 503


def test_health_and_metrics_only_on_the_ops_port(stack: tuple[Edge, ServiceProcess]) -> None:
    edge, _ = stack
    for path in ("/metrics", "/readyz", "/healthz"):
        assert edge.http.get(edge.base + path).status_code == 404
        assert edge.http.get(edge.ops + path).status_code == 200
    assert edge.http.post(edge.ops + "/", content=orjson.dumps(GET_NUMBER)).status_code == 404
