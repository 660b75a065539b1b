"""The GoIP UDP server's decisions with the publisher, resolver and Redis faked: which datagram gets which answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grizzly_ingest.errors import BadInput, Unavailable, UnknownDevice
from grizzly_ingest.goip_server import GoipServer
from grizzly_ingest.heartbeat import Heartbeats
from grizzly_ingest.model import Accepted, Incoming
from grizzly_ingest.settings import Settings

LINES = "goip1:pw-1:bank-a:1,goip2:pw-2:bank-b:"
PEER = ("10.0.0.7", 5060)


class Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None


class Pipeline:
    def __init__(self, store: dict[str, dict[str, Any]]) -> None:
        self.store = store
        self.ops: list[tuple[str, Any]] = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def delete(self, key: str) -> None:
        self.ops.append(("delete", key))

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        self.ops.append(("hset", (key, mapping)))

    def expire(self, key: str, ttl: int) -> None:
        return None

    async def execute(self) -> list[Any]:
        for op, arg in self.ops:
            if op == "delete":
                self.store.pop(arg, None)
            else:
                self.store[arg[0]] = {k: str(v).encode() for k, v in arg[1].items()}
        return []


class Redis:
    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}

    def pipeline(self, transaction: bool = True) -> Pipeline:
        return Pipeline(self.store)

    async def hget(self, key: str, name: str) -> bytes | None:
        return self.store.get(key, {}).get(name)


class Publisher:
    def __init__(self) -> None:
        self.redis = Redis()
        self.prefix = ""
        self.accepted: list[tuple[Incoming, int]] = []
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def accept(self, message: Incoming, number: int) -> Accepted:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        duplicate = any(m == message for m, _ in self.accepted)
        self.accepted.append((message, number))
        return Accepted(len(self.accepted), duplicate=duplicate)


class Resolver:
    async def resolve(self, device: str, slot: str) -> int:
        if device == "bank-a":
            return 447700900123
        raise UnknownDevice()


class Ingest:
    def __init__(self, **env: str) -> None:
        self.settings = Settings.from_env({"INGEST_TOKEN": "a-real-token-123", "INGEST_GOIP_LINES": LINES, **env})
        self.publisher = Publisher()
        self.resolver = Resolver()


def server(**env: str) -> tuple[GoipServer, Transport, Ingest]:
    ingest = Ingest(**env)
    udp = GoipServer(ingest, Heartbeats(None, 1.0))  # type: ignore[arg-type] # the fakes have the used shape
    transport = Transport()
    udp.connection_made(transport)  # type: ignore[arg-type]
    return udp, transport, ingest


def run(udp: GoipServer, *datagrams: bytes) -> None:
    async def go() -> None:
        for data in datagrams:
            udp.datagram_received(data, PEER)
        await udp.aclose()

    asyncio.run(go())


def test_receive_ok_only_after_accept_and_resends_all_answered() -> None:
    udp, transport, ingest = server()
    datagram = b"RECEIVE:77;id:goip1;password:pw-1;srcnum:+15551234567;msg:code 1\nline 2"
    run(udp, datagram, datagram)
    assert transport.sent == [b"RECEIVE 77 OK\n"] * 2
    message, number = ingest.publisher.accepted[0]
    assert number == 447700900123 and message.text == "code 1\nline 2" and message.phone_from == "15551234567"
    assert message.device == "bank-a" and message.slot == "1" and message.source == "goip"


@pytest.mark.parametrize("failure", [Unavailable("kafka down"), UnknownDevice("no number")])
def test_no_answer_while_the_message_is_not_on_kafka(failure: Exception) -> None:
    udp, transport, ingest = server()
    ingest.publisher.fail = failure
    run(udp, b"RECEIVE:1;id:goip1;password:pw-1;srcnum:VK;msg:x")
    assert transport.sent == []


def test_a_field_out_of_bounds_gets_an_error_answer() -> None:
    udp, transport, ingest = server()
    ingest.publisher.fail = BadInput("invalid field: text: bad")
    run(udp, b"RECEIVE:1;id:goip1;password:pw-1;srcnum:VK;msg:x", b"RECEIVE:2;id:goip1;password:pw-1;srcnum:;msg:x")
    assert transport.sent == [
        b"RECEIVE 1 ERROR invalid field: text: bad\n",
        b"RECEIVE 2 ERROR invalid field: srcnum: must not be empty\n",
    ]


def test_wrong_password_unknown_id_and_garbage_get_nothing() -> None:
    udp, transport, _ingest = server()
    run(
        udp,
        b"req:1;id:goip1;pass:pw-2;num:1;",
        b"req:1;id:goip9;pass:pw-1;num:1;",
        b"RECEIVE:1;id:goip1;password:;srcnum:VK;msg:x",
        b"\xff\x00garbage",
    )
    assert transport.sent == []


def test_keepalive_answered_and_its_num_serves_a_line_no_map_knows() -> None:
    udp, transport, ingest = server()
    run(udp, b"RECEIVE:1;id:goip2;password:pw-2;srcnum:VK;msg:early")
    assert transport.sent == []  # bank-b is unknown and no keepalive said its number yet
    run(udp, b"req:4;id:goip2;pass:pw-2;num:+447700900555;signal:20;imei:1234;")
    assert transport.sent == [b"reg:4;status:200;"]
    assert ingest.publisher.redis.store["ingest:goip:bank-b:"]["imei"] == b"1234"
    run(udp, b"RECEIVE:1;id:goip2;password:pw-2;srcnum:VK;msg:early")
    assert transport.sent[-1] == b"RECEIVE 1 OK\n" and ingest.publisher.accepted[-1][1] == 447700900555


def test_status_events_are_acknowledged() -> None:
    udp, transport, _ingest = server()
    run(udp, b"REMAIN:9;id:goip1;password:pw-1;gsm_remain_time:100", b"HANGUP:3;id:goip1;password:pw-1;num:1")
    assert transport.sent == [b"REMAIN 9 OK\n", b"HANGUP 3 OK\n"]


def test_datagrams_beyond_the_pending_cap_are_dropped_unanswered() -> None:
    udp, transport, ingest = server(INGEST_GOIP_MAX_PENDING="2")
    ingest.publisher.gate = asyncio.Event()

    async def go() -> None:
        assert ingest.publisher.gate is not None
        for n in range(5):
            udp.datagram_received(f"RECEIVE:{n};id:goip1;password:pw-1;srcnum:VK;msg:m{n}".encode(), PEER)
        assert len(udp._tasks) == 2
        ingest.publisher.gate.set()
        await udp.aclose()

    asyncio.run(go())
    assert transport.sent == [b"RECEIVE 0 OK\n", b"RECEIVE 1 OK\n"]
