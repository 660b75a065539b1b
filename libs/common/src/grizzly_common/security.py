"""Controls every service shares: the internal API's shared secret and body cap (one ASGI middleware), CIDR
allowlists and a per-source token bucket. Each costs microseconds per request: networks are parsed once, the
bucket table is a bounded dict.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

INTERNAL_TOKEN_HEADER = "x-internal-token"  # what every caller of the pool's internal API sends
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: they carry no secret

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


async def _answer(send: Send, status: int, error: str) -> None:
    body = orjson.dumps({"status": "ERROR", "error": error})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class InternalAuth:
    """The pool's internal API: the shared secret in X-Internal-Token (constant-time compare), and the body read
    whole up to max_body_bytes before the app sees it (413 past it), so no caller can hold memory. Health and
    metrics paths stay open (probes)."""

    def __init__(self, app: ASGIApp, token: str, max_body_bytes: int, next_token: str = "") -> None:
        """next_token: during a changeover, a second token accepted beside `token`."""
        self.app = app
        self._tokens = [t.encode() for t in (token, next_token) if t]
        self._max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = b""
        declared = b""
        for name, value in scope["headers"]:
            if name == b"x-internal-token":
                given = value
            elif name == b"content-length":
                declared = value
        # compare_digest with every token, even without a header: the time says nothing about the tokens
        matched = [hmac.compare_digest(given, token) for token in self._tokens]
        if not any(matched) or not given:
            await _answer(send, 401, "missing or wrong internal token")
            return
        if declared.isdigit() and int(declared) > self._max:  # bytes: ASCII digits only
            await _answer(send, 413, f"request body too large (limit {self._max} bytes)")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client left: the app sees the same
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await _answer(send, 413, f"request body too large (limit {self._max} bytes)")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


def parse_networks(name: str, items: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs ("203.0.113.0/24", "2001:db8::/32", a bare address); a malformed one raises ValueError naming `name`."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not an IP network (CIDR)") from None
    return tuple(networks)


class Allowlist:
    """Addresses inside any of the networks; an empty list allows every address."""

    def __init__(self, networks: tuple[IPNetwork, ...]) -> None:
        self._networks = networks
        self._cache: dict[str, bool] = {}  # a platform calls from a handful of addresses: remember each verdict

    def __bool__(self) -> bool:
        return bool(self._networks)

    def allows(self, host: str | None) -> bool:
        if not self._networks:
            return True
        if host is None:
            return False
        verdict = self._cache.get(host)
        if verdict is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                verdict = False
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                    address = address.ipv4_mapped
                verdict = any(address in network for network in self._networks)
            if len(self._cache) >= 4096:
                self._cache.clear()  # a scan from many addresses must not grow it without bound
            self._cache[host] = verdict
        return verdict


class RateLimiter:
    """A token bucket per source address: `rate` requests a second on average, bursts of `burst`. At most
    `max_sources` buckets are kept (least recently seen dropped first), so a scan from many addresses costs a
    bounded amount of memory. rate 0 disables it."""

    def __init__(self, rate: float, burst: float, max_sources: int = 65_536) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._max = max_sources
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # source -> [tokens, last refill]

    def allow(self, source: str, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._buckets.popitem(last=False)
            bucket = self._buckets[source] = [self.burst, now]
        else:
            self._buckets.move_to_end(source)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False

    def peek(self, source: str, now: float | None = None) -> bool:
        """Whether allow() would let `source` through now, without taking a token (count failures only)."""
        bucket = self._buckets.get(source)
        if self.rate <= 0 or bucket is None:
            return True
        now = time.monotonic() if now is None else now
        return min(self.burst, bucket[0] + (now - bucket[1]) * self.rate) >= 1.0

    def __len__(self) -> int:
        return len(self._buckets)


def client_host(scope: Scope | dict[str, Any]) -> str | None:
    """The peer address as the server saw it (behind a proxy: uvicorn's --forwarded-allow-ips sets it)."""
    client = scope.get("client")
    return client[0] if client else None
