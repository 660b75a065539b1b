"""api-edge: the one partner URL the platform POSTs GET_SERVICES / GET_NUMBER / FINISH_ACTIVATION to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypedDict

from grizzly_common.errors import BadRequest, PartnerError, WrongKey
from grizzly_common.logging import log_fields
from grizzly_common.messages import error_body
from grizzly_common.pool_client import PoolClient
from grizzly_common.security import client_host
from grizzly_common.web import app_state, cancel_and_wait, health_routes, receive_limited_body
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

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


class State(TypedDict):
    pool: PoolClient
    claims: ClaimSettler
    batcher: PoolBatcher


def _headers(body: bytes, gzipped: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
        (b"vary", b"Accept-Encoding"),
    ]
    if gzipped:
        headers.append((b"content-encoding", b"gzip"))
    return headers


def hung_up(scope: Scope, receive: Receive) -> Callable[[], Awaitable[bool]]:
    """Whether the platform has hung up. Under uvicorn, its request cycle's own flag (Starlette's is_disconnected
    costs about 60 µs a call, an anyio cancel scope); under any other server or a receive wrapped by a middleware,
    Starlette's check."""
    cycle: Any = getattr(receive, "__self__", None)
    if not isinstance(getattr(cycle, "disconnected", None), bool):
        return Request(scope, receive).is_disconnected

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


def create_app(settings: Settings) -> ASGIApp:
    """The partner paths answered by `partner` (raw ASGI), the rest by Starlette, all behind EdgeGuard (ports,
    allowlists, rate limit)."""
    keys = KeyRing(settings.upstreams)
    access = SourceAccess(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with contextlib.AsyncExitStack() as stack:
            pool = PoolClient(
                settings.pool_url,
                token=settings.pool_token,
                timeout_s=settings.pool_timeout_s,
                connections=settings.pool_connections,
            )
            stack.push_async_callback(pool.aclose)
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

    async def partner(scope: Scope, receive: Receive, send: Send) -> None:
        """The partner paths as a raw ASGI app: the whole protocol answer is this function (Starlette's routing,
        middleware stack, Request and Response cost more than the edge's own work per request). Never raises: every
        failure is the ERROR envelope at HTTP 200 (error_answer)."""
        started = time.perf_counter()
        action = "invalid"
        accept_encoding: bytes | None = None
        try:
            declared = content_encoding = None
            for name, value in scope["headers"]:  # names are lower case (ASGI); the first of a repeated one counts
                if name == b"content-length":
                    declared = declared if declared is not None else value
                elif name == b"content-encoding":
                    content_encoding = content_encoding if content_encoding is not None else value
                elif name == b"accept-encoding":
                    accept_encoding = accept_encoding if accept_encoding is not None else value
            method = scope["method"]
            if method != "POST":
                raise BadRequest(f"method {method} not allowed: POST a JSON body")
            raw = await receive_limited_body(receive, (declared or b"").decode("latin-1"), settings.max_body_bytes)
            body = raw
            if content_encoding is not None:
                body = decode_content(raw, content_encoding.decode("latin-1"), settings.max_decompressed_bytes)
            target = route(body, keys)
            if not access.upstream_allows(target.upstream, client_host(scope)):
                raise WrongKey(FORBIDDEN_SOURCE)  # this upstream's key from outside its CIDRs
            action = target.action
            state: State = scope["state"]
            call = Call(
                target.upstream, body, state["pool"], state["claims"], state["batcher"], hung_up(scope, receive)
            )
            answer = await target.handler(call)
        except Exception as exc:  # noqa: BLE001 - never a 500: the platform gets the ERROR envelope
            answer = error_answer(exc, action)
        results(action, answer.status).inc()
        request_seconds(action).observe(time.perf_counter() - started)
        reply, gzipped = answer.body, False
        if (
            len(reply) >= settings.gzip_min_bytes
            and accept_encoding
            and accepts_gzip(accept_encoding.decode("latin-1"))
        ):
            reply, gzipped = compress(reply, settings.gzip_level), True
        await send({"type": "http.response.start", "status": 200, "headers": _headers(reply, gzipped)})
        await send({"type": "http.response.body", "body": reply})

    async def on_partner_error(request: Request, exc: Exception) -> Response:
        """Anything that escaped the partner endpoint (it catches its own): the same ERROR envelope."""
        return Response(error_answer(exc, "invalid").body, status_code=200, media_type="application/json")

    async def on_http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        return Response(error_body(f"HTTP {code}: not a partner URL"), status_code=code, media_type="application/json")

    async def pool_ready(request: Request) -> None:
        await app_state(request, State)["pool"].healthy()

    # lifespan, health, metrics and every other path: Starlette
    others = Starlette(
        routes=health_routes({"pool": pool_ready}),
        lifespan=lifespan,
        exception_handlers={
            HTTPException: on_http_error,
            PartnerError: on_partner_error,
            Exception: on_partner_error,
        },
    )
    paths = frozenset(settings.paths)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in paths:
            await partner(scope, receive, send)
        else:
            await others(scope, receive, send)

    return EdgeGuard(app, settings=settings, access=access)
