"""A tiny in-process fake of the pool's internal API (unit tests only): a Starlette app on uvicorn in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import msgspec
import uvicorn
from grizzly_common import pool_api
from grizzly_common.pool_api import SettleResult
from grizzly_testkit.infra import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class FakePool:
    """Records every request; answers with whatever the test set (claim / finish / services)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.tokens: list[str] = []  # X-Internal-Token of each request
        self.reset()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        self.requests.clear()
        self.tokens.clear()
        self.services = pool_api.ServicesResult(countryList=[])
        self.claim = pool_api.ClaimResult(status="NO_NUMBERS")
        self.finish = pool_api.FinishResult(status="SUCCESS")
        self.settle = SettleResult(status="SUCCESS")
        self.delay_s = 0.0
        self.claim_delay_s = 0.0  # only /v1/claim (and a /v1/batch with claims) answers this late
        self.batches: list[dict[str, Any]] = []  # /v1/batch bodies as sent
        self.batch_enabled = True  # False: /v1/batch answers 404 (an older pool)

    def app(self) -> Starlette:
        def endpoint(path: str, answer: str) -> Route:
            async def handle(request: Request) -> Response:
                self.requests.append((path, msgspec.json.decode(await request.body())))
                self.tokens.append(request.headers.get("x-internal-token", ""))
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.claim_delay_s and path == "/v1/claim":
                    await asyncio.sleep(self.claim_delay_s)
                return Response(msgspec.json.encode(getattr(self, answer)), media_type="application/json")

            return Route(path, handle, methods=["POST"])

        async def batch(request: Request) -> Response:
            # recorded item by item, as if each had been its own /v1/claim or /v1/finish call
            body = msgspec.json.decode(await request.body())
            if not self.batch_enabled:
                return Response(b"not found", status_code=404)
            self.batches.append(body)
            for path, items in (("/v1/claim", body.get("claims", [])), ("/v1/finish", body.get("finishes", []))):
                self.requests.extend((path, item) for item in items)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.claim_delay_s and body.get("claims"):
                await asyncio.sleep(self.claim_delay_s)
            answer = {
                "claims": [self.claim] * len(body.get("claims", [])),
                "finishes": [self.finish] * len(body.get("finishes", [])),
            }
            return Response(msgspec.json.encode(answer), media_type="application/json")

        async def healthz(request: Request) -> Response:
            return Response(b'{"status":"ok"}', media_type="application/json")

        return Starlette(
            routes=[
                endpoint("/v1/services", "services"),
                endpoint("/v1/claim", "claim"),
                endpoint("/v1/finish", "finish"),
                endpoint("/v1/settle", "settle"),
                Route("/v1/batch", batch, methods=["POST"]),
                Route("/healthz", healthz),
            ]
        )

    def start(self) -> None:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake pool did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
