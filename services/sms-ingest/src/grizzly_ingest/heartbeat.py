"""Device heartbeats to the pool: the devices seen since the last flush, sent in one POST /v1/seen.

GoIP keepalives, Android SMS Gateway's system:ping and Ejoin port-status pushes each mark their device seen.
Thousands of devices beat every few seconds; the pool only needs to know, per device, that it was seen within
its timeout (tens of seconds). So a beat only adds the device to a set, and every INGEST_SEEN_INTERVAL_S the set
goes to the pool in calls of at most SEEN_MAX devices. A failed flush puts its devices back for the next one: a
pool that is down for a while learns of them when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import re

from grizzly_common.logging import log_fields
from grizzly_common.pool_api import SEEN_MAX, SeenRequest, SeenResult
from grizzly_common.pool_client import PoolClient, PoolUnavailable

from grizzly_ingest import metrics

log = logging.getLogger(__name__)

MAX_PENDING = 100_000  # devices remembered between flushes; beyond, a beat is dropped (and counted)
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$")  # pool_api.DeviceName


class Heartbeats:
    def __init__(self, pool: PoolClient | None, interval_s: float) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self._pending: set[str] = set()

    def seen(self, device: str) -> None:
        """Mark a device seen now (no I/O: the next flush tells the pool)."""
        if self.pool is None:
            return
        if not _DEVICE.match(device):  # the pool would refuse the whole call for it
            metrics.HEARTBEATS.labels("invalid").inc()
            return
        if device not in self._pending and len(self._pending) >= MAX_PENDING:
            metrics.HEARTBEATS.labels("dropped").inc()
            return
        self._pending.add(device)
        metrics.HEARTBEATS.labels("queued").inc()

    async def flush(self) -> int:
        """Send the devices seen since the last flush; returns how many the pool took. Keeps them on failure."""
        if self.pool is None or not self._pending:
            return 0
        devices = sorted(self._pending)
        self._pending.clear()
        sent = 0
        for start in range(0, len(devices), SEEN_MAX):
            chunk = devices[start : start + SEEN_MAX]
            try:
                result = await self.pool.call("/v1/seen", SeenRequest(chunk), SeenResult)
            except PoolUnavailable:
                result = SeenResult(status="ERROR", error="pool unavailable")
            if result.status != "SUCCESS":
                log.warning("heartbeats not delivered", extra=log_fields(devices=len(chunk), error=result.error))
                metrics.HEARTBEAT_FLUSHES.labels("failed").inc()
                for device in devices[start:]:  # back for the next flush (the set stays bounded)
                    if len(self._pending) < MAX_PENDING:
                        self._pending.add(device)
                break
            sent += len(chunk)
            metrics.HEARTBEAT_FLUSHES.labels("ok").inc()
            if result.revived:
                log.info("devices back online", extra=log_fields(revived=result.revived))
        return sent

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except Exception:  # a bug must not stop the heartbeats; the next round retries
                log.exception("heartbeat flush failed")
