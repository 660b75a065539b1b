"""The pool's internal API (POOL_PORT): /v1/services, /v1/claim, /v1/finish, /v1/lookup(_many), /v1/resolve.

Answers are always HTTP 200 with the pool_api result struct. Claim and finish carry their own ERROR status; services,
lookup and resolve have no error field, so when Redis fails they answer 503 and the caller maps that to Unavailable
(a lookup must never look like "no open activation" because Redis was down).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypedDict, TypeVar

import msgspec
import redis.asyncio as aioredis
from grizzly_common.logging import log_fields
from grizzly_common.messages import FINISH_STATUSES, country_code
from grizzly_common.pool_api import (
    ClaimRequest,
    ClaimResult,
    FinishRequest,
    FinishResult,
    LookupManyRequest,
    LookupManyResult,
    LookupRequest,
    ResolveRequest,
    ServicesRequest,
    ServicesResult,
)
from grizzly_common.redis_client import make_redis
from grizzly_common.web import health_routes, json_response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grizzly_pool import metrics
from grizzly_pool.settings import Settings
from grizzly_pool.store import ANY, PoolStore

log = logging.getLogger(__name__)
T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class State(TypedDict):
    redis: aioredis.Redis
    store: PoolStore
    settings: Settings


class BadBody(Exception):
    pass


def make_store(settings: Settings, redis: aioredis.Redis) -> PoolStore:
    return PoolStore(
        redis,
        settings.key_prefix,
        cancel_limit=settings.cancel_limit,
        sample_size=settings.sample_size,
        retention_s=settings.retention_s,
    )


@contextlib.asynccontextmanager
async def pool_lifespan(settings: Settings) -> AsyncIterator[State]:
    redis = make_redis(settings.redis_url, max_connections=settings.redis_max_connections)
    try:
        yield {"redis": redis, "store": make_store(settings, redis), "settings": settings}
    finally:
        await redis.aclose(close_connection_pool=True)


async def _decode(request: Request, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadBody(str(exc)) from None


def _reply(result: msgspec.Struct) -> Response:
    return Response(_encoder.encode(result), media_type="application/json")


def render_country_list(
    table: dict[str, dict[str, dict[str, int]]], country_map: dict[str, str]
) -> list[dict[str, Any]]:
    return [{"country": country_map.get(country, country), "operatorMap": ops} for country, ops in table.items()]


def our_country(settings: Settings, upstream: str, country: str) -> str:
    """The upstream's country code (e.g. "0") -> ours (e.g. "ru"); identity where no alias is configured."""
    code = country_code(country)
    for ours, theirs in settings.country_maps.get(upstream, {}).items():
        if theirs == code:
            return ours
    return code


async def services(request: Request) -> Response:
    state: State = request.state  # type: ignore[assignment]
    try:
        body = await _decode(request, ServicesRequest)
    except BadBody as exc:
        return json_response({"status": "ERROR", "error": f"bad request: {exc}"})
    settings = state["settings"]
    try:
        snapshot = await state["store"].snapshot(settings.services)
    except Exception:
        log.exception("counts failed")
        return json_response({"status": "ERROR", "error": "temporarily unavailable, retry"}, 503)
    table = snapshot.table(settings.split_countries)
    for service in settings.services:
        total = sum(ops.get(service, 0) for country in table.values() for ops in country.values())
        metrics.COUNTS_REPORTED.labels(service).set(total)
    return _reply(ServicesResult(render_country_list(table, settings.country_maps.get(body.upstream, {}))))


