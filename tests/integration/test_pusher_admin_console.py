"""The pusher's admin routes for the operator console: stats, the retry queue, the recent SMS log with each push's
status, the upstreams' last answers; bounded keys; and who re-pushed or deleted a parked record.

Real Kafka and Redis; the platform is FakeGrizzly (answering SUCCESS, or ERROR for the numbers it is told to
refuse), the pool lookup a FakePool.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis as redis_sync
from grizzly_testkit.infra import Broker, ServiceProcess

from tests.integration.fake_grizzly import FakeGrizzly, FakePool, inbound, produce_inbound
from tests.integration.fixtures import UPSTREAM_KEY
from tests.integration.test_pusher_delivery import audit_events

pytestmark = pytest.mark.single_pass  # read-only views and admin routes, not how Redis and Kafka run

OK_NUMBER = 447700900201
FAILING_NUMBER = 447700900202
OLD_NUMBER = 447700900203
TOKEN = "test-pusher-admin-token-02"


def admin(
    port: int, method: str, path: str, token: str | None = TOKEN, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(port: int, path: str) -> Any:
    status, answer = admin(port, "GET", path)
    assert status == 200, (path, answer)
    return answer


def by_sms(port: int, query: str = "") -> dict[int, dict[str, Any]]:
    return {e["sms_id"]: e for e in get(port, "/admin/sms" + query)["sms"]}


@pytest.fixture
def pusher(start_pusher: Callable[..., ServiceProcess]) -> Callable[..., ServiceProcess]:
    # an SMS produced 100 s old is parked at its first failure
    return functools.partial(start_pusher, PUSHER_MAX_RETRY_AGE_S="60", PUSHER_ADMIN_TOKEN=TOKEN)


def test_console_sees_each_push_its_status_answers_and_the_retry_queue(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
) -> None:
    fake_pool.open(OK_NUMBER, 9601)
    fake_pool.open(FAILING_NUMBER, 9602)
    fake_pool.open(OLD_NUMBER, 9603)
    fake_grizzly.fail_phones = {FAILING_NUMBER, OLD_NUMBER}
    process = pusher()
    port = process.port
    failing = inbound(902, FAILING_NUMBER)
    messages = [inbound(901, OK_NUMBER, text="code 11111"), failing, inbound(903, OLD_NUMBER, age_s=100)]
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages)

    def settled(f: FakeGrizzly) -> bool:
        if 901 not in f.delivered_ids() or len(f.pushes_for(902)) < 3:
            return False
        sms = by_sms(port)
        return len(sms) == 3 and sms[903]["status"] == "parked"

    assert fake_grizzly.wait_for(settled, 30)

    sms = by_sms(port)
    ok, retrying, parked = sms[901], sms[902], sms[903]
    assert {k: ok[k] for k in ("activation_id", "number", "upstream", "kind", "text", "status", "attempts")} == {
        "activation_id": 9601,
        "number": OK_NUMBER,
        "upstream": "grizzly",
        "kind": "sms",
        "text": "code 11111",
        "status": "pushed",
        "attempts": 1,
    }
    assert ok["received_ms"] == messages[0].received_at_ms
    assert ok["last_answer"]["result"] == "success" and ok["last_answer"]["http_status"] == 200
    assert retrying["status"] == "retrying" and retrying["attempts"] >= 2
    assert retrying["last_answer"]["result"] == "error" and retrying["last_answer"]["error"] == "try later"
    assert parked["status"] == "parked" and parked["attempts"] == 1
    assert list(by_sms(port, "?status=retrying")) == [902]
    assert list(by_sms(port, "?activation=9601&count=5")) == [901]
    assert by_sms(port, "?status=pending") == {}
    assert len(get(port, "/admin/sms?count=2")["sms"]) == 2

    stats = get(port, "/admin/stats")
    minutes = stats["sms_per_minute"]
    assert len(minutes) == 60 and minutes == sorted(minutes)
    assert abs(minutes[-1][0] - (time.time() * 1000 // 60_000) * 60_000) <= 60_000
    assert sum(n for _, n in minutes) == 3
    assert stats["pushes_1h"]["ok"] == 1 and stats["pushes_1h"]["failed"] >= 3
    total = stats["pushes_1h"]["ok"] + stats["pushes_1h"]["failed"]
    assert stats["success_rate_1h"] == pytest.approx(1 / total, abs=1e-3)
    assert stats["parked"] == 1 and stats["retry_queue"] + stats["in_flight"] == 1

    queue = get(port, "/admin/queue")
    assert queue["total"] == 1
    [entry] = queue["entries"]
    assert {k: entry[k] for k in ("task_id", "sms_id", "activation_id", "upstream", "first_seen_ms")} == {
        "task_id": "grizzly:902",
        "sms_id": 902,
        "activation_id": 9602,
        "upstream": "grizzly",
        "first_seen_ms": failing.ingested_at_ms,
    }
    assert entry["attempts"] >= 2 and entry["last_error"] == "try later"
    assert entry["next_attempt_ms"] > time.time() * 1000 - 5000

    [upstream] = get(port, "/admin/upstreams")["upstreams"]
    assert upstream["name"] == "grizzly" and upstream["push_url"] == fake_grizzly.url
    assert upstream["key_masked"] == UPSTREAM_KEY[:2] + "..." + UPSTREAM_KEY[-2:]
    answers = upstream["last_answers"]
    assert 4 <= len(answers) <= 20 and answers == sorted(answers, key=lambda a: -a["at_ms"])
    assert {(a["sms_id"], a["ok"], a["http_status"], a["answer"]) for a in answers} >= {
        (901, True, 200, '{"status":"SUCCESS"}'),
        (902, False, 200, '{"status":"ERROR","error":"try later"}'),
        (903, False, 200, '{"status":"ERROR","error":"try later"}'),
    }

    fake_grizzly.fail_phones = {OLD_NUMBER}  # the platform takes 902 again
    assert fake_grizzly.wait_for(lambda f: by_sms(port)[902]["status"] == "pushed", 15)
    assert get(port, "/admin/queue") == {"total": 0, "entries": []}
    everything = json.dumps([get(port, p) for p in ("/admin/sms", "/admin/stats", "/admin/queue", "/admin/upstreams")])
    assert UPSTREAM_KEY not in everything and UPSTREAM_KEY not in process.log_tail(400)


def test_console_keys_stay_bounded_and_their_failures_never_stop_a_push(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    client = redis_sync.Redis.from_url(redis_url)
    fake_pool.open(OK_NUMBER, 9611)
    process = pusher(PUSHER_SMS_LOG_MAX="5")
    topic = topic_prefix + "inbound-messages"
    produce_inbound(kafka_broker.bootstrap, topic, [inbound(sms_id, OK_NUMBER) for sms_id in range(1000, 1030)])
    assert fake_grizzly.wait_for(lambda f: len(f.delivered_ids()) == 30, 30)

    def newest() -> list[int]:
        return [e["sms_id"] for e in get(process.port, "/admin/sms?count=500")["sms"]]

    assert fake_grizzly.wait_for(lambda f: newest() == list(range(1029, 1024, -1)), 5)  # one number: in order
    assert client.xlen("pusher:activity:sms") == 5
    assert client.llen("pusher:activity:answers:grizzly") == 20
    assert 0 < client.ttl("pusher:activity:minutes") <= 7200
    assert 0 < client.ttl("pusher:activity:sms") <= 30 * 86400  # PUSHER_LEDGER_TTL_S: gone once idle that long
    assert 0 < client.ttl("pusher:activity:answers:grizzly") <= 30 * 86400
    assert client.hlen("pusher:activity:minutes") <= 6  # this minute (and maybe the last): SMS and pushes ok

    # the console's keys broken (something else wrote them): pushes go on, the failures are counted
    for key in ("pusher:activity:sms", "pusher:activity:answers:grizzly", "pusher:activity:minutes"):
        client.delete(key)
        client.lpush(key, "not-mine") if key.endswith("minutes") else client.set(key, "not-mine")
    produce_inbound(kafka_broker.bootstrap, topic, [inbound(sms_id, OK_NUMBER) for sms_id in range(1030, 1040)])
    assert fake_grizzly.wait_for(lambda f: len(f.delivered_ids()) == 40, 30)
    assert fake_grizzly.duplicates() == {}

    def failures() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith("pusher_activity_write_failures_total "):
                    return float(line.split()[1])
        return 0.0

    assert fake_grizzly.wait_for(lambda f: failures() >= 3, 5)
    assert admin(process.port, "GET", "/admin/sms")[0] == 503  # the log is not a stream: Redis's error, not a 500
    client.close()


def test_console_routes_refuse_a_missing_token_and_answer_bad_parameters_with_400(
    pusher: Callable[..., ServiceProcess],
) -> None:
    port = pusher().port
    for path in ("/admin/stats", "/admin/queue", "/admin/sms", "/admin/upstreams"):
        assert admin(port, "GET", path, token=None)[0] == 401
        assert admin(port, "GET", path, token="wrong-token-000000")[0] == 401
        assert admin(port, "GET", path)[0] == 200
    for path in [
        "/admin/sms?count=0",
        "/admin/sms?count=501",
        "/admin/sms?count=x",
        "/admin/sms?count=99999999999999999999999",
        "/admin/sms?status=done",
        "/admin/sms?activation=0",
        "/admin/sms?activation=abc",
        "/admin/queue?count=0",
        "/admin/queue?count=1e3",
        "/admin/sms?count=--5",  # passes a naive "strip the minus, isdigit" check, then int() raises
        "/admin/sms?count=%C2%B2",  # "²": str.isdigit() says yes, int() says no
        "/admin/sms?activation=--1",
        "/admin/parked?count=%C2%B2",
    ]:
        status, answer = admin(port, "GET", path)
        assert (status, answer["status"]) == (400, "ERROR"), (path, answer)
        assert answer["error"]


def operator_events(redis_url: str) -> list[dict[str, Any]]:
    """audit:ops, oldest first."""
    client = redis_sync.Redis.from_url(redis_url)
    try:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange("audit:ops")  # type: ignore[assignment]
        return [json.loads(fields[b"event"]) for _, fields in entries]
    finally:
        client.close()


def test_who_repushed_or_deleted_a_parked_record_is_recorded(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(OLD_NUMBER, 9621)
    fake_grizzly.fail_phones = {OLD_NUMBER}
    port = pusher().port
    old = [inbound(sms_id, OLD_NUMBER, age_s=100) for sms_id in (931, 932, 933)]  # parked at their first failure
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", old, raw=(b"\x00 not a record",))

    def parked() -> dict[Any, str]:
        return {e.get("sms_id", "raw"): e["id"] for e in get(port, "/admin/parked")["entries"]}

    assert fake_grizzly.wait_for(lambda f: len(parked()) == 4, 30)
    ids = parked()

    for bad in ("", "two words", "x" * 65, "semi;colon", "caf\u00e9"):
        for method, path in [
            ("POST", f"/admin/parked/{ids[931]}/repush"),
            ("POST", f"/admin/parked/{ids[932]}/delete"),
            ("POST", "/admin/parked/repush"),
        ]:
            status, answer = admin(port, method, path, headers={"X-Operator": bad})
            assert (status, answer["status"]) == (400, "ERROR"), (bad, path, answer)
            assert "operator" in answer["error"]
    assert parked() == ids and operator_events(redis_url) == []  # refused before anything was done

    fake_grizzly.fail_phones = set()  # the fix
    status, answer = admin(
        port, "POST", f"/admin/parked/{ids[931]}/repush", headers={"X-Operator": "alice@example.com"}
    )
    assert status == 200 and answer["outcome"] == "scheduled"
    assert admin(port, "POST", f"/admin/parked/{ids[932]}/delete") == (200, {"id": ids[932], "deleted": True})
    status, report = admin(port, "POST", "/admin/parked/repush?count=10", headers={"X-Operator": "carol.ops-1"})
    assert status == 200 and (report["scheduled"], len(report["skipped"])) == (1, 1)
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() == {931, 933}, 15)
    done = subprocess.run(
        [sys.executable, "-m", "grizzly_pusher", "parked", "delete", ids["raw"], "--json"],
        env=dict(os.environ, REDIS_URL=redis_url),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()

    events = operator_events(redis_url)
    assert [(e["event"], e["by"], e.get("parked_id")) for e in events] == [
        ("parked_repush", "alice@example.com", ids[931]),
        ("parked_delete", "api", ids[932]),
        ("parked_repush_all", "carol.ops-1", None),
        ("parked_delete", "cli", ids["raw"]),
    ]
    assert (events[0]["sms_id"], events[0]["activation_id"], events[0]["outcome"]) == (931, 9621, "scheduled")
    assert (events[2]["scheduled"], events[2]["skipped"]) == (1, 1)
    assert events[3]["reason"] == "undecodable" and events[3]["via"] == "cli"
    trail = [e for e in audit_events(redis_url, 9621) if e["event"].startswith("parked_")]
    assert [(e["event"], e["sms_id"], e["by"]) for e in trail] == [
        ("parked_repush", 931, "alice@example.com"),
        ("parked_delete", 932, "api"),
        ("parked_repush", 933, "carol.ops-1"),
    ]
    statuses = {sms_id: e["status"] for sms_id, e in by_sms(port).items()}
    assert statuses == {931: "pushed", 932: "parked", 933: "pushed"}  # 932 was given up: it stays "parked"
