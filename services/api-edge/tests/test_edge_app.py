"""api-edge over HTTP (Starlette TestClient, lifespan running) against an in-process fake pool.

Every protocol failure is HTTP 200 {"status":"ERROR","error":...}; NO_NUMBERS is a result.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from edge_fake_pool import FakePool
from grizzly_common import pool_api
from grizzly_common.pool_api import SettleResult
from grizzly_edge import dispatch
from grizzly_edge.app import create_app
from grizzly_edge.settings import Settings
from grizzly_testkit.infra import free_port
from starlette.testclient import TestClient

KEY = "edge-unit-test-key-1"
OTHER_KEY = "edge-unit-test-key-2"


def make_settings(pool_url: str, **env: str) -> Settings:
    base = {
        "UPSTREAMS": "grizzly,smshub",
        "UPSTREAM_GRIZZLY_KEY": KEY,
        "UPSTREAM_SMSHUB_KEY": OTHER_KEY,
        "EDGE_POOL_URL": pool_url,
        "EDGE_MAX_BODY_BYTES": "4096",
        "EDGE_OPS_PORT": "0",  # health and metrics on the TestClient's one port
        "POOL_API_TOKEN": "edge-unit-pool-token",
    }
    return Settings.from_env({**base, **env})


@pytest.fixture(scope="module")
def fake_pool() -> Iterator[FakePool]:
    pool = FakePool()
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture
def pool(fake_pool: FakePool) -> FakePool:
    fake_pool.reset()
    return fake_pool


@pytest.fixture
def client(pool: FakePool) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(pool.url))) as test_client:
        yield test_client


def post(client: TestClient, body: Any, path: str = "/", **kwargs: Any) -> dict[str, Any]:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    reply = client.post(path, content=content, **kwargs)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    result: dict[str, Any] = reply.json()
    return result


def assert_error(answer: dict[str, Any], contains: str = "") -> None:
    assert answer["status"] == "ERROR"
    assert isinstance(answer["error"], str) and answer["error"]
    assert contains.lower() in answer["error"].lower()
    assert set(answer) == {"status", "error"}


GET_NUMBER = {"action": "GET_NUMBER", "key": KEY, "country": 0, "operator": "any", "service": "tg", "sum": 0.35}


# --- dispatch and authentication -------------------------------------------------------------------------------


def test_get_services_answers_country_list(client: TestClient, pool: FakePool) -> None:
    country_list = [{"country": "0", "operatorMap": {"any": {"tg": 3, "wa": 1}}}]
    pool.services = pool_api.ServicesResult(countryList=country_list)
    answer = post(client, {"action": "GET_SERVICES", "key": KEY})
    assert answer == {"status": "SUCCESS", "countryList": country_list}
    assert pool.requests == [("/v1/services", {"upstream": "grizzly"})]


def test_second_upstream_key_is_passed_to_pool(client: TestClient, pool: FakePool) -> None:
    post(client, {"action": "GET_SERVICES", "key": OTHER_KEY})
    assert pool.requests == [("/v1/services", {"upstream": "smshub"})]


def test_both_default_paths_answer(client: TestClient) -> None:
    for path in ("/", "/GrizzlySMS.php"):
        assert post(client, {"action": "GET_SERVICES", "key": KEY}, path=path)["status"] == "SUCCESS"


def test_configured_paths_replace_defaults(pool: FakePool) -> None:
    with TestClient(create_app(make_settings(pool.url, EDGE_PATHS="/smshub,/agent.php"))) as client:
        assert post(client, {"action": "GET_SERVICES", "key": KEY}, path="/agent.php")["status"] == "SUCCESS"
        assert post(client, {"action": "GET_SERVICES", "key": KEY}, path="/smshub")["status"] == "SUCCESS"
        assert client.post("/", content=b"{}").status_code == 404


def test_wrong_key_is_error_200_and_pool_not_called(client: TestClient, pool: FakePool) -> None:
    for action in ("GET_SERVICES", "GET_NUMBER", "FINISH_ACTIVATION", "NOPE"):
        assert_error(post(client, {**GET_NUMBER, "action": action, "key": "wrong-key-000"}), "wrong key")
    assert pool.requests == []


def test_key_with_non_ascii_is_wrong_key(client: TestClient) -> None:
    assert_error(post(client, {"action": "GET_SERVICES", "key": "ключ"}), "wrong key")
    assert_error(post(client, b'{"action":"GET_SERVICES","key":"\\ud800"}'), "")  # lone surrogate: still ERROR


def test_unknown_action_is_error_200(client: TestClient, pool: FakePool) -> None:
    assert_error(post(client, {"action": "GET_BALANCE", "key": KEY}), "unknown action")
    assert pool.requests == []


def test_missing_key_or_action_is_error(client: TestClient) -> None:
    assert_error(post(client, {"action": "GET_SERVICES"}), "key")
    assert_error(post(client, {"key": KEY}), "action")


# --- GET_NUMBER ----------------------------------------------------------------------------------------------


def test_get_number_success_types(client: TestClient, pool: FakePool) -> None:
    pool.claim = pool_api.ClaimResult(status="SUCCESS", number=447700900123, activation_id=100245, flashcall=True)
    answer = post(client, GET_NUMBER)
    assert answer == {
        "status": "SUCCESS",
        "number": 447700900123,
        "activationId": 100245,
        "flashcall": True,
        "voice": False,
    }
    assert type(answer["number"]) is int and type(answer["activationId"]) is int


def test_get_number_request_sent_to_pool(client: TestClient, pool: FakePool) -> None:
    body = {**GET_NUMBER, "country": "RU", "sum": 0.35, "currency": 643, "exceptionPhoneSet": ["7918", 79281, "+7"]}
    post(client, body)
    (path, claim) = pool.requests[0]
    assert path == "/v1/claim"
    assert claim["upstream"] == "grizzly"
    assert claim["country"] == "ru"
    assert claim["sum"] == "0.35"
    assert claim["currency"] == 643
    assert claim["exclude_prefixes"] == ["7918", "79281", "7"]
    stored = orjson.loads(claim["request_json"])
    assert "key" not in stored and KEY not in claim["request_json"]
    assert stored["exceptionPhoneSet"] == ["7918", 79281, "+7"]


def test_numeric_country_accepted(client: TestClient, pool: FakePool) -> None:
    post(client, {**GET_NUMBER, "country": 12})
    assert pool.requests[0][1]["country"] == "12"


def test_no_numbers_is_a_result(client: TestClient, pool: FakePool) -> None:
    pool.claim = pool_api.ClaimResult(status="NO_NUMBERS")
    assert post(client, GET_NUMBER) == {"status": "NO_NUMBERS"}


def test_pool_error_is_passed_on(client: TestClient, pool: FakePool) -> None:
    pool.claim = pool_api.ClaimResult(status="ERROR", error="unknown service")
    assert_error(post(client, GET_NUMBER), "unknown service")


def settled(pool: FakePool, timeout_s: float = 5.0) -> dict[str, list[Any]]:
    """Every confirm and release the edge has sent to the pool so far (waits for the first one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sent = [body for path, body in pool.requests if path == "/v1/settle"]
        if sent:
            return {
                "confirm": [i for b in sent for i in b["confirm"]],
                "release": [c for b in sent for c in b["release"]],
            }
        time.sleep(0.02)
    return {"confirm": [], "release": []}


def test_get_number_claim_has_an_id_and_a_deadline_and_a_given_number_is_confirmed(pool: FakePool) -> None:
    pool.claim = pool_api.ClaimResult(status="SUCCESS", number=79001234567, activation_id=77)
    with TestClient(create_app(make_settings(pool.url, EDGE_POOL_TIMEOUT_S="2"))) as client:
        sent_at = time.time() * 1000
        assert post(client, GET_NUMBER)["status"] == "SUCCESS"
        claim = pool.requests[0][1]
        assert len(claim["claim_id"]) == 32 and 1900 < claim["deadline_ms"] - sent_at < 2100
        assert settled(pool) == {"confirm": [77], "release": []}


@pytest.mark.parametrize("answer", ["ERROR", "timeout", "garbage"])
def test_get_number_claim_not_given_to_the_platform_is_released(pool: FakePool, answer: str) -> None:
    if answer == "ERROR":
        pool.claim = pool_api.ClaimResult(status="ERROR", error="temporarily unavailable, retry")
    elif answer == "garbage":
        pool.claim = {"unexpected": True}  # type: ignore[assignment]
    else:
        pool.claim = pool_api.ClaimResult(status="SUCCESS", number=79001234567, activation_id=77)
        pool.claim_delay_s = 1.0
    with TestClient(create_app(make_settings(pool.url, EDGE_POOL_TIMEOUT_S="0.3"))) as client:
        assert_error(post(client, GET_NUMBER))
        claim_id = pool.requests[0][1]["claim_id"]
        assert settled(pool) == {"confirm": [], "release": [claim_id]}


def released_total(client: TestClient) -> float:
    match = re.search(r"^edge_claims_released_total (\S+)$", client.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0


def test_release_is_retried_until_the_pool_accepts_it(pool: FakePool) -> None:
    pool.claim = pool_api.ClaimResult(status="ERROR", error="temporarily unavailable, retry")
    pool.settle = SettleResult(status="ERROR", error="temporarily unavailable, retry")
    with TestClient(create_app(make_settings(pool.url))) as client:
        before = released_total(client)
        assert_error(post(client, GET_NUMBER))
        claim_id = pool.requests[0][1]["claim_id"]

        def attempts() -> list[Any]:
            return [body["release"] for path, body in pool.requests if path == "/v1/settle"]

        deadline = time.monotonic() + 10
        while len(attempts()) < 2:  # refused, so sent again
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert all(release == [claim_id] for release in attempts())
        pool.settle = SettleResult(status="SUCCESS", released=1)
        deadline = time.monotonic() + 10
        while "edge_settle_backlog 0.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert released_total(client) == before + 1


@pytest.mark.parametrize(
    "change",
    [
        {"sum": "0.35"},
        {"sum": True},
        {"sum": -1},
        {"country": True},
        {"service": ""},
        {"operator": 5},
        {"exceptionPhoneSet": ["79a"]},
        {"exceptionPhoneSet": [True]},
        {"exceptionPhoneSet": "7918"},
        {"currency": "643"},
    ],
)
def test_get_number_bad_fields_are_error(client: TestClient, pool: FakePool, change: dict[str, Any]) -> None:
    assert_error(post(client, {**GET_NUMBER, **change}))
    assert pool.requests == []


def test_get_number_missing_field_is_error(client: TestClient, pool: FakePool) -> None:
    body = dict(GET_NUMBER)
    del body["service"]
    assert_error(post(client, body), "service")


# --- FINISH_ACTIVATION ----------------------------------------------------------------------------------------


def test_finish_success(client: TestClient, pool: FakePool) -> None:
    answer = post(client, {"action": "FINISH_ACTIVATION", "key": KEY, "activationId": 100245, "status": 3})
    assert answer == {"status": "SUCCESS"}
    assert pool.requests == [("/v1/finish", {"upstream": "grizzly", "activation_id": 100245, "status": 3})]


def test_finish_unknown_activation_is_error(client: TestClient, pool: FakePool) -> None:
    pool.finish = pool_api.FinishResult(status="ERROR", error="unknown activationId")
    assert_error(post(client, {"action": "FINISH_ACTIVATION", "key": KEY, "activationId": 1, "status": 3}), "unknown")


@pytest.mark.parametrize(
    "fields",
    [
        {"activationId": "123", "status": 3},
        {"activationId": 123, "status": "3"},
        {"activationId": 123, "status": True},
        {"activationId": 123.0, "status": 3},
        {"activationId": -1, "status": 3},
        {"activationId": 123, "status": 2},
        {"activationId": 123},
    ],
)
def test_finish_bad_fields_are_error(client: TestClient, pool: FakePool, fields: dict[str, Any]) -> None:
    assert_error(post(client, {"action": "FINISH_ACTIVATION", "key": KEY, **fields}))
    assert pool.requests == []


# --- malformed requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        (b"", "empty"),
        (b"{not json", "json"),
        (b"[]", "object"),
        (b"3", "object"),
        (b'"GET_SERVICES"', "object"),
        (b"\xff\xfe", "json"),
    ],
)
def test_malformed_body_is_error(client: TestClient, body: bytes, contains: str) -> None:
    assert_error(post(client, body), contains)


