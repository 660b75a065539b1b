"""api-edge: the one partner URL the platform POSTs GET_SERVICES / GET_NUMBER / FINISH_ACTIVATION to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypedDict

import aiohttp
from grizzly_common.errors import BadRequest, PartnerError, WrongKey
from grizzly_common.logging import log_fields
from grizzly_common.messages import error_body
from grizzly_common.pool_client import PoolClient
from grizzly_common.security import client_host
from grizzly_common.web import app_state, cancel_and_wait, health_routes, read_limited_body
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grizzly_edge.actions import Answer, Call
from grizzly_edge.auth import KeyRing
from grizzly_edge.batching import PoolBatcher
from grizzly_edge.body import accepts_gzip, compress, decode_content
from grizzly_edge.claims import ClaimSettler
from grizzly_edge.dispatch import route
from grizzly_edge.guard import FORBIDDEN_SOURCE, EdgeGuard, SourceAccess
from grizzly_edge.metrics import request_seconds, results
from grizzly_edge.settings import Settings

log = logging.getLogger("grizzly_edge")

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class State(TypedDict):
    pool: PoolClient
    claims: ClaimSettler
    batcher: PoolBatcher


class PartnerResponse(Response):
    """A partner answer: JSON at HTTP 200, its few headers built at once (Starlette's general init_headers cost a
    fifth of the edge's own work per request)."""

    media_type = "application/json"

    def __init__(self, body: bytes, gzipped: bool) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"vary", b"Accept-Encoding"),
        ]
        if gzipped:
            self.raw_headers.append((b"content-encoding", b"gzip"))


def _reply(request: Request, settings: Settings, body: bytes) -> Response:
    if len(body) >= settings.gzip_min_bytes and accepts_gzip(request.headers.get("accept-encoding")):
        return PartnerResponse(compress(body, settings.gzip_level), gzipped=True)
    return PartnerResponse(body, gzipped=False)


def hung_up(request: Request) -> Callable[[], Awaitable[bool]]:
    """Whether the platform has hung up. Under uvicorn, its request cycle's own flag (Starlette's is_disconnected
    costs about 60 µs a call, an anyio cancel scope); under any other server or a receive wrapped by a middleware,
    Starlette's check."""
    flag = getattr(getattr(request.receive, "__self__", None), "disconnected", None)
    if not isinstance(flag, bool):
        return request.is_disconnected
    cycle = request.receive.__self__  # type: ignore[attr-defined]

    async def disconnected() -> bool:
        return bool(cycle.disconnected)

    return disconnected


def error_answer(exc: Exception, action: str) -> Answer:
    """The one mapping of a failure to the platform's answer: a PartnerError's own text, anything else
    "internal error" (logged with its traceback); always the ERROR envelope at HTTP 200."""
    if isinstance(exc, PartnerError):
        log.info("answered ERROR", extra=log_fields(action=action, error=exc.error))
        return Answer("ERROR", error_body(exc.error))
    log.error("unexpected failure", exc_info=exc, extra=log_fields(action=action))
    return Answer("ERROR", error_body("internal error"))


def create_app(settings: Settings) -> Starlette:
    keys = KeyRing(settings.upstreams)
    access = SourceAccess(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with contextlib.AsyncExitStack() as stack:
            connector = aiohttp.TCPConnector(limit=settings.pool_connections, keepalive_timeout=60)
            timeout = aiohttp.ClientTimeout(total=settings.pool_timeout_s, connect=min(settings.pool_timeout_s, 1.0))
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)
            )
            pool = PoolClient(session, settings.pool_url, token=settings.pool_token)
            claims = ClaimSettler(pool)
            stack.push_async_callback(claims.drain, timeout_s=5.0)  # after the settler stopped: what is left
            settler = asyncio.create_task(claims.run())
            stack.push_async_callback(cancel_and_wait, settler)
            batcher = PoolBatcher(pool)
            stack.push_async_callback(batcher.aclose)  # first: the batches in flight confirm or release claims
            log.info(
                "api-edge ready",
                extra=log_fields(paths=list(settings.paths), upstreams=[u.name for u in settings.upstreams]),
            )
            yield {"pool": pool, "claims": claims, "batcher": batcher}

    async def partner(request: Request) -> Response:
        started = time.perf_counter()
        action = "invalid"
        try:
            if request.method != "POST":
                raise BadRequest(f"method {request.method} not allowed: POST a JSON body")
            raw = await read_limited_body(request, settings.max_body_bytes)
            body = decode_content(raw, request.headers.get("content-encoding"), settings.max_decompressed_bytes)
            target = route(body, keys)
            if not access.upstream_allows(target.upstream, client_host(request.scope)):
                raise WrongKey(FORBIDDEN_SOURCE)  # this upstream's key from outside its CIDRs
            action = target.action
            state = app_state(request, State)
            call = Call(target.upstream, body, state["pool"], state["claims"], state["batcher"], hung_up(request))
            answer = await target.handler(call)
        except Exception as exc:  # noqa: BLE001 - never a 500: the platform gets the ERROR envelope
            answer = error_answer(exc, action)
        results(action, answer.status).inc()
        request_seconds(action).observe(time.perf_counter() - started)
        return _reply(request, settings, answer.body)

    async def on_partner_error(request: Request, exc: Exception) -> Response:
        """Anything that escaped the partner endpoint (it catches its own): the same ERROR envelope."""
        return Response(error_answer(exc, "invalid").body, status_code=200, media_type="application/json")

    async def on_http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        return Response(error_body(f"HTTP {code}: not a partner URL"), status_code=code, media_type="application/json")

    async def pool_ready(request: Request) -> None:
        await app_state(request, State)["pool"].healthy()

    routes = [Route(path, partner, methods=ALL_METHODS) for path in settings.paths]
    routes += health_routes({"pool": pool_ready})
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(EdgeGuard, settings=settings, access=access)],
        exception_handlers={
            HTTPException: on_http_error,
            PartnerError: on_partner_error,
            Exception: on_partner_error,
        },
    )
