"""The pool's internal API (POOL_PORT): /v1/services, /v1/claim, /v1/settle, /v1/finish, /v1/batch (claims and
finishes together), /v1/lookup(_many), /v1/resolve.

Answers are always HTTP 200 with the pool_api result struct. Claim and finish carry their own ERROR status; services,
lookup and resolve have no error field, so when Redis fails they answer 503 and the caller maps that to Unavailable
(a lookup must never look like "no open activation" because Redis was down).

api-edge's claims carry a claim id and a deadline; it then settles each one through /v1/settle: confirm (given to
the platform) or release (not given: timeout, error). A sweeper releases claims left unsettled for POOL_CLAIM_HOLD_S
(an edge that crashed), so no number stays held by an activation the platform never heard of.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypedDict, TypeVar

import msgspec
import orjson
import redis.asyncio as aioredis
from grizzly_common.errors import Unavailable
from grizzly_common.logging import log_fields
from grizzly_common.messages import FINISH_STATUSES, country_code, is_digits
from grizzly_common.pool_api import (
    BatchRequest,
    BatchResult,
    ClaimRequest,
    ClaimResult,
    FinishRequest,
    FinishResult,
    LookupManyRequest,
    LookupManyResult,
    LookupRequest,
    ResolveRequest,
    SeenRequest,
    SeenResult,
    ServicesRequest,
    ServicesResult,
    SettleRequest,
    SettleResult,
    SmsSeenRequest,
    SmsSeenResult,
)
from grizzly_common.redis_client import make_redis
from grizzly_common.security import InternalAuth
from grizzly_common.web import app_state, cancel_and_wait, health_routes, json_response
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from grizzly_pool import metrics
from grizzly_pool.settings import Settings
from grizzly_pool.store import (
    ANY,
    RELEASE_BATCH,
    Claimed,
    ClaimRefused,
    ClaimRequestFields,
    Finished,
    PoolStore,
    today,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", bound=msgspec.Struct)
_encoder = msgspec.json.Encoder()


# labels() takes a lock and builds a key per call: the batch path looks each child up once (bounded label values:
# four claim results; finish statuses 1-5 times five outcomes)
@functools.cache
def _claims(result: str) -> Counter:
    return metrics.CLAIMS.labels(result)


@functools.cache
def _finishes(status: int, outcome: str) -> Counter:
    return metrics.FINISHES.labels(str(status), outcome)


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
        hold_s=settings.claim_hold_s,
        suspect_streak=settings.suspect_streak,
        suspect_offline=settings.suspect_offline,
        earnings_days=settings.earnings_days,
    )


@contextlib.asynccontextmanager
async def pool_lifespan(settings: Settings) -> AsyncIterator[State]:
    redis = make_redis(
        settings.redis_url, max_connections=settings.redis_max_connections, password=settings.redis_password
    )
    try:
        yield {"redis": redis, "store": make_store(settings, redis), "settings": settings}
    finally:
        await redis.aclose()  # make_redis: the client owns its pool and closes it


async def migrate_at_start(settings: Settings) -> None:
    """Once per process, before either API serves: a pool written by an older version gets its count terms and
    claim indexes (PoolStore.migrate)."""
    redis = make_redis(settings.redis_url, max_connections=2, password=settings.redis_password)
    try:
        if await make_store(settings, redis).migrate():
            log.info("built the count terms and claim indexes from the inventory (upgrade)")
    except (RedisError, OSError) as exc:
        # serving without Redis answers 503 anyway; the next start migrates (until then counts can only be low)
        log.warning("could not check the pool's data layout at start: %s", exc)
    finally:
        await redis.aclose()


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
    state = app_state(request, State)
    try:
        body = await _decode(request, ServicesRequest)
    except BadBody as exc:
        return json_response({"status": "ERROR", "error": f"bad request: {exc}"})
    settings = state["settings"]
    try:
        snapshot = await state["store"].snapshot(settings.services)
    except Exception:
        log.exception("counts failed")
        return json_response({"status": "ERROR", "error": Unavailable.error}, 503)
    table = snapshot.table(settings.split_countries)
    for service in settings.services:
        total = sum(ops.get(service, 0) for country in table.values() for ops in country.values())
        metrics.COUNTS_REPORTED.labels(service).set(total)
    return _reply(ServicesResult(render_country_list(table, settings.country_maps.get(body.upstream, {}))))


async def claim(request: Request) -> Response:
    state = app_state(request, State)
    try:
        body = await _decode(request, ClaimRequest)
    except BadBody as exc:
        _claims("ERROR").inc()
        return _reply(ClaimResult(status="ERROR", error=f"bad request: {exc}"))
    return _reply(await claim_one(state, body))


async def claim_one(state: State, body: ClaimRequest) -> ClaimResult:
    """One claim, by /v1/claim (the same checks, metrics and answer as a claim of /v1/batch)."""
    refused = _claim_refused(state, body)
    if refused is not None:
        return refused
    try:
        claimed: Claimed | None | Exception = await state["store"].claim(**_claim_fields(state, body))
    except Exception as exc:  # noqa: BLE001 - answered by _claim_answer
        claimed = exc
    return _claim_answer(body, claimed)


def _claim_refused(state: State, body: ClaimRequest) -> ClaimResult | None:
    """The answer to a claim the pool does not run, else None."""
    if body.upstream not in state["settings"].upstreams:  # its activations and counts are nobody's
        _claims("ERROR").inc()
        return ClaimResult(status="ERROR", error="bad request: unknown upstream")
    if any(not is_digits(p) for p in body.exclude_prefixes):
        _claims("ERROR").inc()
        return ClaimResult(status="ERROR", error="exceptionPhoneSet entries must be digits")
    return None


def _claim_fields(state: State, body: ClaimRequest) -> ClaimRequestFields:
    """PoolStore.claim's arguments for a claim request."""
    return {
        "upstream": body.upstream,
        "country": our_country(state["settings"], body.upstream, body.country),
        "operator": body.operator.strip().lower() or ANY,
        "service": body.service.strip().lower(),
        "sum": body.sum,
        "currency": body.currency,
        "exclude_prefixes": body.exclude_prefixes,
        "request_json": body.request_json,
        "claim_id": body.claim_id,
        "deadline_ms": body.deadline_ms,
    }


