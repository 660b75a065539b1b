"""The pool's internal API over one keep-alive aiohttp session; any transport failure becomes Unavailable."""

from __future__ import annotations

import logging
from typing import TypeVar

import aiohttp
import msgspec
from grizzly_common.errors import Unavailable
from grizzly_common.logging import log_fields

log = logging.getLogger(__name__)

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class PoolClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url
        self._decoders: dict[type, msgspec.json.Decoder] = {}  # type: ignore[type-arg]

    @property
    def timeout_s(self) -> float:
        """The most one call waits for the pool (the session's total timeout)."""
        return self._session.timeout.total or 0.0

    async def call(self, path: str, request: msgspec.Struct, result_type: type[T]) -> T:
        decoder = self._decoders.get(result_type)
        if decoder is None:
            decoder = self._decoders[result_type] = msgspec.json.Decoder(result_type)
        try:
            async with self._session.post(
                self._base_url + path,
                data=_encoder.encode(request),
                headers={"Content-Type": "application/json"},
            ) as reply:
                body = await reply.read()
                if reply.status != 200:
                    raise Unavailable(f"temporarily unavailable, retry (pool answered HTTP {reply.status})")
            return decoder.decode(body)  # type: ignore[no-any-return]
        except Unavailable as exc:
            log.warning("pool call failed", extra=log_fields(path=path, error=str(exc)))
            raise
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
            log.warning("pool call failed", extra=log_fields(path=path, error=type(exc).__name__))
            raise Unavailable() from None

    async def healthy(self) -> None:
        """Raises unless the pool's /healthz answers 200."""
        async with self._session.get(self._base_url + "/healthz") as reply:
            await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"pool /healthz answered {reply.status}")
