"""grizzly_common.http1 against a real uvicorn server, and against raw sockets that misbehave: every failure is
HttpError, OSError or TimeoutError, a failed connection is never reused, and keep-alive reuses the good ones."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvicorn
from grizzly_common.http1 import HttpError, KeepAliveClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _echo(request: Request) -> Response:
    body = await request.body()
    if request.url.path == "/slow":
        await asyncio.sleep(1.0)
    header = request.headers.get("x-token", "")
    peer = request.client.port if request.client else 0
    return Response(b"%s|%s|%d" % (header.encode(), body, peer), status_code=201, media_type="text/plain")


async def _server() -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    port = _free_port()
    app = Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, port


def run(body: Callable[[int], Awaitable[None]]) -> None:
    async def main() -> None:
        server, task, port = await _server()
        try:
            await body(port)
        finally:
            server.should_exit = True
            await task

    asyncio.run(main())


def test_calls_reuse_one_keep_alive_connection_and_send_the_fixed_headers() -> None:
    async def body(port: int) -> None:
        client = KeepAliveClient(f"http://127.0.0.1:{port}/base/", headers={"X-Token": "t0k"})
        try:
            answers = [await client.request("POST", "/a", b"x" * n, timeout_s=2.0) for n in (0, 5, 70000)]
            assert [status for status, _ in answers] == [201, 201, 201]
            token, echoed, peers = zip(*(answer.split(b"|") for _, answer in answers), strict=True)
            assert set(token) == {b"t0k"} and [len(e) for e in echoed] == [0, 5, 70000]
            assert len(set(peers)) == 1, "one connection for calls one after another"
            status, _ = await client.request("GET", "/health", timeout_s=2.0)
            assert status == 201
        finally:
            await client.aclose()

    run(body)


def test_concurrent_calls_get_their_own_answers_within_the_connection_limit() -> None:
    async def body(port: int) -> None:
        client = KeepAliveClient(f"http://127.0.0.1:{port}", connections=3)
        try:
            answers = await asyncio.gather(*(client.request("POST", "/", b"%d" % i, timeout_s=5.0) for i in range(40)))
            assert [a.split(b"|")[1] for _, a in answers] == [b"%d" % i for i in range(40)]
            assert len({a.split(b"|")[2] for _, a in answers}) <= 3
        finally:
            await client.aclose()

    run(body)


def test_a_timed_out_call_closes_its_connection_and_the_next_call_gets_a_fresh_one() -> None:
    async def body(port: int) -> None:
        client = KeepAliveClient(f"http://127.0.0.1:{port}")
        try:
            _, first = await client.request("POST", "/", b"", timeout_s=2.0)
            with pytest.raises(TimeoutError):
                await client.request("POST", "/slow", b"", timeout_s=0.2)
            _, after = await client.request("POST", "/", b"", timeout_s=2.0)
            assert first.split(b"|")[2] != after.split(b"|")[2], "the late answer must not be read as this one's"
        finally:
            await client.aclose()

    run(body)


async def _raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    await reader.readexactly(length)


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closed without an answer
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # closed mid-body
        b"garbage\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n" + b"x" * 70000,  # past the answer cap
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",  # an interim answer
    ],
    ids=["closed", "truncated", "garbage", "too-large", "interim"],
)
def test_a_broken_answer_is_an_http_error_and_its_connection_is_dropped(reply: bytes) -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(reply)
            await writer.drain()
            writer.close()

        async for port in _raw_server(handle):
            client = KeepAliveClient(f"http://127.0.0.1:{port}", max_body_bytes=65536)
            with pytest.raises(HttpError):
                await client.request("POST", "/", b"{}", timeout_s=2.0)
            assert client._take() is None

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()  # keep-alive answered, then closed (a server's idle timeout)

        async for port in _raw_server(handle):
            client = KeepAliveClient(f"http://127.0.0.1:{port}")
            assert await client.request("POST", "/", b"", timeout_s=2.0) == (200, b"ok")
            await asyncio.sleep(0.1)
            assert await client.request("POST", "/", b"", timeout_s=2.0) == (200, b"ok")

    asyncio.run(main())


def test_connect_failures_and_bad_settings_raise() -> None:
    async def main() -> None:
        client = KeepAliveClient(f"http://127.0.0.1:{_free_port()}")
        with pytest.raises(OSError):
            await client.request("GET", "/", timeout_s=2.0)

    asyncio.run(main())
    with pytest.raises(ValueError, match="http"):
        KeepAliveClient("ftp://example")
    with pytest.raises(ValueError, match="line break"):
        KeepAliveClient("http://127.0.0.1:1", headers={"X-Token": "a\r\nInjected: 1"})


def test_bytes_after_the_answer_never_reach_the_next_call() -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await _read_request(reader)
                # the answer and the start of another one in the same write
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Le")
                await writer.drain()
                with contextlib.suppress(ConnectionError):
                    await reader.read()  # until the client closes it
            finally:
                writer.close()

        async for port in _raw_server(handle):
            client = KeepAliveClient(f"http://127.0.0.1:{port}")
            assert await client.request("POST", "/", b"", timeout_s=2.0) == (200, b"ok")
            assert client._take() is None, "a connection that sent more than its answer is not reused"
            assert await client.request("POST", "/", b"", timeout_s=2.0) == (200, b"ok")
            await client.aclose()
            await asyncio.sleep(0.05)  # the server's handler sees the close

    asyncio.run(main())


def test_a_call_that_ends_after_aclose_does_not_keep_its_connection() -> None:
    async def body(port: int) -> None:
        client = KeepAliveClient(f"http://127.0.0.1:{port}")
        call = asyncio.create_task(client.request("POST", "/slow", b"", timeout_s=5.0))
        await asyncio.sleep(0.2)
        await client.aclose()
        assert (await call)[0] == 201
        assert client._idle == []

    run(body)
