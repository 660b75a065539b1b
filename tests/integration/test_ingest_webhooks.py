"""sms-ingest as a real process against real Kafka and Redis: every source in, exactly one record out."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from grizzly_common.events import InboundMessage, Topics, decode_inbound
from grizzly_testkit.infra import ServiceProcess

pytestmark = pytest.mark.single_pass  # each source's payloads, not how Redis and Kafka run

TOKEN = "test-ingest-token-0001"
ANDROID_SECRET = "android-signing-key-0001"
GOIP_TOKEN = "test-goip-token-0001"  # INGEST_GOIP_TOKEN of the fixtures' stack
GOIP_AUTH = {"Authorization": f"Bearer {GOIP_TOKEN}"}
NUMBER = 447700900123


# reading the topic back -------------------------------------------------------------------------------------
async def _read_all(bootstrap: str, topic: str) -> list[InboundMessage]:
    """Every record on the topic right now (the ingest answers only after the ack, so nothing is in flight)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[InboundMessage] = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(decode_inbound(item.value) for item in items)
        return records
    finally:
        await consumer.stop()


def read_topic(env: dict[str, str]) -> list[InboundMessage]:
    return asyncio.run(_read_all(env["KAFKA_BOOTSTRAP"], Topics(env["KAFKA_TOPIC_PREFIX"]).inbound))


def wait_records(env: dict[str, str], count: int, timeout_s: float = 30.0) -> list[InboundMessage]:
    deadline = time.monotonic() + timeout_s
    while True:
        records = read_topic(env)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.3)


# helpers ------------------------------------------------------------------------------------------------
Start = Callable[..., ServiceProcess]


def url(env: dict[str, str], path: str) -> str:
    return f"http://127.0.0.1:{env['INGEST_PORT']}{path}"


def post_sms(env: dict[str, str], body: Any, token: str = TOKEN, path: str = "/v1/sms") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.post(url(env, path), content=content, headers=headers, timeout=30)


