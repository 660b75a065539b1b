"""What the partner URL checks before it reads a body: which port the request came in on (health and metrics only
on the ops port), the source address (each upstream's CIDR allowlist) and a per-source rate limit.

The rate limit never slows a platform: an address inside any upstream's allowlist is exempt (the platform calls at
its own pace), and so is loopback (this machine: the conformance kit, a local proxy that sets X-Forwarded-For);
every other address gets a token bucket (EDGE_RATE_LIMIT_RPS, bursts of EDGE_RATE_LIMIT_BURST). A refused request
gets the protocol's ERROR envelope at HTTP 200, without the body being read.
"""

from __future__ import annotations

import logging

import orjson
from grizzly_common.security import OPEN_PATHS, Allowlist, RateLimiter, client_host, parse_networks
from starlette.types import ASGIApp, Receive, Scope, Send

from grizzly_edge.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK = Allowlist(parse_networks("loopback", ["127.0.0.0/8", "::1/128"]))
RATE_LIMITED = "rate limited, retry"
FORBIDDEN_SOURCE = "source address not allowed"


class SourceAccess:
    """The per-upstream allowlists and the rate limiter, built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self._per_upstream = {name: Allowlist(networks) for name, networks in settings.allow.items()}
        networks = tuple(n for nets in settings.allow.values() for n in nets)
        self._known = Allowlist(networks)  # any platform's address
        # every upstream restricted: an address in none of the lists is refused before its body is read
        self._all_restricted = bool(self._per_upstream) and all(self._per_upstream.values())
        self.limiter = RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst)

    def admits(self, host: str | None) -> str | None:
        """None when the request may go on, else the error to answer."""
        if self._known and self._known.allows(host):
            return None  # a platform: never limited
        if self._all_restricted:
            return FORBIDDEN_SOURCE
        if not LOOPBACK.allows(host) and not self.limiter.allow(host or "?"):
            return RATE_LIMITED
        return None

    def upstream_allows(self, upstream: str, host: str | None) -> bool:
        """The key's upstream accepts this address (no list: any address)."""
        allowlist = self._per_upstream.get(upstream)
        return allowlist is None or allowlist.allows(host)


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeGuard:
    """ASGI middleware in front of the edge app (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, access: SourceAccess) -> None:
        self.app = app
        self.ops_port = settings.ops_port
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ops_path = scope["path"] in OPEN_PATHS
        if self.ops_port:
            server = scope.get("server")
            on_ops_port = server is not None and server[1] == self.ops_port
            if on_ops_port != ops_path:
                # the partner URL does not show health or metrics; the ops port shows nothing else
                await _send(send, 404, orjson.dumps({"status": "ERROR", "error": "HTTP 404: not a partner URL"}))
                return
        if ops_path:
            await self.app(scope, receive, send)
            return
        refused = self.access.admits(client_host(scope))
        if refused is not None:
            await _send(send, 200, orjson.dumps({"status": "ERROR", "error": refused}))
            return
        await self.app(scope, receive, send)