def _claim_answer(body: ClaimRequest, claimed: Claimed | None | Exception) -> ClaimResult:
    """The answer, metrics and log line of a claim the pool ran."""
    if isinstance(claimed, ClaimRefused):
        _claims("REFUSED").inc()
        return ClaimResult(status="ERROR", error="claim refused: past its deadline or released")
    if isinstance(claimed, Exception):
        log.error("claim failed", exc_info=claimed)
        _claims("ERROR").inc()
        return ClaimResult(status="ERROR", error=Unavailable.error)
    if claimed is None:
        _claims("NO_NUMBERS").inc()
        return ClaimResult(status="NO_NUMBERS")
    _claims("SUCCESS").inc()
    # DEBUG, not INFO: one line per claim costs more than the claim's own Python work; the audit trail has it
    log.debug(
        "issued",
        extra=log_fields(activation_id=claimed.activation_id, number=claimed.number, upstream=body.upstream,
                         service=body.service),
    )  # fmt: skip
    return ClaimResult("SUCCESS", claimed.number, claimed.activation_id, claimed.flashcall, claimed.voice)


async def settle(request: Request) -> Response:
    async def call(store: PoolStore, body: SettleRequest) -> SettleResult:
        held = await store.confirm(body.confirm)
        released = await store.release_claims(body.release)
        metrics.CONFIRMS.labels("yes").inc(held)
        metrics.CONFIRMS.labels("no").inc(len(body.confirm) - held)
        metrics.RELEASES.labels("edge").inc(released)
        if released:
            log.info("released claims", extra=log_fields(claims=len(body.release), released=released))
        return SettleResult(status="SUCCESS", released=released)

    return await _answered(request, SettleRequest, SettleResult, call)


async def sweep_unconfirmed(store: PoolStore, every_s: float, batch: int = RELEASE_BATCH) -> None:
    """Forever: release the claims api-edge neither confirmed nor released within the hold (every pool replica may
    run this: each release is one atomic script, and a claim is released once)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            while (released := await store.release_due(batch)) > 0:
                metrics.RELEASES.labels("unconfirmed").inc(released)
                log.warning("released unconfirmed claims", extra=log_fields(released=released))
                if released < batch:
                    break
        except Exception:
            log.exception("sweep of unconfirmed claims failed")


async def seen(request: Request) -> Response:
    async def call(store: PoolStore, body: SeenRequest) -> SeenResult:
        known, revived = await store.seen(body.devices)
        for device in revived:
            metrics.DEVICE_LIVENESS.labels("revived").inc()
            log.info("device heard from again: counted again", extra=log_fields(device=device))
        return SeenResult(status="SUCCESS", known=known, revived=len(revived))

    return await _answered(request, SeenRequest, SeenResult, call)


async def sms_seen(request: Request) -> Response:
    async def call(store: PoolStore, body: SmsSeenRequest) -> SmsSeenResult:
        matched = await store.sms_seen([(sms.number, sms.received_ms) for sms in body.sms])
        return SmsSeenResult(status="SUCCESS", matched=matched)

    return await _answered(request, SmsSeenRequest, SmsSeenResult, call)


async def sweep_dead(store: PoolStore, timeout_s: float, every_s: float) -> None:
    """Forever: mark the devices with heartbeats that fell silent for timeout_s as dead (every replica may run it:
    a device is marked once, atomically, and its next heartbeat revives it)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            while dead := await store.sweep_dead(timeout_s):
                for device in dead:
                    metrics.DEVICE_LIVENESS.labels("dead").inc()
                    log.warning("device silent: not counted until it is heard from", extra=log_fields(device=device))
        except Exception:
            log.exception("sweep of silent devices failed")


