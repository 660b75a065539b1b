"""The platform's side of the wire: POSTs actions to a partner URL with one long-lived aiohttp session."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

USER_AGENT = "grizzly-sim/0.1 (platform simulator)"


@dataclass(frozen=True)
class Reply:
    """One exchange. http_status 0 means no HTTP answer at all (transport error or timeout, see `failure`)."""

    http_status: int
    raw: bytes
    body: Any  # the decoded JSON, or None when the answer was not JSON
    elapsed_s: float
    failure: str = ""

    @property
    def status(self) -> str | None:
        return self.body.get("status") if isinstance(self.body, dict) else None

    def describe(self) -> str:
        if self.failure:
            return self.failure
        return f"HTTP {self.http_status} {self.raw[:200].decode(errors='replace')}"


class PartnerClient:
    """Sends the platform's requests. The key is added here and never logged."""

    def __init__(self, url: str, key: str, timeout_s: float = 10.0, max_connections: int = 300) -> None:
        self.url = url
        self._key = key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections

    async def __aenter__(self) -> PartnerClient:
        connector = aiohttp.TCPConnector(limit=self._max_connections, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, headers={"User-Agent": USER_AGENT}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("PartnerClient used outside `async with`")
        return self._session

    async def action(self, action: str, key: str | None = None, **fields: Any) -> Reply:
        """{"action": action, "key": <our key>, **fields}; key= overrides the key (wrong-key probes)."""
        body = {"action": action, "key": self._key if key is None else key, **fields}
        return await self.raw(orjson.dumps(body))

    async def get_services(self) -> Reply:
        return await self.action("GET_SERVICES")

    async def get_number(
        self, country: str | int, operator: str, service: str, sum_: float = 1.0, exclude: list[Any] | None = None
    ) -> Reply:
        fields: dict[str, Any] = {"country": country, "operator": operator, "service": service, "sum": sum_}
        if exclude is not None:
            fields["exceptionPhoneSet"] = exclude
        return await self.action("GET_NUMBER", **fields)

    async def finish(self, activation_id: int, status: int) -> Reply:
        return await self.action("FINISH_ACTIVATION", activationId=activation_id, status=status)

    async def raw(self, data: bytes | None, method: str = "POST", headers: dict[str, str] | None = None) -> Reply:
        """Any bytes (malformed JSON, huge bodies, GET): the answer and how long it took."""
        started = time.perf_counter()
        send_headers = {"Content-Type": "application/json"} if data is not None else {}
        send_headers.update(headers or {})
        try:
            # aiohttp warns (ResourceWarning) when a large body is passed as bytes
            payload = io.BytesIO(data) if data is not None and len(data) > 64 * 1024 else data
            async with self.session.request(method, self.url, data=payload, headers=send_headers) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Reply(
                0, b"", None, time.perf_counter() - started, f"no HTTP answer: {type(exc).__name__} {exc}"[:300]
            )
        elapsed = time.perf_counter() - started
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        return Reply(status, raw, body, elapsed)
