"""The GoIP SMS-server protocol over UDP (INGEST_GOIP_UDP_PORT): keepalives in, SMS to Kafka, answers back.

The guarantees are those of the HTTP sources. A RECEIVE is answered `RECEIVE <n> OK` only once Kafka
acknowledged its record (the publisher's path: fingerprint, smsId, "published" mark). Until then the GoIP keeps
the SMS and sends it again; a repeat finds the fingerprint (receiving number, sender, text: the GoIP gives no
timestamp) and is answered OK without a second record, within INGEST_DEDUPE_NO_TS_TTL_S. A RECEIVE whose fields
break the record's bounds is answered `RECEIVE <n> ERROR <why>` (retrying cannot help). Unknown ids and wrong
passwords get no answer at all, and are counted.

A keepalive (or any status event) from a known line marks its device seen (heartbeat.py) and stores what it
says about the SIM in ingest's own hash {prefix}ingest:goip:{device}:{slot} for INGEST_GOIP_SIM_TTL_S. Its
`num:` is the receiving number of an SMS whose (device, slot) neither the static maps nor the pool know.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any, cast

from grizzly_common.logging import log_fields
from grizzly_common.web import json_response
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT
from starlette.requests import Request
from starlette.responses import Response

from grizzly_ingest import fields, goip_protocol, metrics
from grizzly_ingest.errors import BadInput, IngestError, UnknownDevice
from grizzly_ingest.goip_protocol import Line, Packet
from grizzly_ingest.heartbeat import Heartbeats
from grizzly_ingest.model import Incoming
from grizzly_ingest.state import Ingest
from grizzly_ingest.text import normalise_number, now_ms
from grizzly_ingest.webhooks.base import check_token, state_of, supplied_token

log = logging.getLogger(__name__)

SIM_FIELDS = ("num", "signal", "gsm_status", "imei", "imsi", "iccid", "pro")
LOG_EVERY_S = 10.0  # refused datagrams are logged at most this often per reason (a flood must not flood the log)


def sim_key(prefix: str, line: Line) -> str:
    return f"{prefix}ingest:goip:{line.device}:{line.slot}"


class GoipServer(asyncio.DatagramProtocol):
    def __init__(self, ingest: Ingest, heartbeats: Heartbeats) -> None:
        self.ingest = ingest
        self.settings = ingest.settings
        self.lines = ingest.settings.goip_lines
        self.heartbeats = heartbeats
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._logged_at: dict[str, float] = {}  # per result: a flood of garbage must not hide an outage

    # asyncio.DatagramProtocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is one, without the subclass

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(self._tasks) >= self.settings.goip_max_pending:
            metrics.GOIP_DATAGRAMS.labels("overload").inc()  # not answered: the device sends it again
            return
        task = asyncio.create_task(self._handle(data, addr))
        self._tasks.add(task)
        metrics.GOIP_PENDING.set(len(self._tasks))
        task.add_done_callback(self._done)

    def error_received(self, exc: Exception) -> None:  # an ICMP error for an earlier answer: nothing to do
        log.debug("goip udp error", extra=log_fields(error=repr(exc)))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        metrics.GOIP_PENDING.set(len(self._tasks))

    async def aclose(self) -> None:
        """Stop taking datagrams; let those being handled finish (bounded by the publish timeout)."""
        if self.transport is not None:
            self.transport.close()
        if self._tasks:
            _done, late = await asyncio.wait(set(self._tasks), timeout=self.settings.publish_timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # handling ---------------------------------------------------------------------------------------------
    def _send(self, answer: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)

    def _refused(self, result: str, why: str, **extra: object) -> None:
        metrics.GOIP_DATAGRAMS.labels(result).inc()
        now = time.monotonic()
        if now - self._logged_at.get(result, 0.0) >= LOG_EVERY_S:
            self._logged_at[result] = now
            log.warning(why, extra=log_fields(**extra))

    def authenticate(self, packet: Packet) -> Line | None:
        """The line, when the packet's id is configured and its password matches (constant time)."""
        line = self.lines.get(packet.device_id)
        supplied = packet.password.encode()
        expected = line.password.encode() if line is not None else b"\0" * 16
        if not hmac.compare_digest(supplied, expected) or line is None:
            return None
        return line

    async def _handle(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            packet = goip_protocol.parse(data)
            if packet is None:
                self._refused("malformed", "goip datagram not understood", peer=addr[0], size=len(data))
                return
            line = self.authenticate(packet)
            if line is None:
                # no answer: a GoIP with a wrong password keeps retrying, and the log says why
                self._refused(
                    "unauthorized", "goip id unknown or password wrong", peer=addr[0], id=packet.device_id[:64]
                )
                return
            self.heartbeats.seen(line.device)
            if packet.verb == goip_protocol.KEEPALIVE:
                self._send(goip_protocol.reg_ok(packet.seq), addr)
                metrics.GOIP_DATAGRAMS.labels("keepalive").inc()
                await self._store_sim(line, packet, addr)
            elif packet.verb == goip_protocol.RECEIVE:
                await self._receive(line, packet, addr)
            else:  # DELIVER, STATE, RECORD, REMAIN, ...: nothing to keep, but the device waits for the answer
                self._send(goip_protocol.ok(packet.verb, packet.seq), addr)
                metrics.GOIP_DATAGRAMS.labels("event").inc()
        except Exception:  # a bug: this datagram goes unanswered (the device resends it), the server goes on
            metrics.GOIP_DATAGRAMS.labels("internal").inc()
            log.exception("goip datagram failed", extra=log_fields(peer=addr[0]))

    async def _store_sim(self, line: Line, packet: Packet, addr: tuple[str | Any, int]) -> None:
        values: dict[FieldT, EncodableT] = {"id": line.id, "peer": f"{addr[0]}:{addr[1]}", "seen_ms": now_ms()}
        for name in SIM_FIELDS:
            value = packet.fields.get(name)
            if value is None:
                continue
            try:
                values[name] = fields.label(name, value)
            except BadInput:
                continue  # a field we cannot keep is left out; the keepalive still counts
        key = sim_key(self.ingest.publisher.prefix, line)
        try:
            async with self.ingest.publisher.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)  # what the SIM no longer reports (a number removed) must not linger
                pipe.hset(key, mapping=values)
                pipe.expire(key, self.settings.goip_sim_ttl_s)
                await pipe.execute()
        except RedisError as exc:
            log.warning("goip keepalive not stored", extra=log_fields(id=line.id, error=repr(exc)))

    async def _number(self, line: Line) -> int:
        """The SIM's number: the static maps or the pool for (device, slot), else the keepalive's num:."""
        try:
            return await self.ingest.resolver.resolve(line.device, line.slot)
        except UnknownDevice:
            raw = await self.ingest.publisher.redis.hget(sim_key(self.ingest.publisher.prefix, line), "num")
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
            try:
                return normalise_number(text)
            except ValueError:
                raise UnknownDevice(
                    f"no number known for device {line.device!r} slot {line.slot!r} (nor a num: in its keepalive)"
                ) from None

    async def _receive(self, line: Line, packet: Packet, addr: tuple[str | Any, int]) -> None:
        assert packet.msg is not None
        try:
            async with asyncio.timeout(self.settings.request_deadline_s):
                message = Incoming(
                    source="goip",
                    phone_from=fields.sender("srcnum", packet.fields.get("srcnum", "")),
                    text=fields.text("msg", goip_protocol.clean_text(packet.msg)),
                    device=line.device,
                    slot=line.slot,
                )
                number = await self._number(line)
                accepted = await self.ingest.publisher.accept(message, number)
        except BadInput as exc:  # the same datagram can never pass: tell the device to stop resending it
            self._send(goip_protocol.error(packet.verb, packet.seq, exc.error), addr)
            self._refused("invalid", "goip sms refused", id=line.id, error=exc.error)
            return
        except TimeoutError:
            self._refused("deadline", "goip sms not acknowledged in time", id=line.id)
            return
        except IngestError as exc:  # Kafka, Redis or the pool is down, or the number unknown: the device resends
            self._refused(exc.reason, "goip sms not acknowledged", id=line.id, error=exc.error)
            return
        except RedisError as exc:  # the keepalive's num: could not be read
            self._refused("unavailable", "goip sms not acknowledged", id=line.id, error=repr(exc))
            return
        self._send(goip_protocol.ok(packet.verb, packet.seq), addr)
        metrics.GOIP_DATAGRAMS.labels("duplicate" if accepted.duplicate else "receive").inc()