async def finish(request: Request) -> Response:
    state = app_state(request, State)
    try:
        body = await _decode(request, FinishRequest)
    except BadBody as exc:
        return _reply(FinishResult(status="ERROR", error=f"bad request: {exc}"))
    return _reply(await finish_one(state, body))


async def finish_one(state: State, body: FinishRequest) -> FinishResult:
    """One finish, by /v1/finish (the same checks, metrics and answer as a finish of /v1/batch)."""
    refused = _finish_refused(state, body)
    if refused is not None:
        return refused
    try:
        done: Finished | Exception = await state["store"].finish(
            upstream=body.upstream, activation_id=body.activation_id, status=body.status
        )
    except Exception as exc:  # noqa: BLE001 - answered by _finish_answer
        done = exc
    return _finish_answer(body, done)


def _finish_refused(state: State, body: FinishRequest) -> FinishResult | None:
    """The answer to a finish the pool does not run, else None."""
    if body.status not in FINISH_STATUSES:
        _finishes(body.status, "invalid").inc()
        return FinishResult(status="ERROR", error="status must be one of 1, 3, 4, 5")
    if body.upstream not in state["settings"].upstreams:
        return FinishResult(status="ERROR", error="bad request: unknown upstream")
    return None


def _finish_answer(body: FinishRequest, done: Finished | Exception) -> FinishResult:
    """The answer, metrics and log line of a finish the pool ran."""
    if isinstance(done, Exception):
        log.error("finish failed", exc_info=done)
        return FinishResult(status="ERROR", error=Unavailable.error)
    _finishes(body.status, done.outcome).inc()
    if done.earned_micros:
        labels = (body.upstream, done.country, done.currency or "none")
        (metrics.EARNED if done.earned_micros > 0 else metrics.REFUNDED).labels(*labels).inc(
            abs(done.earned_micros) / 1_000_000
        )
    if done.outcome == "unknown":
        return FinishResult(status="ERROR", error="unknown activationId")
    if done.outcome == "released":
        # released as never given to the platform, yet it finishes it: it did get the number (a lost confirm)
        log.warning("finish of a released activation", extra=log_fields(activation_id=body.activation_id,
                                                                        status=body.status))  # fmt: skip
        return FinishResult(status="SUCCESS")
    log.debug(  # DEBUG: per request (see _claim_answer); the audit trail has it
        "finished" if done.outcome == "finished" else "finish repeated",
        extra=log_fields(activation_id=body.activation_id, status=body.status, first_status=done.first_status),
    )
    return FinishResult(status="SUCCESS")


async def run_batch(state: State, body: BatchRequest) -> BatchResult:
    """Each claim and finish checked and answered exactly as by /v1/claim and /v1/finish, in request order; the
    ones that run go to Redis in one round trip (PoolStore.run_batch)."""
    store = state["store"]
    claims = [(item, _claim_refused(state, item)) for item in body.claims]
    finishes = [(item, _finish_refused(state, item)) for item in body.finishes]
    to_claim = [item for item, refused in claims if refused is None]
    to_finish = [item for item, refused in finishes if refused is None]
    claimed: list[Claimed | None | Exception] = []
    finished: list[Finished | Exception] = []
    if to_claim or to_finish:
        day = today()
        try:
            earn_key = await store.earn_key(day)
        except Exception as exc:  # noqa: BLE001 - Redis unreachable: each item answers its own ERROR
            claimed, finished = [exc] * len(to_claim), [exc] * len(to_finish)
        else:
            claimed, finished = await store.run_batch(
                [store.claim_call(_claim_fields(state, item), earn_key=earn_key, day=day) for item in to_claim],
                [store.finish_call(f.upstream, f.activation_id, f.status, earn_key) for f in to_finish],
            )
    ran_claims, ran_finishes = iter(claimed), iter(finished)
    return BatchResult(
        claims=[refused or _claim_answer(item, next(ran_claims)) for item, refused in claims],
        finishes=[refused or _finish_answer(item, next(ran_finishes)) for item, refused in finishes],
    )