def android_post(
    env: dict[str, str], event: dict[str, Any], secret: str = ANDROID_SECRET, skew_s: int = 0
) -> httpx.Response:
    body = json.dumps(event).encode()
    stamp = str(int(time.time()) - skew_s)
    signature = hmac.new(secret.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    headers = {"X-Signature": signature, "X-Timestamp": stamp, "Content-Type": "application/json"}
    return httpx.post(url(env, "/v1/android"), content=body, headers=headers, timeout=30)


def android_event(message: str, sim: int | None = 1, message_id: str = "m-1") -> dict[str, Any]:
    return {
        "deviceId": "pixel-7",
        "event": "sms:received",
        "id": "evt-1",
        "webhookId": "wh-1",
        "payload": {
            "messageId": message_id,
            "message": message,
            "phoneNumber": "+15551234567",
            "simNumber": sim,
            "receivedAt": "2025-06-07T11:41:31.000+07:00",
        },
    }


def goip_push(rows: list[list[Any]]) -> dict[str, Any]:
    return {"type": "recv-sms", "sms_num": len(rows), "sms": rows}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def ingest(start_service: Start, stack_env: dict[str, str]) -> dict[str, str]:
    start_service(
        "ingest",
        INGEST_ANDROID_SECRET=ANDROID_SECRET,
        INGEST_ANDROID_NUMBERS="pixel-7:1=447700900201,pixel-7:2=447700900202",
        INGEST_DEVICE_NUMBERS="goip-a:1A=447700900301,goip-a:2A=447700900302",
        INGEST_MAX_BODY_BYTES="65536",
        INGEST_POOL_URL="",  # static maps only
    )
    return stack_env


def test_unknown_device_while_pool_down_is_503_so_the_source_retries(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("ingest")  # INGEST_POOL_URL points at a pool that is not running
    reply = post_sms(stack_env, {"device": "goip-z", "slot": "1", "from": "Uber", "text": "1"})
    assert reply.status_code == 503 and reply.json()["status"] == "ERROR"
    assert read_topic(stack_env) == []


# generic endpoint -------------------------------------------------------------------------------------------
def test_generic_sms_published_once_with_number_and_text(ingest: dict[str, str]) -> None:
    reply = post_sms(ingest, {"number": "+447700900123", "from": "Telegram", "text": "Telegram code: 51920"})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["status"] == "SUCCESS" and answer["duplicate"] is False and answer["smsId"] > 0
    records = read_topic(ingest)
    assert len(records) == 1
    record = records[0]
    assert (record.sms_id, record.number, record.phone_from) == (answer["smsId"], NUMBER, "Telegram")
    assert record.text == "Telegram code: 51920" and record.kind == "sms" and record.source == "generic"


def test_retried_source_gets_same_sms_id_and_nothing_published_twice(ingest: dict[str, str]) -> None:
    body = {"number": NUMBER, "from": "WhatsApp", "text": "code 1234", "received_at": 1735725600000}
    first = post_sms(ingest, body).json()
    second = post_sms(ingest, body).json()
    assert second["smsId"] == first["smsId"] and second["duplicate"] is True
    other = post_sms(ingest, dict(body, received_at=1735725700000)).json()  # same text, another SMS
    assert other["smsId"] != first["smsId"] and other["duplicate"] is False
    assert [r.sms_id for r in read_topic(ingest)].count(first["smsId"]) == 1
    assert len(read_topic(ingest)) == 2


def test_unicode_text_and_ucs2_hex_arrive_as_unicode(ingest: dict[str, str]) -> None:
    texts = ["Код: 4821 😀", "رمز التحقق 9931", "验证码 5521"]
    for index, text in enumerate(texts):
        encoding = "ucs2" if index % 2 == 0 else "text"
        payload = text.encode("utf-16-be").hex().upper() if encoding == "ucs2" else text
        reply = post_sms(ingest, {"number": NUMBER, "from": "Bank", "text": payload, "encoding": encoding})
        assert reply.status_code == 200, reply.text
    assert sorted(r.text for r in read_topic(ingest)) == sorted(texts)


def test_device_and_slot_resolved_from_static_map(ingest: dict[str, str]) -> None:
    assert post_sms(ingest, {"device": "goip-a", "slot": "2A", "from": "Uber", "text": "1"}).status_code == 200
    unknown = post_sms(ingest, {"device": "goip-z", "slot": "9", "from": "Uber", "text": "2"})
    assert unknown.status_code == 422 and unknown.json()["status"] == "ERROR"
    records = read_topic(ingest)
    assert [(r.number, r.device, r.slot) for r in records] == [(447700900302, "goip-a", "2A")]


def test_multipart_out_of_order_published_once_reassembled(ingest: dict[str, str]) -> None:
    parts = {1: "Your verification ", 2: "code is ", 3: "77-31. Do not share."}
    answers = []
    for seq in (3, 1, 3, 2):  # out of order, one part retried
        body = {"number": NUMBER, "from": "Google", "text": parts[seq], "part": {"ref": 42, "total": 3, "seq": seq}}
        reply = post_sms(ingest, body)
        assert reply.status_code == 200, reply.text
        answers.append(reply.json())
    assert answers[0]["pending"] is True and answers[-1]["pending"] is False
    assert len({a["smsId"] for a in answers}) == 1
    again = post_sms(
        ingest, {"number": NUMBER, "from": "Google", "text": parts[2], "part": {"ref": 42, "total": 3, "seq": 2}}
    )
    assert again.json()["duplicate"] is True and again.json()["smsId"] == answers[0]["smsId"]
    records = read_topic(ingest)
    assert len(records) == 1
    assert records[0].text == "Your verification code is 77-31. Do not share." and records[0].parts == 3
    assert records[0].sms_id == answers[0]["smsId"]


def test_incomplete_multipart_published_after_timeout_with_marker(
    start_service: Start, stack_env: dict[str, str]
) -> None:
    start_service("ingest", INGEST_MULTIPART_TIMEOUT_S="1", INGEST_SWEEP_INTERVAL_S="0.2")
    for seq, text in ((1, "first "), (3, " third")):
        body = {"number": NUMBER, "from": "Apple", "text": text, "part": {"ref": "a7", "total": 3, "seq": seq}}
        assert post_sms(stack_env, body).json()["pending"] is True
    records = wait_records(stack_env, 1)
    assert len(records) == 1
    assert records[0].text == "first [part 2 missing] third" and records[0].parts == 2
    time.sleep(0.5)  # the sweeper runs again: still exactly one record
    assert len(read_topic(stack_env)) == 1


def test_call_and_call_record_published_with_kind(ingest: dict[str, str]) -> None:
    call = post_sms(ingest, {"number": NUMBER, "from": "447781234567", "kind": "call"}, path="/v1/call")
    assert call.status_code == 200, call.text
    audio = base64.b64encode(b"RIFF....WAVEfmt ").decode()
    record = {"number": NUMBER, "from": "447781234567", "kind": "call_record", "recording_b64": audio, "text": "4 1 7"}
    assert post_sms(ingest, record, path="/v1/call").status_code == 200
    records = sorted(read_topic(ingest), key=lambda r: r.kind)
    assert [r.kind for r in records] == ["call", "call_record"]
    assert records[1].recording_b64 == audio and records[1].text == "4 1 7" and records[1].number == NUMBER


# android ---------------------------------------------------------------------------------------------------
def test_android_sms_received_resolved_by_device_and_sim(ingest: dict[str, str]) -> None:
    reply = android_post(ingest, android_event("Ваш код 5531"))
    assert reply.status_code == 200, reply.text
    again = android_post(ingest, android_event("Ваш код 5531"))
    assert again.json()["smsId"] == reply.json()["smsId"] and again.json()["duplicate"] is True
    ping = android_post(ingest, {"deviceId": "pixel-7", "event": "system:ping", "payload": {"health": {}}})
    assert ping.status_code == 200 and ping.json()["ignored"] is True
    records = read_topic(ingest)
    assert len(records) == 1
    assert (records[0].number, records[0].phone_from, records[0].text) == (447700900201, "15551234567", "Ваш код 5531")
    assert records[0].source == "android" and records[0].slot == "1"


# goip ----------------------------------------------------------------------------------------------------
def test_goip_push_skips_reports_parses_headers_and_resolves_port(ingest: dict[str, str]) -> None:
    headered = (
        'Sender: +15550001111\nReceiver: "2A" 447700900999\nSMSC: +4477000000\nSCTS: 250101100000\nSlot: "2A"\n'
        "\nCode 8080"
    )
    rows = [
        [0, "1A", 1735725600, "+15550002222", "", b64("Hello 😀 from port 1A")],
        [1, "1A", 1735725601, "+15550002222", "", b64("delivery report")],
        [0, "2A", 1735725602, "+15550001111", "", b64(headered)],
    ]
    basic = httpx.BasicAuth("goip-a", GOIP_TOKEN)  # a gateway given the URL http://goip-a:<token>@host/...
    reply = httpx.post(url(ingest, "/v1/goip/goip-a"), json=goip_push(rows), auth=basic, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["skipped"] == 1 and len(reply.json()["accepted"]) == 2
    retry = httpx.post(url(ingest, "/v1/goip/goip-a"), json=goip_push(rows), headers=GOIP_AUTH)
    assert all(a["duplicate"] for a in retry.json()["accepted"])
    status = httpx.post(url(ingest, "/v1/goip/goip-a"), json={"type": "port-status", "port": "1A"}, headers=GOIP_AUTH)
    assert status.status_code == 200
    records = sorted(read_topic(ingest), key=lambda r: r.slot)
    assert [(r.number, r.slot, r.phone_from, r.text) for r in records] == [
        (447700900301, "1A", "15550002222", "Hello 😀 from port 1A"),
        (447700900999, "2A", "15550001111", "Code 8080"),
    ]


# bad input ---------------------------------------------------------------------------------------------------
def test_bad_input_to_every_endpoint_is_clear_4xx_and_publishes_nothing(ingest: dict[str, str]) -> None:
    good = {"number": NUMBER, "from": "X", "text": "t"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases: list[tuple[httpx.Response, int]] = [
        (post_sms(ingest, good, token="wrong-token-000000"), 401),
        (httpx.post(url(ingest, "/v1/sms"), json=good), 401),
        (post_sms(ingest, b"{not json"), 400),
        (post_sms(ingest, b""), 400),
        (post_sms(ingest, {"number": "12ab", "from": "X", "text": "t"}), 400),
        (post_sms(ingest, {"number": NUMBER, "from": "X", "text": 5}), 400),
        (post_sms(ingest, {"number": True, "from": "X", "text": "t"}), 400),
        (post_sms(ingest, {"from": "X", "text": "t"}), 400),
        (post_sms(ingest, dict(good, received_at="yesterday")), 400),
        (post_sms(ingest, dict(good, part={"ref": 1, "total": 2, "seq": 3})), 400),
        (post_sms(ingest, dict(good, text="zz", encoding="ucs2")), 400),
        (post_sms(ingest, {"number": NUMBER, "from": "X", "text": "x" * 70000}), 413),
        (post_sms(ingest, {"number": NUMBER, "from": "X", "kind": "call_record"}, path="/v1/call"), 400),
        (post_sms(ingest, {"number": NUMBER, "from": "X", "kind": "sms"}, path="/v1/call"), 400),
        (android_post(ingest, android_event("x"), secret="not-the-right-secret"), 401),
        (android_post(ingest, android_event("x"), skew_s=3600), 401),
        (httpx.post(url(ingest, "/v1/android"), json=android_event("x")), 401),
        (httpx.post(url(ingest, "/v1/goip/goip-a"), json=goip_push([]), headers=auth), 401),  # not its secret
        (httpx.post(url(ingest, f"/v1/goip/goip-a?token={GOIP_TOKEN}"), json=goip_push([])), 401),  # query string
        (httpx.post(url(ingest, "/v1/goip/goip-a"), content=b"[1,2", headers=GOIP_AUTH), 400),
        (httpx.post(url(ingest, "/v1/goip/goip-a"), json=goip_push([[0, "1A", 1, "s"]]), headers=GOIP_AUTH), 400),
        (
            httpx.post(
                url(ingest, "/v1/goip/goip-a"), json=goip_push([[0, "1A", 1, "s", "", "%%%"]]), headers=GOIP_AUTH
            ),
            400,
        ),
    ]
    chunked = httpx.post(  # no Content-Length: the limit is enforced while reading
        url(ingest, "/v1/sms"), content=iter([b'{"text":"', b"x" * 40000, b"x" * 40000]), headers=auth
    )
    cases.append((chunked, 413))
    bad_android = android_event("x")
    bad_android["payload"]["message"] = 12
    cases.append((android_post(ingest, bad_android), 400))
    for index, (reply, status) in enumerate(cases):
        assert reply.status_code == status, (index, reply.status_code, reply.text)
        assert reply.json()["status"] == "ERROR" and reply.json()["error"], index
    assert read_topic(ingest) == []
    metrics = httpx.get(url(ingest, "/metrics")).text
    assert 'ingest_rejected_total{reason="bad_signature",source="android"}' in metrics
    assert 'ingest_rejected_total{reason="too_large",source="generic"}' in metrics


# the file CLI -------------------------------------------------------------------------------------------------
def _cli(env: dict[str, str], args: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    run_env = {"PATH": "/usr/bin:/bin", "INGEST_URL": url(env, ""), "INGEST_TOKEN": TOKEN, **extra}
    return subprocess.run(
        [sys.executable, "-m", "grizzly_ingest.cli", *args], env=run_env, capture_output=True, text=True, timeout=60
    )


def test_file_cli_smstools_and_gammu_against_running_ingest(ingest: dict[str, str], tmp_path: Path) -> None:
    spool = tmp_path / "GSM1.abc123"
    spool.write_bytes(
        b"From: 447781234567\nFrom_SMSC: 447785016005\nSent: 25-01-01 10:00:00\nReceived: 25-01-01 10:00:05\n"
        b"Subject: GSM1\nModem: GSM1\nIMSI: 234150000000000\nAlphabet: UCS2\nLength: 9\n\n"
        + "Код 5531 😀".encode("utf-16-be")
    )
    result = _cli(ingest, ["RECEIVED", str(spool), "--number", "447700900123"], {})
    assert result.returncode == 0, result.stderr
    assert _cli(ingest, ["SENT", str(spool)], {}).returncode == 0  # other events: ignored
    gammu_env = {
        "SMS_MESSAGES": "2",
        "SMS_1_NUMBER": "+4915112345678",
        "SMS_1_TEXT": "part one ",
        "SMS_2_TEXT": "part two",
        "DECODED_PARTS": "0",
        "PHONE_ID": "goip-a",
    }
    assert _cli(ingest, ["--slot", "1A"], gammu_env).returncode == 0
    rejected = _cli(ingest, ["RECEIVED", str(spool), "--number", "447700900123"], {"INGEST_TOKEN": "wrong-token-0000"})
    assert rejected.returncode != 0
    records = sorted(read_topic(ingest), key=lambda r: r.number)
    assert [(r.number, r.phone_from, r.text) for r in records] == [
        (447700900123, "447781234567", "Код 5531 😀"),
        (447700900301, "4915112345678", "part one part two"),
    ]


def test_file_cli_fails_when_ingest_unreachable(tmp_path: Path) -> None:
    spool = tmp_path / "msg"
    spool.write_bytes(b"From: 447781234567\n\nhello")
    env = {"PATH": "/usr/bin:/bin", "INGEST_URL": "http://127.0.0.1:9", "INGEST_TOKEN": TOKEN}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grizzly_ingest.cli",
            "RECEIVED",
            str(spool),
            "--number",
            "447700900123",
            "--retries",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 75


# resolution through the real pool ---------------------------------------------------------------------------
def test_goip_and_android_slots_resolved_through_the_pool(start_service: Start, stack_env: dict[str, str]) -> None:
    start_service("pool")
    admin = f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}/admin/numbers"
    numbers = [
        {"number": 447700900501, "country": "uk", "operator": "ee", "device": "ejoin-7", "slot": "3.01"},
        {"number": 447700900502, "country": "uk", "operator": "ee", "device": "pixel-9", "slot": "2"},
    ]
    headers = {"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"}
    assert httpx.post(admin, json={"numbers": numbers}, headers=headers, timeout=30).status_code == 200
    start_service("ingest", INGEST_ANDROID_SECRET=ANDROID_SECRET)
    rows = [[0, "3.01", 1735725600, "Telegram", "", b64("Code 11")], [0, "9.01", 1735725600, "X", "", b64("?")]]
    unknown = httpx.post(url(stack_env, "/v1/goip/ejoin-7"), json=goip_push(rows), headers=GOIP_AUTH, timeout=30)
    assert unknown.status_code == 422  # port 9.01 is not in the pool: nothing of this push is published
    assert read_topic(stack_env) == []
    reply = httpx.post(url(stack_env, "/v1/goip/ejoin-7"), json=goip_push(rows[:1]), headers=GOIP_AUTH, timeout=30)
    assert reply.status_code == 200, reply.text
    event = android_event("Code 22", sim=2)
    event["deviceId"] = "pixel-9"
    assert android_post(stack_env, event).status_code == 200
    records = sorted(read_topic(stack_env), key=lambda r: r.number)
    assert [(r.number, r.text) for r in records] == [(447700900501, "Code 11"), (447700900502, "Code 22")]
