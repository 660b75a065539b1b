"""Starlette pieces every service uses: health and metrics routes, byte responses, running uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive

from grizzly_common.errors import BodyTooLarge
from grizzly_common.messages import is_digits

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[Request], Awaitable[None]]  # raises when the dependency is not reachable


S = TypeVar("S", bound=Mapping[str, Any])


def app_state(request: Request, kind: type[S]) -> S:
    """What the app's lifespan yielded (its State TypedDict), for this request: the one way every app reads it."""
    return cast(S, request.scope["state"])


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Stop a lifespan's background task (an AsyncExitStack callback): cancel it and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def read_limited_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused (BodyTooLarge) as soon as it is declared or read to exceed max_bytes.

    Counted while reading: a chunked body or a lying Content-Length cannot get more than max_bytes into memory.
    """
    return await receive_limited_body(request.receive, request.headers.get("content-length", ""), max_bytes)


async def receive_limited_body(receive: Receive, declared: str, max_bytes: int) -> bytes:
    """read_limited_body for a raw ASGI app: `declared` is the Content-Length header ("" when there is none)."""
    if is_digits(declared) and int(declared) > max_bytes:
        raise BodyTooLarge(f"request body too large (limit {max_bytes} bytes)")
    # ASGI messages read directly, not through request.stream() (an async generator): on the partner hot path a
    # body is one message, and the generator cost as much as the rest of reading it
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"request body too large (limit {max_bytes} bytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def json_response(body: bytes | dict[str, object], status_code: int = 200) -> Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content, status_code=status_code, media_type="application/json")


def health_routes(checks: Mapping[str, ReadinessCheck], timeout_s: float = 2.0) -> list[Route]:
    """/healthz: the process answers. /readyz: every dependency answered within timeout_s (503 otherwise)."""

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        results: dict[str, str] = {}
        ready = True
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(request), timeout_s)
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                ready = False
                results[name] = f"unreachable: {type(exc).__name__}"
        return json_response({"status": "ok" if ready else "unavailable", "checks": results}, 200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (uvicorn listens on it); IPv6 when the host is an IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def server_config(
    app: object,
    host: str,
    port: int,
    log_level: str = "warning",
    *,
    ssl_certfile: str = "",
    ssl_keyfile: str = "",
    forwarded_allow_ips: str = "",
) -> uvicorn.Config:
    """uvicorn with uvloop + httptools (2.7x the plain asyncio/h11 stack, docs/benchmarks.md), its loggers left to
    grizzly_common.logging (uvicorn's own handlers would print past the redaction). ssl_certfile/ssl_keyfile: TLS on
    every listener. forwarded_allow_ips: proxies whose X-Forwarded-For is believed (the client address allowlists
    and rate limits see); "" believes none."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=log_level.lower(),
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=20,
        ssl_certfile=ssl_certfile or None,
        ssl_keyfile=ssl_keyfile or None,
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=forwarded_allow_ips or "127.0.0.1",
    )
    # access_log=False leaves uvicorn.access without handlers and not propagating: Python's last-resort handler
    # would print its warnings raw on stderr
    logging.getLogger("uvicorn.access").addHandler(logging.NullHandler())
    return config


def freeze_imports() -> None:
    """Before serving: what is imported by now (modules, classes, functions: most of the process's objects) lives as
    long as the process; out of the collector's sight, a full collection no longer walks it again and again."""
    gc.collect()
    gc.freeze()


def serve(
    app: object,
    host: str,
    port: int,
    log_level: str = "warning",
    *,
    also: tuple[str, int] | None = None,
    ssl_certfile: str = "",
    ssl_keyfile: str = "",
    forwarded_allow_ips: str = "",
) -> None:
    """Run `app` (server_config). also: a second (host, port) the same app listens on (api-edge's health and metrics
    port; the app tells the two apart by scope["server"])."""
    config = server_config(
        app,
        host,
        port,
        log_level,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    freeze_imports()
    if also is None:
        uvicorn.Server(config).run()
        return
    uvicorn.Server(config).run(sockets=[listening_socket(host, port), listening_socket(*also)])