async def start(ingest: Ingest, heartbeats: Heartbeats) -> GoipServer:
    """Listen on INGEST_HOST:INGEST_GOIP_UDP_PORT."""
    loop = asyncio.get_running_loop()
    settings = ingest.settings
    _transport, server = await loop.create_datagram_endpoint(
        lambda: GoipServer(ingest, heartbeats), local_addr=(settings.host, settings.goip_udp_port)
    )
    log.info("goip sms server listening", extra=log_fields(port=settings.goip_udp_port, lines=len(settings.goip_lines)))
    return server


async def lines_status(ingest: Ingest) -> list[dict[str, object]]:
    """Every configured line with what its last keepalive said (empty when none within INGEST_GOIP_SIM_TTL_S)."""
    lines = list(ingest.settings.goip_lines.values())
    async with ingest.publisher.redis.pipeline(transaction=False) as pipe:
        for line in lines:
            pipe.hgetall(sim_key(ingest.publisher.prefix, line))
        found: list[dict[bytes, bytes]] = await pipe.execute()
    return [
        {
            "id": line.id,
            "device": line.device,
            "slot": line.slot,
            **{name.decode(): value.decode(errors="replace") for name, value in sim.items()},
        }
        for line, sim in zip(lines, found, strict=True)
    ]


async def status_endpoint(request: Request) -> Response:
    """GET /v1/goip/lines (Bearer INGEST_TOKEN): the lines and their last keepalive, for an operator."""
    state = state_of(request)
    check_token(supplied_token(request), state.settings.token)
    return json_response({"status": "SUCCESS", "lines": await lines_status(state)})
