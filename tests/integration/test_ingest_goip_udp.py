"""sms-ingest's GoIP SMS-server protocol (UDP) as a real process against real Kafka and Redis, driven by a client
that behaves like a GoIP line: keepalives, RECEIVE resent until answered, wrong passwords, garbage."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from grizzly_testkit.infra import LocalKafka, ServiceProcess, free_port

from tests.integration.fake_grizzly import FakePool
from tests.integration.test_ingest_webhooks import GOIP_AUTH, TOKEN, android_post, read_topic, url, wait_records

Start = Callable[..., ServiceProcess]
PASSWORD = "goip-line-pass-01"
NUMBER = 447700900401
LINES = f"goip1:{PASSWORD}:goip-bank:1,goip2:{PASSWORD}:goip-bank:2,goip3:{PASSWORD}:goip-other:1"
KEEPALIVE = (
    "req:{n};id:{id};pass:{pw};num:{num};signal:23;gsm_status:LOGIN;voip_status:LOGOUT;voip_state:IDLE;"
    "remain_time:-1;imei:867495020000001;imsi:234150000000001;iccid:8944110000000000001;pro:EE;idle:5;"
    "disable_status:0;SMS_LOGIN:N;SMS_NO:0;CELLINFO:LAC:1F2,CELL ID:3A4B;CGATT:Y;"
)


class Goip:
    """One GoIP line's UDP socket: what it sends, and the answers it waits for."""

    def __init__(self, port: int, line: str = "goip1", password: str = PASSWORD) -> None:
        self.address = ("127.0.0.1", port)
        self.line = line
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.address)

    def answers(self, count: int = 1, timeout_s: float = 10.0) -> list[bytes]:
        """Up to `count` answers, each within timeout_s of the previous."""
        got: list[bytes] = []
        self.sock.settimeout(timeout_s)
        while len(got) < count:
            try:
                got.append(self.sock.recv(65536))
            except TimeoutError:
                break
        return got

    def keepalive(self, n: int, num: str = "+447700900999") -> bytes:
        return KEEPALIVE.format(n=n, id=self.line, pw=self.password, num=num).encode()

    def receive(self, n: int, sender: str, text: str) -> bytes:
        return f"RECEIVE:{n};id:{self.line};password:{self.password};srcnum:{sender};msg:{text}".encode()


@pytest.fixture
def goip_port() -> int:
    return free_port()  # a free TCP port number; the UDP one of the same number is free in practice


@pytest.fixture
def goip_env(start_service: Start, stack_env: dict[str, str], goip_port: int) -> dict[str, str]:
    start_service(
        "ingest",
        INGEST_GOIP_UDP_PORT=str(goip_port),
        INGEST_GOIP_LINES=LINES,
        INGEST_DEVICE_NUMBERS=f"goip-bank:1={NUMBER}",
        INGEST_POOL_URL="",  # static maps, then the keepalive's num:
    )
    return stack_env


@pytest.fixture
def goip(goip_env: dict[str, str], goip_port: int) -> Iterator[Goip]:
    client = Goip(goip_port)
    yield client
    client.close()


