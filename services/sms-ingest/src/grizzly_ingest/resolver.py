"""Which number sits in a device's SIM slot: the static maps from the settings first, then the pool."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from grizzly_common.events import MAX_NUMBER, MIN_NUMBER
from grizzly_common.logging import log_fields
from grizzly_common.pool_client import PoolClient, PoolUnavailable

from grizzly_ingest.errors import Unavailable, UnknownDevice

log = logging.getLogger(__name__)


class Resolver:
    def __init__(self, static: Mapping[tuple[str, str], int], pool: PoolClient | None = None) -> None:
        self.static = static
        self.pool = pool

    def lookup_static(self, device: str, slot: str) -> int | None:
        """(device, slot), then (device, "") for a device configured without slots."""
        return self.static.get((device, slot)) or self.static.get((device, ""))

    async def resolve(self, device: str, slot: str) -> int:
        """The number, or UnknownDevice (422: the source keeps the message), or Unavailable (503)."""
        if not device:
            raise UnknownDevice("neither number nor device given")
        number = self.lookup_static(device, slot)
        if number is not None:
            return number
        if self.pool is None:
            raise UnknownDevice(f"no number configured for device {device[:64]!r} slot {slot[:16]!r}")
        try:
            result = await self.pool.resolve(device, slot)
        except PoolUnavailable:
            raise Unavailable("pool unavailable, retry") from None
        if not result.found:
            raise UnknownDevice(f"no number known for device {device[:64]!r} slot {slot[:16]!r}")
        if not MIN_NUMBER <= result.number <= MAX_NUMBER:  # a pool bug, not the source's: it may retry
            log.warning("pool resolved an invalid number", extra=log_fields(device=device, slot=slot))
            raise Unavailable("pool answered an invalid number, retry")
        return result.number
