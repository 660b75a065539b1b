"""The sms-ingest ASGI app: source webhooks in, one acknowledged Kafka record per message out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from grizzly_common.events import Topics
from grizzly_common.kafka_client import ensure_topics, make_producer
from grizzly_common.logging import log_fields
from grizzly_common.pool_client import PoolClient
from grizzly_common.redis_client import make_redis
from grizzly_common.web import app_state, cancel_and_wait, health_routes, json_response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grizzly_ingest import goip_server, metrics
from grizzly_ingest.errors import DeadlineExceeded, IngestError
from grizzly_ingest.heartbeat import Heartbeats
from grizzly_ingest.publisher import Publisher
from grizzly_ingest.resolver import Resolver
from grizzly_ingest.settings import Settings
from grizzly_ingest.state import Ingest, State
from grizzly_ingest.webhooks import android, generic, goip

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(source: str, endpoint: Endpoint, deadline_s: float) -> Endpoint:
    """Every request is answered within deadline_s, and every failure becomes a JSON error with a status the
    source understands; never a 500."""

    def refuse(exc: IngestError) -> Response:
        metrics.REJECTED.labels(source, exc.reason).inc()
        if exc.status >= 500 or exc.status == 422:
            log.warning("message not accepted", extra=log_fields(source=source, error=exc.error))
        return json_response({"status": "ERROR", "error": exc.error}, exc.status)

    async def handle(request: Request) -> Response:
        try:
            async with asyncio.timeout(deadline_s):
                return await endpoint(request)
        except TimeoutError:
            return refuse(DeadlineExceeded())
        except IngestError as exc:
            return refuse(exc)
        except Exception:
            # a bug: answer as "unavailable" so the source keeps the message and retries
            metrics.REJECTED.labels(source, "internal").inc()
            log.exception("unexpected error", extra=log_fields(source=source))
            return json_response({"status": "ERROR", "error": "internal error, retry"}, 503)

    return handle


def create_app(settings: Settings) -> Starlette:
    topics = Topics(settings.topic_prefix)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with contextlib.AsyncExitStack() as stack:
            await ensure_topics(
                settings.kafka_bootstrap, [topics.inbound], settings.topic_partitions, settings.topic_durability
            )
            redis = make_redis(settings.redis_url, password=settings.redis_password)
            stack.push_async_callback(redis.aclose)  # make_redis: the client owns its pool and closes it
            producer = make_producer(settings.kafka_bootstrap, "grizzly-ingest")
            await producer.start()
            publisher = Publisher(
                redis,
                producer,
                topics,
                prefix=settings.redis_prefix,
                dedupe_ttl_s=settings.dedupe_ttl_s,
                dedupe_no_ts_ttl_s=settings.dedupe_no_ts_ttl_s,
                multipart_timeout_s=settings.multipart_timeout_s,
                publish_timeout_s=settings.publish_timeout_s,
                new_producer=lambda: make_producer(settings.kafka_bootstrap, "grizzly-ingest"),
            )
            stack.push_async_callback(publisher.stop_producer)  # the current one: it may have been replaced
            stack.push_async_callback(publisher.aclose)  # batches in flight finish before Redis closes
            pool = None
            if settings.pool_url:
                pool = PoolClient(settings.pool_url, token=settings.pool_token, timeout_s=settings.pool_timeout_s)
                stack.push_async_callback(pool.aclose)
            resolver = Resolver(settings.device_numbers, pool)
            sweeper = asyncio.create_task(publisher.sweep_forever(settings.sweep_interval_s), name="multipart-sweeper")
            stack.push_async_callback(cancel_and_wait, sweeper)
            heartbeats = Heartbeats(pool, settings.seen_interval_s)
            beating = asyncio.create_task(heartbeats.run(), name="heartbeats")
            stack.push_async_callback(cancel_and_wait, beating)
            ingest = Ingest(settings=settings, publisher=publisher, resolver=resolver, heartbeats=heartbeats)
            if settings.goip_udp_port:
                udp = await goip_server.start(ingest, heartbeats)
                stack.push_async_callback(udp.aclose)  # before the publisher closes: its sends settle first
            log.info("sms-ingest started", extra=log_fields(topic=topics.inbound, port=settings.port))
            yield {"ingest": ingest}

    async def kafka_ready(request: Request) -> None:
        state = app_state(request, State)["ingest"]
        await state.publisher.producer.client.fetch_all_metadata()

    async def redis_ready(request: Request) -> None:
        state = app_state(request, State)["ingest"]
        await state.publisher.redis.ping()

    routes = [
        Route("/v1/sms", guarded("generic", generic.sms, settings.request_deadline_s), methods=["POST"]),
        Route("/v1/call", guarded("generic", generic.call, settings.request_deadline_s), methods=["POST"]),
        Route("/v1/android", guarded("android", android.webhook, settings.request_deadline_s), methods=["POST"]),
        Route("/v1/goip/{device}", guarded("goip", goip.webhook, settings.request_deadline_s), methods=["POST"]),
        Route("/v1/goip/lines", guarded("goip", goip_server.status_endpoint, settings.request_deadline_s)),
        *health_routes({"kafka": kafka_ready, "redis": redis_ready}),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