async def claim(request: Request) -> Response:
    state: State = request.state  # type: ignore[assignment]
    try:
        body = await _decode(request, ClaimRequest)
    except BadBody as exc:
        metrics.CLAIMS.labels("ERROR").inc()
        return _reply(ClaimResult(status="ERROR", error=f"bad request: {exc}"))
    if any(not p.isdigit() for p in body.exclude_prefixes):
        metrics.CLAIMS.labels("ERROR").inc()
        return _reply(ClaimResult(status="ERROR", error="exceptionPhoneSet entries must be digits"))
    operator = body.operator.strip().lower() or ANY
    try:
        claimed = await state["store"].claim(
            upstream=body.upstream,
            country=our_country(state["settings"], body.upstream, body.country),
            operator=operator,
            service=body.service.strip().lower(),
            sum=body.sum,
            currency=body.currency,
            exclude_prefixes=body.exclude_prefixes,
            request_json=body.request_json,
        )
    except Exception:
        log.exception("claim failed")
        metrics.CLAIMS.labels("ERROR").inc()
        return _reply(ClaimResult(status="ERROR", error="temporarily unavailable, retry"))
    if claimed is None:
        metrics.CLAIMS.labels("NO_NUMBERS").inc()
        return _reply(ClaimResult(status="NO_NUMBERS"))
    metrics.CLAIMS.labels("SUCCESS").inc()
    log.info(
        "issued",
        extra=log_fields(activation_id=claimed.activation_id, number=claimed.number, upstream=body.upstream,
                         service=body.service),
    )  # fmt: skip
    return _reply(ClaimResult("SUCCESS", claimed.number, claimed.activation_id, claimed.flashcall, claimed.voice))


async def finish(request: Request) -> Response:
    state: State = request.state  # type: ignore[assignment]
    try:
        body = await _decode(request, FinishRequest)
    except BadBody as exc:
        return _reply(FinishResult(status="ERROR", error=f"bad request: {exc}"))
    if body.status not in FINISH_STATUSES:
        metrics.FINISHES.labels(str(body.status), "invalid").inc()
        return _reply(FinishResult(status="ERROR", error="status must be one of 1, 3, 4, 5"))
    try:
        done = await state["store"].finish(upstream=body.upstream, activation_id=body.activation_id,
                                           status=body.status)  # fmt: skip
    except Exception:
        log.exception("finish failed")
        return _reply(FinishResult(status="ERROR", error="temporarily unavailable, retry"))
    metrics.FINISHES.labels(str(body.status), done.outcome).inc()
    if done.outcome == "unknown":
        return _reply(FinishResult(status="ERROR", error="unknown activationId"))
    log.info(
        "finished" if done.outcome == "finished" else "finish repeated",
        extra=log_fields(activation_id=body.activation_id, status=body.status, first_status=done.first_status),
    )
    return _reply(FinishResult(status="SUCCESS"))


async def _guarded(
    request: Request, kind: type[T], call: Callable[[PoolStore, T], Awaitable[msgspec.Struct]]
) -> Response:
    state: State = request.state  # type: ignore[assignment]
    try:
        body = await _decode(request, kind)
    except BadBody as exc:
        return json_response({"status": "ERROR", "error": f"bad request: {exc}"}, 400)
    try:
        return _reply(await call(state["store"], body))
    except Exception:
        log.exception("%s failed", request.url.path)
        return json_response({"status": "ERROR", "error": "temporarily unavailable, retry"}, 503)


async def lookup(request: Request) -> Response:
    return await _guarded(request, LookupRequest, lambda store, body: store.lookup(body.number))


async def lookup_many(request: Request) -> Response:
    async def call(store: PoolStore, body: LookupManyRequest) -> LookupManyResult:  # at most LOOKUP_MANY_MAX
        return LookupManyResult(results=await store.lookup_many(body.numbers))

    return await _guarded(request, LookupManyRequest, call)


async def resolve(request: Request) -> Response:
    return await _guarded(request, ResolveRequest, lambda store, body: store.resolve(body.device, body.slot))


async def _redis_ping(request: Request) -> None:
    await request.state.redis.ping()


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s: %s", request.url.path, type(exc).__name__)
    return json_response({"status": "ERROR", "error": "internal error"})


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with pool_lifespan(settings) as state:
            yield state

    routes = [
        Route("/v1/services", services, methods=["POST"]),
        Route("/v1/claim", claim, methods=["POST"]),
        Route("/v1/finish", finish, methods=["POST"]),
        Route("/v1/lookup", lookup, methods=["POST"]),
        Route("/v1/lookup_many", lookup_many, methods=["POST"]),
        Route("/v1/resolve", resolve, methods=["POST"]),
        *health_routes({"redis": _redis_ping}),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: _internal_error})
