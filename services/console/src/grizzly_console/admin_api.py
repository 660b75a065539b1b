"""The two admin APIs the console reads and changes state through (the pool's, the pusher's): one httpx client
each, the bearer token on every request, the operator's name in X-Operator on every change.

Every failure becomes an AdminFailure whose message a page shows as it is: what was asked, of which API, and why.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

log = logging.getLogger(__name__)


class AdminFailure(Exception):
    """An admin API did not give what was asked. `missing`: the API has no such route (an older version)."""

    def __init__(self, api: str, message: str, *, status: int = 0, missing: bool = False) -> None:
        super().__init__(f"{api} admin API: {message}")
        self.api = api
        self.status = status
        self.missing = missing
        self.message = f"{api} admin API: {message}"


def _error_text(reply: httpx.Response) -> str | None:
    """The API's own {"error": "..."}; None when the answer is not one of its JSON errors."""
    try:
        body = orjson.loads(reply.content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:300]
    return None


class AdminApi:
    def __init__(
        self,
        name: str,
        base_url: str,
        token: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,  # the token goes to this URL only
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return await self._call("GET", path, params=params)

    async def post(
        self,
        path: str,
        operator: str,
        json: Any = None,
        *,
        params: Mapping[str, str | int] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        content_type: str = "",
    ) -> Any:
        headers = {"X-Operator": operator}
        body: bytes | AsyncIterator[bytes] | None = content
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        return await self._call("POST", path, params=params, content=body, headers=headers)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            reply = await self._client.request(method, path, params=params, content=content, headers=headers)
        except httpx.TimeoutException:
            raise AdminFailure(self.name, f"{method} {path} timed out") from None
        except httpx.HTTPError as exc:
            raise AdminFailure(self.name, f"{method} {path} failed: not reachable ({type(exc).__name__})") from None
        if reply.status_code < 300:
            try:
                return orjson.loads(reply.content)
            except orjson.JSONDecodeError:
                raise AdminFailure(self.name, f"{method} {path}: the answer is not JSON", status=502) from None
        error = _error_text(reply)
        if reply.status_code in (404, 405) and error is None:
            # the framework's own 404 (plain text), not the API's "unknown ...": this version has no such route
            raise AdminFailure(
                self.name, f"{method} {path} is not served by this version", status=reply.status_code, missing=True
            )
        if reply.status_code == 401:
            # a wrong token is a deployment problem: say so, never which token
            log.warning("admin API refused the console's token", extra={"fields": {"api": self.name, "path": path}})
            raise AdminFailure(self.name, "the console's admin token was refused (401)", status=401)
        reason = error or reply.reason_phrase or "error"
        raise AdminFailure(self.name, f"{reason} (HTTP {reply.status_code})", status=reply.status_code)