def test_get_request_is_error_200(client: TestClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        reply = client.request(method, "/GrizzlySMS.php")
        assert reply.status_code == 200
        assert_error(reply.json(), "POST")


def test_body_over_limit_with_content_length(client: TestClient, pool: FakePool) -> None:
    body = orjson.dumps({"action": "GET_SERVICES", "key": KEY, "pad": "x" * 5000})
    assert_error(post(client, body), "too large")
    assert pool.requests == []


def test_body_over_limit_without_content_length(client: TestClient, pool: FakePool) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"action":"GET_SERVICES","key":"' + KEY.encode() + b'","pad":"'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    reply = client.post("/", content=chunks())
    assert reply.status_code == 200
    assert_error(reply.json(), "too large")
    assert pool.requests == []


def test_chunked_body_within_limit_is_accepted(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"action":"GET_SERVICES",'
        yield b'"key":"' + KEY.encode() + b'"}'

    reply = client.post("/", content=chunks())
    assert reply.json()["status"] == "SUCCESS"


# --- gzip ----------------------------------------------------------------------------------------------------


def test_gzip_request_and_response_round_trip(client: TestClient, pool: FakePool) -> None:
    pool.services = pool_api.ServicesResult(countryList=[{"country": "0", "operatorMap": {"any": {"tg": 7}}}])
    body = gzip.compress(orjson.dumps({"action": "GET_SERVICES", "key": KEY}))
    reply = client.post("/", content=body, headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
    assert reply.status_code == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.json()["countryList"][0]["operatorMap"]["any"]["tg"] == 7  # httpx decompressed it


def test_no_gzip_answer_unless_accepted(client: TestClient) -> None:
    reply = client.post(
        "/", content=orjson.dumps({"action": "GET_SERVICES", "key": KEY}), headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in reply.headers
    assert reply.json()["status"] == "SUCCESS"
    reply = client.post(
        "/", content=orjson.dumps({"action": "GET_SERVICES", "key": KEY}), headers={"Accept-Encoding": "gzip;q=0"}
    )
    assert "content-encoding" not in reply.headers


def test_gzip_min_size_setting(pool: FakePool) -> None:
    with TestClient(create_app(make_settings(pool.url, EDGE_GZIP_MIN_BYTES="1000"))) as client:
        reply = client.post(
            "/", content=orjson.dumps({"action": "GET_SERVICES", "key": KEY}), headers={"Accept-Encoding": "gzip"}
        )
        assert "content-encoding" not in reply.headers


def test_gzip_bomb_is_refused(client: TestClient, pool: FakePool) -> None:
    bomb = gzip.compress(b'{"action":"GET_SERVICES","key":"' + KEY.encode() + b'","pad":"' + b"0" * 2_000_000 + b'"}')
    assert len(bomb) < 4096  # passes the raw limit, fails the decompressed one
    assert_error(post(client, bomb, headers={"Content-Encoding": "gzip"}), "too large")
    assert pool.requests == []


def test_bad_gzip_is_error(client: TestClient) -> None:
    assert_error(post(client, b"not gzip at all", headers={"Content-Encoding": "gzip"}), "gzip")
    truncated = gzip.compress(orjson.dumps({"action": "GET_SERVICES", "key": KEY}))[:-12]
    assert_error(post(client, truncated, headers={"Content-Encoding": "gzip"}), "gzip")
    assert_error(post(client, b"{}", headers={"Content-Encoding": "br"}), "content-encoding")


# --- the pool down or slow ---------------------------------------------------------------------------------------


def test_pool_down_is_error_quickly() -> None:
    # a generous pool timeout: a refused connection must not wait for it (the bound below is far from both)
    settings = make_settings(f"http://127.0.0.1:{free_port()}", EDGE_POOL_TIMEOUT_S="30")
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        answer = post(client, GET_NUMBER)
        elapsed = time.monotonic() - started
        assert_error(answer, "temporarily unavailable")
        assert elapsed < 15
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_pool_timeout_is_error(pool: FakePool) -> None:
    pool.delay_s = 2.0
    with TestClient(create_app(make_settings(pool.url, EDGE_POOL_TIMEOUT_S="0.2"))) as client:
        assert_error(post(client, {"action": "GET_SERVICES", "key": KEY}), "temporarily unavailable")


def test_ready_when_pool_answers(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200


def test_metrics_count_results(client: TestClient, pool: FakePool) -> None:
    pool.services = pool_api.ServicesResult(
        countryList=[
            {"country": "0", "operatorMap": {"mts": {"tg": 2}, "beeline": {"tg": 3, "wa": 1}}},
            {"country": "1", "operatorMap": {"any": {"tg": 4}}},
        ]
    )
    post(client, {"action": "GET_SERVICES", "key": KEY})
    pool.claim = pool_api.ClaimResult(status="SUCCESS", number=79001234567, activation_id=5)
    post(client, GET_NUMBER)
    text = client.get("/metrics").text
    assert 'edge_counts_reported{service="tg",upstream="grizzly"} 9.0' in text
    assert 'edge_counts_reported{service="wa",upstream="grizzly"} 1.0' in text
    assert 'edge_results_total{action="GET_NUMBER",status="SUCCESS"}' in text
    assert 'edge_numbers_issued_total{service="tg",upstream="grizzly"}' in text
    assert 'edge_request_seconds_bucket{action="GET_SERVICES"' in text
    assert KEY not in text


def test_key_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    post(client, {"action": "NOPE", "key": KEY})
    post(client, {"action": "GET_SERVICES", "key": "wrong-key-zzz"})
    assert KEY not in caplog.text and "wrong-key-zzz" not in caplog.text


def test_pool_garbage_answer_is_unavailable(client: TestClient, pool: FakePool) -> None:
    pool.claim = {"unexpected": True}  # type: ignore[assignment]
    assert_error(post(client, GET_NUMBER), "temporarily unavailable")


def test_unexpected_exception_is_error_200(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(call: object) -> object:
        raise RuntimeError("bug with key=" + KEY)

    monkeypatch.setitem(dispatch.ACTIONS, "GET_SERVICES", broken)
    assert_error(post(client, {"action": "GET_SERVICES", "key": KEY}), "internal error")


# --- coalescing ------------------------------------------------------------------------------------------------


def test_concurrent_requests_reach_the_pool_in_shared_batches(client: TestClient, pool: FakePool) -> None:
    pool.claim = pool_api.ClaimResult(status="SUCCESS", number=79001234567, activation_id=77)
    pool.delay_s = 0.2  # batches in flight for a while: the requests arriving meanwhile wait together
    finish = {"action": "FINISH_ACTIVATION", "key": KEY, "activationId": 77, "status": 4}
    bodies = [GET_NUMBER, finish] * 6
    with ThreadPoolExecutor(len(bodies)) as threads:
        answers = list(threads.map(lambda body: post(client, body), bodies))
    assert [a["status"] for a in answers] == ["SUCCESS"] * len(bodies)
    assert sum(len(b["claims"]) + len(b["finishes"]) for b in pool.batches) == len(bodies)
    assert len(pool.batches) < len(bodies)
    assert [path for path, _ in pool.requests if path != "/v1/settle"].count("/v1/claim") == 6


def test_a_pool_without_batches_is_asked_per_request(pool: FakePool) -> None:
    pool.batch_enabled = False  # an older pool: /v1/batch answers 404
    pool.claim = pool_api.ClaimResult(status="SUCCESS", number=79001234567, activation_id=77)
    with TestClient(create_app(make_settings(pool.url))) as client:
        assert post(client, GET_NUMBER)["number"] == 79001234567
        assert post(client, {"action": "FINISH_ACTIVATION", "key": KEY, "activationId": 77, "status": 4}) == {
            "status": "SUCCESS"
        }
    assert [path for path, _ in pool.requests if path != "/v1/settle"] == ["/v1/claim", "/v1/finish"]
    assert pool.batches == []
