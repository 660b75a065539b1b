"""No number stays held by an activation the platform never heard of: api-edge, the pool and Redis as the real
thing, with a slow link between them (a proxy in this file) so that the edge, or the platform, gives up on claims.

The edge waits EDGE_POOL_TIMEOUT_S for a claim. When the pool's answer comes later, the platform gets ERROR and
the edge releases the claim id; when the claim itself reaches the pool late, the pool refuses it (released already,
past its deadline); when the platform hangs up before the edge answers, the edge releases too. A claim the edge
never settles (it crashed) is released by the pool after POOL_CLAIM_HOLD_S.
Either way the number is offered again and the counts are exact.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import aiohttp
import httpx
import orjson
import pytest
import redis
from aiohttp import web
from grizzly_common import audit
from grizzly_common.redis_client import make_redis
from grizzly_pool.store import NumberRow, PoolStore
from grizzly_testkit.infra import ServiceProcess, free_port

from tests.integration.fixtures import UPSTREAM_KEY

NUMBERS = [79003000001, 79003000002]
GET_NUMBER = {"action": "GET_NUMBER", "key": UPSTREAM_KEY, "country": 0, "operator": "any", "service": "tg",
              "sum": 0.35}  # fmt: skip
EDGE_TIMEOUT_S = 0.5


class SlowLink:
    """An HTTP proxy from the edge to the pool that can hold /v1/claim (or a /v1/batch with claims, how the edge
    sends them) before forwarding it (`claim_before_s`) or before answering it (`claim_after_s`); everything else
    passes at once."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.claim_before_s = 0.0
        self.claim_after_s = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        data = await request.read()
        # shielded: a held claim still reaches the pool after the edge has hung up
        return await asyncio.shield(self._pass(request.method, request.path_qs, data, request.headers.copy()))

    async def _pass(self, method: str, path: str, data: bytes, headers: Any) -> web.Response:
        assert self._session is not None
        slow = path == "/v1/claim" or (path == "/v1/batch" and bool(orjson.loads(data or b"{}").get("claims")))
        if slow and self.claim_before_s:
            await asyncio.sleep(self.claim_before_s)
        async with self._session.request(method, self.target + path, data=data, headers=headers) as reply:
            body = await reply.read()
            status, content_type = reply.status, reply.content_type
        if slow and self.claim_after_s:
            await asyncio.sleep(self.claim_after_s)
        return web.Response(body=body, status=status, content_type=content_type)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _seed(redis_url: str) -> None:
    client = make_redis(redis_url, max_connections=2)
    try:
        rows = [NumberRow.checked(n, "ru", "mts", "bank1", f"s{i}") for i, n in enumerate(NUMBERS)]
        assert (await PoolStore(client).add_numbers(rows)).added == len(NUMBERS)
    finally:
        await client.aclose()


