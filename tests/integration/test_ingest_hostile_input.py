"""Hostile input never gets past the ingest: every source answers it with a 4xx (never a 5xx), nothing invalid
reaches Kafka, and a normal SMS right after is published (real Kafka and Redis)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from grizzly_common.events import MAX_LABEL_CHARS, MAX_SENDER_CHARS, MAX_TEXT_CHARS, Topics
from grizzly_ingest.app import create_app
from grizzly_ingest.settings import Settings
from grizzly_testkit.infra import Broker, RedisLike
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.integration.test_ingest_webhooks import GOIP_TOKEN, TOKEN, Start, _read_all, post_sms, read_topic, url

SECRET = "android-signing-key-0002"
NUMBER = 447700900123
DEEP = "__DEEP__"

# values that broke (or could break) a later stage: out of range, non-finite, control characters, too long
HOSTILE: list[Any] = [
    1e300,
    -1,
    -1e300,
    10**20,
    2**63,
    10**400,
    0,
    True,
    None,
    "",
    " ",
    "1e300",
    "NaN",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "\x00",
    "a\nb",
    "\x1b[2J",
    "\u202e",
    "\ud7ff\ue000",
    "x" * (MAX_SENDER_CHARS + 1),
    "d" * (MAX_LABEL_CHARS + 1),
    "t" * (MAX_TEXT_CHARS + 1),
    [],
    {},
    [[[[1]]]],
    {"a": {"b": {"c": None}}},
]

scalars = st.one_of(
    st.sampled_from(HOSTILE),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and Infinity become invalid JSON literals
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x20), max_size=5),
    st.just(DEEP),  # replaced by thousands of nested arrays
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def encode(body: Any, depth: int) -> bytes:
    text = json.dumps(body)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode()


def overridden(base: dict[str, Any], names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """The base payload with some of its fields (or new ones) replaced by hostile values."""
    keys = st.sampled_from(names) | st.text(max_size=8)
    return st.dictionaries(keys, values, min_size=1, max_size=4).map(lambda extra: {**base, **extra})


SMS = {"number": NUMBER, "from": "Telegram", "text": "code 1", "received_at": 1735725600000}
SMS_FIELDS = ["number", "from", "text", "received_at", "device", "slot", "id", "encoding", "part"]
CALL = {"number": NUMBER, "from": "447781234567", "kind": "call"}
CALL_FIELDS = ["number", "from", "kind", "text", "recording_b64", "recording_type", "received_at", "device", "slot"]
ANDROID_PAYLOAD = {"message": "code 2", "phoneNumber": "+6505551212", "simNumber": 1, "messageId": "m1"}
ANDROID_FIELDS = ["message", "phoneNumber", "simNumber", "receivedAt", "messageId"]
GOIP_ROW: list[Any] = [0, "1.01", 1735725600, "+15550002222", "", "aGk="]


def goip_rows() -> st.SearchStrategy[dict[str, Any]]:
    row = st.lists(values, min_size=6, max_size=7) | st.tuples(st.integers(0, 5), values).map(
        lambda change: [*GOIP_ROW[: change[0]], change[1], *GOIP_ROW[change[0] + 1 :]]
    )
    return st.lists(row, min_size=1, max_size=3).map(lambda rows: {"type": "recv-sms", "sms": rows})


requests = st.one_of(
    st.tuples(st.just("/v1/sms"), overridden(SMS, SMS_FIELDS)),
    st.tuples(st.just("/v1/call"), overridden(CALL, CALL_FIELDS)),
    st.tuples(
        st.just("/v1/android"),
        overridden(ANDROID_PAYLOAD, ANDROID_FIELDS).map(
            lambda payload: {"deviceId": "pixel-9", "event": "sms:received", "payload": payload}
        ),
    ),
    st.tuples(
        st.just("/v1/android"),
        overridden(
            {"deviceId": "pixel-9", "event": "sms:received", "payload": ANDROID_PAYLOAD},
            ["deviceId", "payload", "event"],
        ),
    ),
    st.tuples(st.just("/v1/goip/gw1"), goip_rows()),
    st.tuples(st.sampled_from(["/v1/sms", "/v1/call", "/v1/android", "/v1/goip/gw1"]), values),
)


def redis_state(client: redis.Redis) -> str:
    """A digest of every key and value in the database (expiry times aside)."""
    digest = hashlib.sha256()
    keys = sorted(client.scan_iter(count=1000))
    dumps = client.pipeline(transaction=False)
    for key in keys:
        dumps.dump(key)
    for key, value in zip(keys, dumps.execute(), strict=True):
        digest.update(key + b"\0" + (value or b"") + b"\0")
    return digest.hexdigest()


def headers(path: str, body: bytes) -> dict[str, str]:
    if path == "/v1/android":
        stamp = str(int(time.time()))
        signature = hmac.new(SECRET.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
        return {"X-Signature": signature, "X-Timestamp": stamp}
    return {"Authorization": f"Bearer {GOIP_TOKEN if path.startswith('/v1/goip/') else TOKEN}"}


@pytest.fixture(scope="module")
def in_process(redis_server: RedisLike, kafka_broker: Broker) -> Iterator[tuple[TestClient, Settings]]:
    """The ingest app in this process (its lifespan opens real Kafka and Redis clients), on its own topic."""
    prefix = f"h{uuid.uuid4().hex[:10]}-"
    config = Settings(
        port=0,
        host="127.0.0.1",
        redis_url=redis_server.url,
        kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=prefix,
        log_level="WARNING",
        token=TOKEN,
        android_secret=SECRET,
        goip_token=GOIP_TOKEN,
        device_numbers={("gw1", ""): NUMBER, ("pixel-9", ""): NUMBER},
        topic_partitions=1,
        redis_prefix=prefix,
    )
    with TestClient(create_app(config), raise_server_exceptions=True) as client:
        yield client, config


@pytest.mark.single_pass  # 4,000 generated requests: the parser's answers, not how Redis and Kafka run
def test_hostile_json_gets_a_4xx_never_a_5xx_and_nothing_invalid_is_published(
    in_process: tuple[TestClient, Settings], record_property: Callable[[str, object], None]
) -> None:
    client, config = in_process
    answered: dict[int, int] = {}
    store = redis.Redis.from_url(config.redis_url)
    baseline = [redis_state(store)]

    # with the partner URL's fuzz (test_partner_fuzz): over 10,000 cases a CI run
    @settings(max_examples=4000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(request=requests, depth=st.integers(min_value=1, max_value=20_000))
    def post(request: tuple[str, Any], depth: int) -> None:
        path, body = request
        raw = encode(body, depth)
        reply = client.post(path, content=raw, headers=headers(path, raw))
        answered[reply.status_code] = answered.get(reply.status_code, 0) + 1
        assert 200 <= reply.status_code < 500, (reply.status_code, reply.text, raw[:300])
        assert reply.json()["status"] == ("SUCCESS" if reply.status_code == 200 else "ERROR")
        if reply.status_code == 200:
            baseline[0] = redis_state(store)
        else:  # a refusal wrote nothing
            assert redis_state(store) == baseline[0], (reply.text, raw[:300])

    try:
        post()
    finally:
        store.close()
    for status, count in sorted(answered.items()):
        record_property(f"status_{status}", count)
    assert answered.get(400, 0) > 100, answered  # the strategies mostly produce refusals...
    # ...and every record that got through keeps the bounds the pusher decodes with (_read_all decodes each one)
    records = asyncio.run(_read_all(config.kafka_bootstrap, Topics(config.topic_prefix).inbound))
    record_property("records", len(records))
    assert len(records) <= answered.get(200, 0)


# the same against the real process, then a normal SMS ------------------------------------------------------------
BAD_SMS: list[dict[str, Any]] = [
    {**SMS, "received_at": 1e300},  # the measured failure
    {**SMS, "received_at": -1},
    {**SMS, "received_at": "9999-12-31T23:59:59Z"},
    {**SMS, "number": 10**30},
    {**SMS, "number": 12345},
    {**SMS, "from": "Tele\ngram"},
    {**SMS, "from": "x" * (MAX_SENDER_CHARS + 1)},
    {**SMS, "number": None, "device": "gw\x001"},
    {**SMS, "slot": "s" * (MAX_LABEL_CHARS + 1)},
    {**SMS, "text": "t" * (MAX_TEXT_CHARS + 1)},
    {**SMS, "part": {"ref": 1, "total": 2, "seq": 1}, "text": "t" * (MAX_TEXT_CHARS // 2 + 1)},
    {**SMS, "text": ["not", "text"]},
]


def test_hostile_payloads_get_400_and_a_normal_sms_right_after_is_published(
    start_service: Start, stack_env: dict[str, str], tmp_path: Path
) -> None:
    start_service("ingest", INGEST_POOL_URL="", INGEST_MAX_BODY_BYTES=str(1 << 20))
    for body in BAD_SMS:
        reply = post_sms(stack_env, body)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["status"] == "ERROR" and "invalid field" in reply.json()["error"]
    deep = b'{"number": 447700900123, "from": "x", "text": "t", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for raw in [deep, b'{"number": 447700900123, "from": "x", "text": "t", "received_at": NaN}']:
        assert post_sms(stack_env, raw).status_code == 400
    goip = {"type": "recv-sms", "sms": [[0, "1", 1e300, "+1555", "447700900123", "aGk="]]}
    reply = httpx.post(url(stack_env, "/v1/goip/gw1"), json=goip, headers={"Authorization": f"Bearer {GOIP_TOKEN}"})
    assert reply.status_code == 400, reply.text
    # the file CLI: a smstools file whose sender carries an escape sequence is refused, exit 1 (not retried)
    spool = tmp_path / "GSM1.abc"
    spool.write_bytes(b"From: 4477\x1b[2J81234567\nReceived: 25-01-01 10:00:05\n\nhello")
    cli = subprocess.run(
        [sys.executable, "-m", "grizzly_ingest.cli", "RECEIVED", str(spool), "--number", str(NUMBER), "--retries", "0"],
        env={**stack_env, "INGEST_URL": url(stack_env, "")},
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode == 1 and b"400" in cli.stderr, cli.stderr
    assert read_topic(stack_env) == []
    normal = post_sms(stack_env, {**SMS, "text": "Telegram code: 51920"})
    assert normal.status_code == 200, normal.text
    [record] = read_topic(stack_env)
    assert (record.sms_id, record.text, record.received_at_ms) == (
        normal.json()["smsId"],
        "Telegram code: 51920",
        1735725600000,
    )