def metric(env: dict[str, str], result: str) -> float:
    text = httpx.get(url(env, "/metrics"), timeout=10).text
    found = re.search(rf'^ingest_goip_datagrams_total\{{result="{result}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_keepalive_is_answered_reg_and_its_sim_data_is_kept_in_ingest_keys(
    goip: Goip, goip_env: dict[str, str]
) -> None:
    goip.send(goip.keepalive(7))
    assert goip.answers() == [b"reg:7;status:200;"]
    stored = redis.Redis.from_url(goip_env["REDIS_URL"]).hgetall("ingest:goip:goip-bank:1")
    assert stored[b"num"] == b"+447700900999" and stored[b"imei"] == b"867495020000001"
    assert stored[b"imsi"] == b"234150000000001" and stored[b"iccid"] == b"8944110000000000001"
    assert stored[b"signal"] == b"23" and stored[b"id"] == b"goip1"
    assert 0 < redis.Redis.from_url(goip_env["REDIS_URL"]).ttl("ingest:goip:goip-bank:1") <= 600
    reply = httpx.get(url(goip_env, "/v1/goip/lines"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    lines = {line["id"]: line for line in reply.json()["lines"]}
    assert lines["goip1"]["imei"] == "867495020000001" and lines["goip1"]["device"] == "goip-bank"
    assert "password" not in lines["goip1"] and PASSWORD not in reply.text
    assert lines["goip2"] == {"id": "goip2", "device": "goip-bank", "slot": "2"}  # no keepalive yet
    assert httpx.get(url(goip_env, "/v1/goip/lines"), timeout=10).status_code == 401


def test_receive_is_acknowledged_once_its_record_is_on_kafka(goip: Goip, goip_env: dict[str, str]) -> None:
    text = "Ваш код: 51920;\nне сообщайте его 😀"
    goip.send(goip.receive(1734804704, "+15551234567", text))
    assert goip.answers() == [b"RECEIVE 1734804704 OK\n"]
    records = read_topic(goip_env)  # read right after the answer: already there
    assert len(records) == 1
    record = records[0]
    assert record.number == NUMBER and record.phone_from == "15551234567" and record.text == text
    assert record.source == "goip" and record.device == "goip-bank" and record.slot == "1"


def test_receive_resent_three_times_is_one_record_and_three_acks(goip: Goip, goip_env: dict[str, str]) -> None:
    datagram = goip.receive(42, "Telegram", "Telegram code: 11111")
    for _ in range(3):  # without waiting: the repeats arrive while the first is being published
        goip.send(datagram)
    assert goip.answers(3) == [b"RECEIVE 42 OK\n"] * 3
    goip.send(datagram)  # and once more after it was acknowledged
    assert goip.answers() == [b"RECEIVE 42 OK\n"]
    records = wait_records(goip_env, 2, timeout_s=2)
    assert [r.text for r in records] == ["Telegram code: 11111"]
    assert metric(goip_env, "duplicate") >= 1


def test_wrong_password_and_unknown_id_get_no_answer(goip_env: dict[str, str], goip_port: int) -> None:
    wrong = Goip(goip_port, password="not-the-password")
    unknown = Goip(goip_port, line="goip-unknown")
    try:
        for client in (wrong, unknown):
            client.send(client.keepalive(1))
            client.send(client.receive(5, "VK", "VK code 1"))
            assert client.answers(1, timeout_s=1.5) == []
    finally:
        wrong.close()
        unknown.close()
    assert read_topic(goip_env) == []
    assert metric(goip_env, "unauthorized") == 4


def test_garbage_is_counted_and_dropped_and_the_server_still_answers(goip: Goip, goip_env: dict[str, str]) -> None:
    garbage = [
        b"",
        b"\x00\xff" * 300,
        b"hello",
        b"RECEIVE:1;id:goip1;password:x",
        b"req:;id:goip1",
        b"::::",
        b"x" * 9000,
    ]
    for datagram in garbage:
        if datagram:  # an empty datagram is legal UDP: it must not stop anything either
            goip.send(datagram)
        else:
            goip.sock.sendto(b"", goip.address)
    goip.send(goip.keepalive(3))
    assert goip.answers() == [b"reg:3;status:200;"]
    assert metric(goip_env, "malformed") >= len(garbage) - 1
    assert read_topic(goip_env) == []


def test_a_field_out_of_bounds_is_answered_error_so_the_device_stops(goip: Goip, goip_env: dict[str, str]) -> None:
    goip.send(goip.receive(9, "S" * 100, "hi"))
    [answer] = goip.answers()
    assert answer.startswith(b"RECEIVE 9 ERROR invalid field: srcnum") and answer.endswith(b"\n")
    assert read_topic(goip_env) == []


def test_the_keepalive_num_is_the_number_when_no_map_knows_the_line(goip_env: dict[str, str], goip_port: int) -> None:
    client = Goip(goip_port, line="goip3")  # goip-other:1 is in no map and there is no pool
    try:
        client.send(client.receive(1, "VK", "before any keepalive"))
        assert client.answers(1, timeout_s=2) == []  # unknown number: not acknowledged, the device resends
        client.send(client.keepalive(2, num="+447700900555"))
        assert client.answers() == [b"reg:2;status:200;"]
        client.send(client.receive(1, "VK", "before any keepalive"))
        assert client.answers() == [b"RECEIVE 1 OK\n"]
    finally:
        client.close()
    [record] = read_topic(goip_env)
    assert record.number == 447700900555 and record.device == "goip-other"


def test_status_events_are_acknowledged_and_publish_nothing(goip: Goip, goip_env: dict[str, str]) -> None:
    goip.send(f"DELIVER:5;id:goip1;password:{PASSWORD};sms_no:3;state:0;num:447700900123".encode())
    goip.send(f"STATE:6;id:goip1;password:{PASSWORD};gsm_remain_state:IDLE".encode())
    assert sorted(goip.answers(2)) == [b"DELIVER 5 OK\n", b"STATE 6 OK\n"]
    assert read_topic(goip_env) == []


# heartbeats -------------------------------------------------------------------------------------------------
def test_heartbeats_reach_the_pool_coalesced(
    start_service: Start, stack_env: dict[str, str], goip_port: int, fake_pool: FakePool
) -> None:
    start_service(
        "ingest",
        INGEST_GOIP_UDP_PORT=str(goip_port),
        INGEST_GOIP_LINES=LINES,
        INGEST_POOL_URL=fake_pool.url,
        INGEST_SEEN_INTERVAL_S="1",
        INGEST_ANDROID_SECRET="android-signing-key-0001",
    )
    lines = [Goip(goip_port, line=name) for name in ("goip1", "goip2", "goip3")]
    try:
        for n in range(20):  # many keepalives from the lines of two devices, within one flush interval
            for client in lines:
                client.send(client.keepalive(n))
        for client in lines:
            assert len(client.answers(20)) == 20
    finally:
        for client in lines:
            client.close()
    ping = {"deviceId": "pixel-7", "event": "system:ping", "id": "e1", "webhookId": "w1", "payload": {"health": {}}}
    assert android_post(stack_env, ping).json()["ignored"] is True
    ejoin = {"type": "port-status", "port": "1.01", "status": 3}
    reply = httpx.post(url(stack_env, "/v1/goip/ejoin-1"), json=ejoin, headers=GOIP_AUTH)  # its own secret
    assert reply.status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if {"goip-bank", "goip-other", "pixel-7", "ejoin-1"} <= {d for call in fake_pool.seen for d in call}:
            break
        time.sleep(0.2)
    seen = [d for call in fake_pool.seen for d in call]
    assert {"goip-bank", "goip-other", "pixel-7", "ejoin-1"} <= set(seen)
    assert len(seen) <= 12, fake_pool.seen  # 60 keepalives, 2 devices: one entry per device per flush


# Kafka down ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kafka_down_no_ack_then_the_resent_receive_is_acked_and_published_once(
    start_service: Start, stack_env: dict[str, str], goip_port: int, own_broker: LocalKafka
) -> None:
    start_service(
        "ingest",
        KAFKA_BOOTSTRAP=own_broker.bootstrap,
        INGEST_PUBLISH_TIMEOUT_S="2",
        INGEST_REQUEST_DEADLINE_S="3",
        INGEST_GOIP_UDP_PORT=str(goip_port),
        INGEST_GOIP_LINES=LINES,
        INGEST_DEVICE_NUMBERS=f"goip-bank:1={NUMBER}",
        INGEST_POOL_URL="",
    )
    env = dict(stack_env, KAFKA_BOOTSTRAP=own_broker.bootstrap)
    client = Goip(goip_port)
    datagram = client.receive(77, "WhatsApp", "WhatsApp code 222-333")
    try:
        own_broker.stop()
        client.send(datagram)
        assert client.answers(1, timeout_s=6) == []  # not on Kafka: no answer, the GoIP keeps it and resends
        own_broker.start()
        deadline = time.monotonic() + 90
        answers: list[bytes] = []
        while not answers and time.monotonic() < deadline:  # the GoIP's resends
            client.send(datagram)
            answers = client.answers(1, timeout_s=4)
        assert answers == [b"RECEIVE 77 OK\n"]
    finally:
        client.close()
    time.sleep(1)  # a send that outlived its unanswered datagram lands before we count
    assert [r.text for r in read_topic(env)] == ["WhatsApp code 222-333"]


# heartbeats against the real pool ------------------------------------------------------------------------------
def test_a_keepalive_or_ping_makes_a_dead_device_count_again_in_the_real_pool(
    start_service: Start, stack_env: dict[str, str], goip_port: int
) -> None:
    start_service("pool", POOL_DEVICE_TIMEOUT_S="2")
    admin_url = f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}"
    admin_headers = {"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"}
    rows = ["number,country,operator,device,slot,flashcall"]
    rows += ["79000000001,ru,mts,goip-bank,1,0", "79000000002,ru,mts,goip-bank,2,0", "79000000003,ru,mts,pixel-7,1,0"]
    imported = httpx.post(
        f"{admin_url}/admin/import",
        content="\n".join(rows) + "\n",
        headers={**admin_headers, "content-type": "text/csv"},
        timeout=60,
    )
    assert imported.json()["added"] == 3
    start_service(
        "ingest",
        INGEST_GOIP_UDP_PORT=str(goip_port),
        INGEST_GOIP_LINES=LINES,
        INGEST_SEEN_INTERVAL_S="0.3",
        INGEST_ANDROID_SECRET="android-signing-key-0001",
    )
    pool_url = f"http://127.0.0.1:{stack_env['POOL_PORT']}"

    def tg() -> int:
        internal = {"X-Internal-Token": stack_env["POOL_API_TOKEN"]}
        reply = httpx.post(f"{pool_url}/v1/services", json={"upstream": "grizzly"}, headers=internal, timeout=10).json()
        return int(reply["countryList"][0]["operatorMap"]["any"]["tg"]) if reply["countryList"] else 0

    def until(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.1)
        return condition()

    ping = {"deviceId": "pixel-7", "event": "system:ping", "id": "e1", "webhookId": "w1", "payload": {"health": {}}}
    client = Goip(goip_port, line="goip2")
    try:
        client.send(client.keepalive(1))
        assert client.answers() == [b"reg:1;status:200;"]
        assert android_post(stack_env, ping).status_code == 200
        assert tg() == 3
        # both devices fall silent: the pool counts neither once the timeout passed
        assert until(lambda: tg() == 0), tg()
        client.send(client.keepalive(2))  # the GoIP's next keepalive: goip-bank's two numbers count again
        assert client.answers() == [b"reg:2;status:200;"]
        assert until(lambda: tg() == 2, timeout_s=5), tg()
        assert android_post(stack_env, ping).status_code == 200
        assert until(lambda: tg() == 3, timeout_s=5), tg()
        # and the pool's /v1/resolve names the number of the line's (device, slot)
        client.send(client.receive(5, "Telegram", "Telegram code 90210"))
        assert client.answers() == [b"RECEIVE 5 OK\n"]
    finally:
        client.close()
    [record] = read_topic(stack_env)
    assert record.number == 79000000002 and record.slot == "2"
    stats = httpx.get(f"{admin_url}/admin/stats", headers=admin_headers, timeout=10).json()["devices"]
    assert stats["goip-bank"]["alive"] is True and stats["pixel-7"]["alive"] is True