class Stack:
    def __init__(self, env: dict[str, str], link: SlowLink) -> None:
        self.link = link
        self.edge = httpx.Client(base_url=f"http://127.0.0.1:{env['EDGE_PORT']}", timeout=10)
        self.pool = httpx.Client(
            base_url=f"http://127.0.0.1:{env['POOL_PORT']}",
            headers={"X-Internal-Token": env["POOL_API_TOKEN"]},
            timeout=10,
        )
        self.redis = redis.Redis.from_url(env["REDIS_URL"])

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self.edge.post("/", content=orjson.dumps(body))
        assert reply.status_code == 200
        answer: dict[str, Any] = reply.json()
        return answer

    def count(self) -> int:
        answer = self.post({"action": "GET_SERVICES", "key": UPSTREAM_KEY})
        return sum(ops.get("tg", 0) for country in answer["countryList"] for ops in country["operatorMap"].values())

    def activations(self) -> dict[int, dict[str, str]]:
        out = {}
        for key in self.redis.scan_iter(match="gp:act:*"):
            fields = self.redis.hgetall(key)
            out[int(cast(bytes, key).split(b":")[-1])] = {
                cast(bytes, k).decode(): cast(bytes, v).decode() for k, v in fields.items()
            }
        return out

    def trail(self, activation_id: int) -> list[dict[str, Any]]:
        return [orjson.loads(item) for item in self.redis.lrange(audit.activation_key(activation_id), 0, -1)]

    def wait_for(self, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def all_numbers_again(self) -> None:
        """Both numbers are offered and given again, once each; the counts follow exactly."""
        assert self.count() == len(NUMBERS)
        got = [self.post(GET_NUMBER) for _ in range(len(NUMBERS) + 1)]
        assert sorted(a.get("number", 0) for a in got[:-1]) == NUMBERS and got[-1] == {"status": "NO_NUMBERS"}
        assert self.count() == 0
        for answer in got[:-1]:
            finish = {"action": "FINISH_ACTIVATION", "key": UPSTREAM_KEY, "activationId": answer["activationId"],
                      "status": 4}  # fmt: skip
            assert self.post(finish) == {"status": "SUCCESS"}
        assert self.count() == len(NUMBERS)

    def close(self) -> None:
        self.edge.close()
        self.pool.close()
        self.redis.close()


@pytest.fixture
def stack(start_service: Callable[..., ServiceProcess], stack_env: dict[str, str]) -> Iterator[Stack]:
    asyncio.run(_seed(stack_env["REDIS_URL"]))
    start_service("pool", POOL_COUNTRY_MAP_GRIZZLY="ru:0", POOL_SERVICES="tg,wa", POOL_CLAIM_HOLD_S="2")
    link = SlowLink(f"http://127.0.0.1:{stack_env['POOL_PORT']}")
    link.start()
    start_service("edge", EDGE_POOL_URL=link.url, EDGE_POOL_TIMEOUT_S=str(EDGE_TIMEOUT_S))
    stack = Stack(stack_env, link)
    yield stack
    stack.close()
    link.stop()


def test_edge_timeout_after_the_pool_claimed_releases_the_number(stack: Stack) -> None:
    assert stack.count() == len(NUMBERS)
    stack.link.claim_after_s = 2 * EDGE_TIMEOUT_S  # the pool claims at once, its answer comes too late
    started = time.monotonic()
    assert stack.post(GET_NUMBER) == {"status": "ERROR", "error": "temporarily unavailable, retry"}
    assert time.monotonic() - started < 2 * EDGE_TIMEOUT_S
    stack.wait_for(lambda: [a["status"] for a in stack.activations().values()] == ["released"], timeout_s=3)
    [(activation_id, activation)] = stack.activations().items()
    assert [(e["event"], e.get("reason")) for e in stack.trail(activation_id)] == [("issued", None),
                                                                                  ("released", "edge")]  # fmt: skip
    assert stack.redis.ttl(f"gp:act:{activation_id}") > 0  # ended: expires after the retention
    assert stack.redis.zcard("gp:held") == 0

    stack.link.claim_after_s = 0
    stack.all_numbers_again()
    time.sleep(2.5)  # past POOL_CLAIM_HOLD_S: the confirmed activations were not released by the sweeper
    assert [a["status"] for a in stack.activations().values()].count("released") == 1


def test_edge_releases_the_number_when_the_platform_hung_up_before_the_answer(stack: Stack) -> None:
    stack.link.claim_after_s = EDGE_TIMEOUT_S / 2  # in time for the edge, too late for this platform
    with pytest.raises(httpx.ReadTimeout):
        stack.edge.post("/", content=orjson.dumps(GET_NUMBER), timeout=EDGE_TIMEOUT_S / 5)
    stack.wait_for(lambda: [a["status"] for a in stack.activations().values()] == ["released"], timeout_s=3)
    [activation_id] = stack.activations()
    assert stack.trail(activation_id)[-1]["reason"] == "edge"
    stack.link.claim_after_s = 0
    stack.all_numbers_again()


def test_edge_claim_reaching_the_pool_after_its_release_is_refused(stack: Stack) -> None:
    stack.link.claim_before_s = 2 * EDGE_TIMEOUT_S  # the edge gives up and releases before the claim arrives
    assert stack.post(GET_NUMBER)["status"] == "ERROR"
    stack.wait_for(lambda: 'pool_claims_total{result="REFUSED"} 1.0' in stack.pool.get("/metrics").text)
    assert stack.activations() == {}  # never claimed
    stack.link.claim_before_s = 0
    stack.all_numbers_again()


def test_pool_releases_a_claim_nobody_settled_after_the_hold(stack: Stack) -> None:
    """An edge that crashed between its claim and its settle: the pool's sweeper releases the claim."""
    claim: dict[str, Any] = {"upstream": "grizzly", "country": "0", "operator": "any", "service": "tg", "sum": "0.35",
             "currency": None, "exclude_prefixes": [], "request_json": "{}", "claim_id": uuid.uuid4().hex,
             "deadline_ms": int(time.time() * 1000) + 1000}  # fmt: skip
    got = stack.pool.post("/v1/claim", json=claim).json()
    assert got["status"] == "SUCCESS"
    assert stack.count() == len(NUMBERS) - 1
    time.sleep(1.0)
    assert stack.activations()[got["activation_id"]]["status"] == "open"  # within the hold (2 s)
    stack.wait_for(lambda: stack.activations()[got["activation_id"]]["status"] == "released", timeout_s=5)
    assert stack.trail(got["activation_id"])[-1]["reason"] == "unconfirmed"
    assert 'pool_claims_released_total{by="unconfirmed"} 1.0' in stack.pool.get("/metrics").text
    stack.all_numbers_again()
