"""The pusher's ASGI app: health and metrics routes; the lifespan runs the Kafka consumer and the retrier."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from typing import TypedDict

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from grizzly_common.events import Topics
from grizzly_common.kafka_client import ensure_topics, kafka_reachable, make_consumer, wait_kafka
from grizzly_common.logging import log_fields
from grizzly_common.pool_client import PoolClient
from grizzly_common.redis_client import make_redis, persistence_warning
from grizzly_common.web import app_state, cancel_and_wait, health_routes
from starlette.applications import Starlette
from starlette.requests import Request

from grizzly_pusher.activity import Activity
from grizzly_pusher.admin import admin_routes
from grizzly_pusher.consumer import InboundConsumer
from grizzly_pusher.delivery import Pusher
from grizzly_pusher.parked import ParkedStore
from grizzly_pusher.retrier import Retrier
from grizzly_pusher.settings import Settings
from grizzly_pusher.store import PushStore

log = logging.getLogger(__name__)


class State(TypedDict):
    settings: Settings
    redis: aioredis.Redis
    pool: PoolClient
    consumer: AIOKafkaConsumer
    parked: ParkedStore


def crashed(app: Starlette) -> bool:
    """True when a loop died unexpectedly (the process then exits 1)."""
    return bool(getattr(app.state, "crashed", False))


def _exit_on_crash(app: Starlette) -> Callable[[asyncio.Task[None]], None]:
    """A loop that dies unexpectedly must not leave a process that looks healthy: stop (without committing)."""

    def check(task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.critical("pusher loop crashed; shutting down", exc_info=task.exception())
        app.state.crashed = True
        os.kill(os.getpid(), signal.SIGTERM)

    return check


async def _stop(tasks: list[asyncio.Task[None]], grace_s: float) -> None:
    done, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        log.error("shutdown grace exceeded: cancelling; records not done stay uncommitted")
        task.cancel()
    for task in pending:
        with contextlib.suppress(BaseException):
            await task


def create_app(settings: Settings) -> Starlette:
    topics = Topics(settings.topic_prefix)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with contextlib.AsyncExitStack() as stack:
            redis = make_redis(
                settings.redis_url, max_connections=settings.concurrency * 2 + 16, password=settings.redis_password
            )
            stack.push_async_callback(redis.aclose)  # make_redis: the client owns its pool and closes it
            connector = aiohttp.TCPConnector(limit=settings.concurrency * 2 + 16, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=connector)
            stack.push_async_callback(session.close)

            try:
                warning = await persistence_warning(redis)
            except (aioredis.ConnectionError, aioredis.TimeoutError):
                warning = None  # not reachable yet: /readyz says so
            if warning:
                log.warning("redis persistence: %s (the retry schedule and the ledger live there)", warning)
            await wait_kafka(settings.kafka_bootstrap, timeout_s=120)
            await ensure_topics(
                settings.kafka_bootstrap, [topics.inbound], settings.topic_partitions, settings.topic_durability
            )
            consumer = make_consumer(
                settings.kafka_bootstrap, settings.group_id, f"grizzly-pusher-{socket.gethostname()}-{os.getpid()}"
            )
            store = PushStore(
                redis,
                hold_s=settings.hold_s,
                ledger_ttl_s=settings.ledger_ttl_s,
                audit_retention_s=settings.audit_retention_s,
            )
            pool = PoolClient(settings.pool_url, token=settings.pool_token, timeout_s=settings.pool_timeout_s)
            stack.push_async_callback(pool.aclose)
            activity = Activity(redis, sms_log_max=settings.sms_log_max, ttl_s=settings.ledger_ttl_s)
            pusher = Pusher(settings, redis, session, store, pool, activity)
            inbound = InboundConsumer(consumer, pusher, topics.inbound)
            inbound.subscribe()
            await consumer.start()
            stack.push_async_callback(consumer.stop)  # leaves the group; runs after the loops stopped
            retrier = Retrier(pusher)
            tasks = [asyncio.create_task(inbound.run()), asyncio.create_task(retrier.run())]
            # not among the loops whose crash stops the pusher: the console's view never stops delivery
            activity_task = asyncio.create_task(activity.run())
            for task in tasks:
                task.add_done_callback(_exit_on_crash(app))
            log.info(
                "pusher started",
                extra=log_fields(
                    topic=topics.inbound, group=settings.group_id, upstreams=[u.name for u in settings.upstreams]
                ),
            )

            async def stop_loops() -> None:
                log.info("pusher stopping: in-flight pushes finish, the rest is handed back to the retry schedule")
                pusher.stopping = True
                inbound.stop()
                retrier.stop()
                await _stop(tasks, settings.shutdown_grace_s)
                await store.aclose()
                await activity.aclose()
                await cancel_and_wait(activity_task)
                log.info("pusher stopped")

            stack.push_async_callback(stop_loops)  # first, before the consumer leaves and the clients close
            parked = ParkedStore(redis, audit_retention_s=settings.audit_retention_s)
            yield {"settings": settings, "redis": redis, "pool": pool, "consumer": consumer, "parked": parked}

    async def check_redis(request: Request) -> None:
        if not await app_state(request, State)["redis"].ping():
            raise ConnectionError("redis")

    async def check_kafka(request: Request) -> None:
        if not await kafka_reachable(settings.kafka_bootstrap, timeout_s=1.5):
            raise ConnectionError("kafka")

    async def check_pool(request: Request) -> None:
        await app_state(request, State)["pool"].healthy()

    routes = health_routes({"redis": check_redis, "kafka": check_kafka, "pool": check_pool})
    routes += admin_routes(settings.admin_token, State)
    return Starlette(routes=routes, lifespan=lifespan)
