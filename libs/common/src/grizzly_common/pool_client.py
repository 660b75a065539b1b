"""The one client of the pool's internal API (api-edge, sms-ingest and the pusher), over keep-alive connections
(grizzly_common.http1).

One failure mapping for every caller: no answer, a timeout, an HTTP status other than 200 or an answer that does not
decode is PoolUnavailable (a retriable Unavailable). Each service maps that once: the edge answers the ERROR
envelope, ingest 503, the pusher retries later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from grizzly_common import pool_api
from grizzly_common.errors import Unavailable
from grizzly_common.http1 import HttpError, KeepAliveClient
from grizzly_common.logging import log_fields
from grizzly_common.security import INTERNAL_TOKEN_HEADER

log = logging.getLogger(__name__)

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class PoolUnavailable(Unavailable):
    """The pool did not answer usefully: retry later."""


class PoolClient:
    def __init__(self, base_url: str, *, token: str = "", timeout_s: float = 5.0, connections: int = 64) -> None:
        """token: POOL_API_TOKEN, sent on every call. timeout_s: the most one call waits. connections: the most calls
        in flight at once (the rest wait their turn, within their timeout). Close it with aclose()."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers[INTERNAL_TOKEN_HEADER] = token
        self._http = KeepAliveClient(base_url.rstrip("/"), headers=headers, connections=connections)
        self._timeout_s = timeout_s
        self._decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
        self._lookup_many_missing = False  # the pool answered 404 to /v1/lookup_many (an older pool)
        self._batch_missing = False  # the pool answered 404 to /v1/batch (an older pool)

    @property
    def timeout_s(self) -> float:
        """The most one call waits for the pool."""
        return self._timeout_s

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, path: str, request: msgspec.Struct, result_type: type[T]) -> T:
        """POST `request` to `path` and decode the answer as `result_type`; any failure is PoolUnavailable."""
        status, body = await self._post(path, _encoder.encode(request))
        if status != 200:
            log.warning("pool call failed", extra=log_fields(path=path, http_status=status))
            raise PoolUnavailable(f"{Unavailable.error} (pool answered HTTP {status})")
        try:
            return self._decoder(result_type).decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("pool answer undecodable", extra=log_fields(path=path, error=str(exc)[:200]))
            raise PoolUnavailable() from None

    async def _post(self, path: str, data: bytes, timeout_s: float | None = None) -> tuple[int, bytes]:
        try:
            return await self._http.request("POST", path, data, timeout_s=self._timeout_s if timeout_s is None
                                            else max(0.001, timeout_s))  # fmt: skip
        except (HttpError, OSError, TimeoutError) as exc:
            log.warning("pool call failed", extra=log_fields(path=path, error=type(exc).__name__))
            raise PoolUnavailable() from None

    def _decoder(self, result_type: type[T]) -> msgspec.json.Decoder[T]:
        decoder = self._decoders.get(result_type)
        if decoder is None:
            decoder = self._decoders[result_type] = msgspec.json.Decoder(result_type)
        return decoder

    async def healthy(self) -> None:
        """Raises unless the pool's /healthz answers 200."""
        try:
            status, _ = await self._http.request("GET", "/healthz", timeout_s=self._timeout_s)
        except (HttpError, OSError, TimeoutError) as exc:
            raise PoolUnavailable(type(exc).__name__) from None
        if status != 200:
            raise PoolUnavailable(f"pool /healthz answered {status}")

    # -- the API, typed -------------------------------------------------------------------------------------
    async def services(self, upstream: str) -> pool_api.ServicesResult:
        return await self.call("/v1/services", pool_api.ServicesRequest(upstream), pool_api.ServicesResult)

    async def claim(self, request: pool_api.ClaimRequest) -> pool_api.ClaimResult:
        return await self.call("/v1/claim", request, pool_api.ClaimResult)

    async def settle(self, request: pool_api.SettleRequest) -> pool_api.SettleResult:
        return await self.call("/v1/settle", request, pool_api.SettleResult)

    async def finish(self, request: pool_api.FinishRequest) -> pool_api.FinishResult:
        return await self.call("/v1/finish", request, pool_api.FinishResult)

    async def batch(self, request: pool_api.BatchRequest, timeout_s: float | None = None) -> pool_api.BatchResult:
        """Claims and finishes in one call, answered in request order, within timeout_s (None: this client's). A pool
        without /v1/batch (HTTP 404: an older pool during a rolling upgrade) is asked per item; there, an item whose
        call fails answers ERROR."""
        if not self._batch_missing:
            status, body = await self._post("/v1/batch", _encoder.encode(request), timeout_s)
            if status == 404:
                log.warning("the pool has no /v1/batch: claiming and finishing one by one")
                self._batch_missing = True
            elif status != 200:
                log.warning("pool call failed", extra=log_fields(path="/v1/batch", http_status=status))
                raise PoolUnavailable(f"{Unavailable.error} (pool answered HTTP {status})")
            else:
                try:
                    result = self._decoder(pool_api.BatchResult).decode(body)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("pool answer undecodable", extra=log_fields(path="/v1/batch", error=str(exc)[:200]))
                    raise PoolUnavailable() from None
                if len(result.claims) != len(request.claims) or len(result.finishes) != len(request.finishes):
                    raise PoolUnavailable("pool answered a batch with the wrong number of results")
                return result
        claims, finishes = await asyncio.gather(
            asyncio.gather(*(self._one(self.claim(item), pool_api.ClaimResult) for item in request.claims)),
            asyncio.gather(*(self._one(self.finish(item), pool_api.FinishResult) for item in request.finishes)),
        )
        return pool_api.BatchResult(claims=claims, finishes=finishes)

    @staticmethod
    async def _one(call: Awaitable[T], kind: Callable[..., T]) -> T:
        try:
            return await call
        except Unavailable as exc:
            return kind(status="ERROR", error=exc.error)

    async def resolve(self, device: str, slot: str) -> pool_api.ResolveResult:
        return await self.call("/v1/resolve", pool_api.ResolveRequest(device, slot), pool_api.ResolveResult)

    async def lookup(self, number: int) -> pool_api.LookupResult:
        return await self.call("/v1/lookup", pool_api.LookupRequest(number), pool_api.LookupResult)

    async def lookup_many(self, numbers: list[int]) -> dict[int, pool_api.LookupResult]:
        """The open activation of each number, LOOKUP_MANY_MAX numbers per request. A pool without /v1/lookup_many
        (HTTP 404: an older pool during a rolling upgrade) is asked per number."""
        unique = list(dict.fromkeys(numbers))
        size = pool_api.LOOKUP_MANY_MAX
        chunks = [unique[i : i + size] for i in range(0, len(unique), size)]
        found = await asyncio.gather(*(self._lookup_chunk(chunk) for chunk in chunks))
        return {
            number: result
            for chunk, results in zip(chunks, found, strict=True)
            for number, result in zip(chunk, results, strict=True)
        }

    async def _lookup_chunk(self, numbers: list[int]) -> list[pool_api.LookupResult]:
        if not self._lookup_many_missing:
            status, body = await self._post("/v1/lookup_many", _encoder.encode(pool_api.LookupManyRequest(numbers)))
            if status == 404:
                log.warning("the pool has no /v1/lookup_many: looking numbers up one by one")
                self._lookup_many_missing = True
            elif status != 200:
                raise PoolUnavailable(f"{Unavailable.error} (pool answered HTTP {status})")
            else:
                try:
                    results = self._decoder(pool_api.LookupManyResult).decode(body).results
                except (msgspec.DecodeError, msgspec.ValidationError):
                    raise PoolUnavailable() from None
                if len(results) != len(numbers):
                    raise PoolUnavailable(f"pool answered {len(results)} lookups for {len(numbers)} numbers")
                return results
        return list(await asyncio.gather(*(self.lookup(number) for number in numbers)))
