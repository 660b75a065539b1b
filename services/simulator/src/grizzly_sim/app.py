"""grizzly-sim's HTTP side: the platform's push endpoint, fault injection, the findings report, health and metrics."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypedDict

from grizzly_common.web import app_state, cancel_and_wait, health_routes, json_response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grizzly_sim.partner import PartnerClient
from grizzly_sim.platform import Simulator
from grizzly_sim.pushes import Findings, PushLedger
from grizzly_sim.settings import Settings

PUSH_PATH = "/agent/api/sms"  # the platform's push path (protocol.md section 1)


class State(TypedDict):
    simulator: Simulator
    ledger: PushLedger


def create_app(settings: Settings, *, run_loop: bool = True) -> Starlette:
    """run_loop=False serves the push endpoint only (no polling): for tests of the endpoint itself."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                PartnerClient(settings.partner_url, settings.key, settings.request_timeout_s)
            )
            findings = Findings()
            ledger = PushLedger(key=settings.key, findings=findings, fail_mode=settings.fail_mode)
            ledger.fail_for(settings.fail_s)
            simulator = Simulator(settings, client, ledger, findings, rng=random.Random(settings.seed))
            if run_loop:
                stack.push_async_callback(cancel_and_wait, asyncio.create_task(simulator.run()))
            yield {"simulator": simulator, "ledger": ledger}

    async def push(request: Request) -> Response:
        ledger = app_state(request, State)["ledger"]
        status, body = ledger.handle(await request.body(), request.headers)
        return Response(body, status_code=status, media_type="application/json")

    async def fail(request: Request) -> Response:
        ledger = app_state(request, State)["ledger"]
        try:
            seconds = float(request.query_params.get("seconds", "30"))
        except ValueError:
            return json_response({"status": "ERROR", "error": "seconds must be a number"}, 400)
        mode = request.query_params.get("mode", ledger.fail_mode)
        if mode not in ("error", "http500"):
            return json_response({"status": "ERROR", "error": "mode must be error or http500"}, 400)
        ledger.fail_for(seconds, mode)
        return json_response({"status": "SUCCESS", "failing_for_s": seconds, "mode": mode})

    async def report(request: Request) -> Response:
        simulator = app_state(request, State)["simulator"]
        return json_response(simulator.report())

    routes = [
        Route(PUSH_PATH, push, methods=["POST"]),
        Route("/sim/fail", fail, methods=["POST"]),
        Route("/sim/report", report, methods=["GET"]),
        *health_routes({}),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
