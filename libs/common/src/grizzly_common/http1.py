"""A small HTTP/1.1 client over keep-alive connections: the one transport of the pool's internal API (PoolClient).

api-edge calls the pool for every GET_NUMBER and FINISH_ACTIVATION batch, and a general client's per-call work (a
request object, header multidicts, a timer per phase, connector bookkeeping) cost about three times a small batch's
own round trip. This one writes the request head in one go, parses the answer with httptools (uvicorn's parser) and
keeps each connection for the next call. One request per connection at a time, never pipelined, never retried: a
call that fails (connect, a broken or closed connection, a malformed answer, the timeout, which also bounds the
connect) raises HttpError, OSError or TimeoutError, and its connection is closed, since its answer may still come.
An answer must carry a Content-Length or be chunked (uvicorn's always do): one that ends with the connection is an
HttpError.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import httptools


class HttpError(Exception):
    """No usable answer (the call may or may not have reached the server)."""


class _Connection(asyncio.Protocol):
    def __init__(self, max_body_bytes: int) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._max = max_body_bytes
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport (create_connection)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._fail(HttpError("the server sent data nobody asked for"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection closed{f': {exc}' if exc else ''}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._waiter is None:  # bytes after the answer, in the same read: never part of the next call's answer
            self._fail(HttpError("the server sent data nobody asked for"))

    def on_status(self, status: bytes) -> None:
        if self._waiter is not None and self._parser.get_status_code() < 200:
            self._fail(HttpError("interim (1xx) answers are not expected"))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max:
            self._fail(HttpError(f"answer larger than {self._max} bytes"))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        body = b"".join(self._chunks)
        self._chunks, self._size = [], 0
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), body, self._parser.should_keep_alive()))

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        """Send a whole request; its status, body and whether the connection may be used again."""
        assert self._transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter


class KeepAliveClient:
    """Calls to one http(s)://host:port base URL, at most `connections` at once (the rest wait their turn)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        connections: int = 64,
        idle_s: float = 2.0,
        max_body_bytes: int = 64 << 20,
    ) -> None:
        """headers: sent with every call. idle_s: a connection unused for longer is closed rather than reused (below
        the server's keep-alive timeout, uvicorn's 5 s, so a call never races the server closing it)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the base URL must be http(s)://host[:port][/path]")  # not echoed: it may hold a password
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        fixed = {"Host": netloc, **(headers or {})}
        for name, value in fixed.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} holds a line break")
        self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self._idle_s = idle_s
        self._max_body = max_body_bytes
        self._closed = False

    async def request(self, method: str, path: str, body: bytes = b"", *, timeout_s: float) -> tuple[int, bytes]:
        """One call: the answer's status and body. Raises HttpError, OSError (connect) or TimeoutError."""
        data = b"".join(
            (
                f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1"),
                self._head,
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        async with asyncio.timeout(timeout_s), self._slots:
            connection = self._take() or await self._connect()
            try:
                status, answer, keep = await connection.request(data)
            except BaseException:
                connection.close()  # its answer may still come: never reused
                raise
            if keep and not connection.closed and not self._closed:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            return status, answer

    def _take(self) -> _Connection | None:
        """The most recently used idle connection that is still open (older ones are closed)."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self._idle_s:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: _Connection(self._max_body),
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl else None,
        )
        return connection

    async def aclose(self) -> None:
        """Close the idle connections (a call in flight closes its own when it ends)."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