_batch_decoder = msgspec.json.Decoder(BatchRequest)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def batch(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /v1/batch, api-edge's concurrent claims and finishes in one call; the store runs their scripts in one Redis
    round trip. Each is checked and answered exactly as by /v1/claim and /v1/finish, in request order.

    A raw ASGI app behind InternalAuth (token checked, body read and capped): Starlette's routing, middleware and
    Request cost as much per call as the decoding of a batch. An unexpected failure answers as _internal_error."""
    try:
        if scope["method"] != "POST":
            await _send_json(send, 405, orjson.dumps({"status": "ERROR", "error": "method not allowed: POST"}))
            return
        chunks: list[bytes] = []
        more = True
        while more:  # InternalAuth replays the body it read as one message
            message = await receive()
            if message["type"] != "http.request":
                return  # the caller left
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            body = _batch_decoder.decode(b"".join(chunks))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await _send_json(send, 400, orjson.dumps({"status": "ERROR", "error": f"bad request: {exc}"}))
            return
        await _send_json(send, 200, _encoder.encode(await run_batch(scope["state"], body)))
    except Exception as exc:  # noqa: BLE001 - as _internal_error: logged, the envelope, never a 500
        log.error("unhandled error on /v1/batch: %s", type(exc).__name__)
        await _send_json(send, 200, orjson.dumps({"status": "ERROR", "error": "internal error"}))


async def _answered(
    request: Request, kind: type[T], result: Callable[..., R], call: Callable[[PoolStore, T], Awaitable[R]]
) -> Response:
    """Decode, call, answer: a bad body or a failure is `result`'s own ERROR status at HTTP 200 (the caller retries
    what it reads as unavailable)."""
    state = app_state(request, State)
    try:
        body = await _decode(request, kind)
    except BadBody as exc:
        return _reply(result(status="ERROR", error=f"bad request: {exc}"))
    try:
        return _reply(await call(state["store"], body))
    except Exception:
        log.exception("%s failed", request.url.path)
        return _reply(result(status="ERROR", error=Unavailable.error))


async def _guarded(
    request: Request, kind: type[T], call: Callable[[PoolStore, T], Awaitable[msgspec.Struct]]
) -> Response:
    state = app_state(request, State)
    try:
        body = await _decode(request, kind)
    except BadBody as exc:
        return json_response({"status": "ERROR", "error": f"bad request: {exc}"}, 400)
    try:
        return _reply(await call(state["store"], body))
    except Exception:
        log.exception("%s failed", request.url.path)
        return json_response({"status": "ERROR", "error": Unavailable.error}, 503)


async def lookup(request: Request) -> Response:
    return await _guarded(request, LookupRequest, lambda store, body: store.lookup(body.number))


async def lookup_many(request: Request) -> Response:
    async def call(store: PoolStore, body: LookupManyRequest) -> LookupManyResult:  # at most LOOKUP_MANY_MAX
        return LookupManyResult(results=await store.lookup_many(body.numbers))

    return await _guarded(request, LookupManyRequest, call)


async def resolve(request: Request) -> Response:
    return await _guarded(request, ResolveRequest, lambda store, body: store.resolve(body.device, body.slot))


async def _redis_ping(request: Request) -> None:
    await app_state(request, State)["redis"].ping()


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s: %s", request.url.path, type(exc).__name__)
    return json_response({"status": "ERROR", "error": "internal error"})


def create_app(settings: Settings) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with contextlib.AsyncExitStack() as stack:
            state = await stack.enter_async_context(pool_lifespan(settings))
            sweeper = asyncio.create_task(sweep_unconfirmed(state["store"], min(5.0, settings.claim_hold_s / 4)))
            stack.push_async_callback(cancel_and_wait, sweeper)
            if settings.device_timeout_s > 0:
                every_s = min(5.0, settings.device_timeout_s / 4)
                liveness = asyncio.create_task(sweep_dead(state["store"], settings.device_timeout_s, every_s))
                stack.push_async_callback(cancel_and_wait, liveness)
            yield state

    routes = [
        Route("/v1/services", services, methods=["POST"]),
        Route("/v1/claim", claim, methods=["POST"]),
        Route("/v1/settle", settle, methods=["POST"]),
        Route("/v1/finish", finish, methods=["POST"]),
        Route("/v1/lookup", lookup, methods=["POST"]),
        Route("/v1/lookup_many", lookup_many, methods=["POST"]),
        Route("/v1/resolve", resolve, methods=["POST"]),
        Route("/v1/seen", seen, methods=["POST"]),
        Route("/v1/sms", sms_seen, methods=["POST"]),
        *health_routes({"redis": _redis_ping}),
    ]
    auth = Middleware(
        InternalAuth,
        token=settings.api_token,
        next_token=settings.api_next_token,
        max_body_bytes=settings.max_body_bytes,
    )
    others = Starlette(
        routes=routes, lifespan=lifespan, middleware=[auth], exception_handlers={Exception: _internal_error}
    )
    fast = InternalAuth(
        batch, token=settings.api_token, next_token=settings.api_next_token, max_body_bytes=settings.max_body_bytes
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/batch":  # the hot path: no Starlette in between
            await fast(scope, receive, send)
        else:
            await others(scope, receive, send)

    return app
