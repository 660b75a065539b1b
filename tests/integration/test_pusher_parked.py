"""Parked records: an operator lists and shows them, re-pushes one or all after a fix (same smsId, never after a
SUCCESS, each once), and deletes what cannot be re-pushed; through the admin API and the `grizzly-pusher parked` CLI.

Real Kafka and Redis; the platform is FakeGrizzly, the pool lookup a FakePool.
"""

from __future__ import annotations

import base64
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
from grizzly_testkit.infra import Broker, ServiceProcess

from tests.integration.fake_grizzly import FakeGrizzly, FakePool, inbound, produce_inbound
from tests.integration.test_pusher_delivery import audit_events, redis_call

NUMBER = 447700900123
TOKEN = "test-pusher-admin-token-01"


def admin(port: int, method: str, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cli(redis_url: str, *args: str) -> Any:
    """`grizzly-pusher parked ARGS --json`, as an operator runs it; its JSON answer."""
    env = dict(os.environ, REDIS_URL=redis_url)
    done = subprocess.run(
        [sys.executable, "-m", "grizzly_pusher", "parked", *args, "--json"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def successes(fake: FakeGrizzly, sms_id: int) -> int:
    return sum(1 for push in fake.successes() if push.body.get("smsId") == sms_id)


@pytest.fixture
def pusher(start_pusher: Callable[..., ServiceProcess]) -> Callable[..., ServiceProcess]:
    # with PUSHER_RETRY_S=1: a push failing for 3 s is parked
    return functools.partial(start_pusher, PUSHER_MAX_RETRY_AGE_S="3", PUSHER_ADMIN_TOKEN=TOKEN)


def parked_total(port: int) -> int:
    status, page = admin(port, "GET", "/admin/parked")
    assert status == 200, page
    return int(page["total"])


def test_parked_push_is_repushed_after_the_fix_once_with_its_sms_id(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 9501)
    fake_grizzly.fail_phones = {NUMBER}  # the platform refuses this number's pushes (e.g. a wrong key or URL)
    process = pusher()
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", [inbound(801, NUMBER)])
    assert fake_grizzly.wait_for(lambda f: parked_total(process.port) == 1, 30)

    status, page = admin(process.port, "GET", "/admin/parked?count=10")
    assert status == 200 and page["next"] is None
    [entry] = page["entries"]
    assert entry["reason"] == "max_retry_age" and entry["repushable"] is True
    assert (entry["sms_id"], entry["upstream"], entry["activation_id"]) == (801, "grizzly", 9501)
    assert entry["source"] == {"task_id": "grizzly:801"}
    status, shown = admin(process.port, "GET", f"/admin/parked/{entry['id']}")
    assert status == 200 and json.loads(base64.b64decode(shown["raw_b64"]))["message"]["sms_id"] == 801
    failed = len(fake_grizzly.pushes_for(801))
    time.sleep(2)
    assert len(fake_grizzly.pushes_for(801)) == failed  # parked: no more attempts until an operator acts

    fake_grizzly.fail_phones = set()  # the fix
    status, answer = admin(process.port, "POST", f"/admin/parked/{entry['id']}/repush")
    assert status == 200 and answer == {
        "id": entry["id"],
        "outcome": "scheduled",
        "sms_id": 801,
        "task_id": "grizzly:801",
    }
    assert fake_grizzly.wait_for(lambda f: 801 in f.delivered_ids(), 15)
    assert fake_grizzly.pushes_for(801)[-1].body["smsId"] == 801
    assert parked_total(process.port) == 0
    status, again = admin(process.port, "POST", f"/admin/parked/{entry['id']}/repush")
    assert status == 404 and "no parked entry" in again["error"]
    time.sleep(2.5)  # retry periods go by: pushed once, never after its SUCCESS
    assert successes(fake_grizzly, 801) == 1 and len(fake_grizzly.pushes_for(801)) == failed + 1
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0
    events = audit_events(redis_url, 9501)
    repushed = [e for e in events if e["event"] == "parked_repush"]
    assert [(e["sms_id"], e["parked_id"], e["via"]) for e in repushed] == [(801, entry["id"], "admin-api")]
    attempts = [e for e in events if e["event"] == "push_attempt"]
    assert attempts[-1]["result"] == "success" and attempts[-1]["attempt"] == failed + 1
    assert TOKEN not in json.dumps(events) and TOKEN not in process.log_tail(400)


def test_repush_of_a_parked_sms_that_was_delivered_since_pushes_nothing(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    topic = topic_prefix + "inbound-messages"
    fake_pool.open(NUMBER, 9502)
    fake_grizzly.fail_phones = {NUMBER}
    process = pusher()
    sms = inbound(802, NUMBER)
    produce_inbound(kafka_broker.bootstrap, topic, [sms])
    assert fake_grizzly.wait_for(lambda f: parked_total(process.port) == 1, 30)
    fake_grizzly.fail_phones = set()
    produce_inbound(kafka_broker.bootstrap, topic, [sms])  # the same SMS again (its source sent it twice)
    assert fake_grizzly.wait_for(lambda f: 802 in f.delivered_ids(), 15)
    pushes = len(fake_grizzly.pushes_for(802))

    [entry] = cli(redis_url, "list")["entries"]
    assert cli(redis_url, "repush", entry["id"])["outcome"] == "already_delivered"
    time.sleep(2.5)
    assert len(fake_grizzly.pushes_for(802)) == pushes and successes(fake_grizzly, 802) == 1
    assert cli(redis_url, "list")["total"] == 0
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0


def test_repush_all_is_idempotent_and_leaves_undecodable_records_parked(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 9503)
    fake_grizzly.fail_phones = {NUMBER}
    process = pusher()
    messages = [inbound(sms_id, NUMBER) for sms_id in (811, 812, 813)]
    hostile = b"{not json \x00\xff"
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", messages, raw=(hostile,), partitions=1)
    assert fake_grizzly.wait_for(lambda f: parked_total(process.port) == 4, 30)

    first = cli(redis_url, "list", "--count", "2")
    rest = cli(redis_url, "list", "--count", "2", "--after", first["next"])
    entries = first["entries"] + rest["entries"]
    assert first["total"] == 4 and rest["next"] is None and len(entries) == 4
    [bad] = [e for e in entries if e["reason"] == "undecodable"]
    assert bad["repushable"] is False and bad["source"]["offset"] == 0
    shown = cli(redis_url, "show", bad["id"])
    assert base64.b64decode(shown["raw_b64"]) == hostile
    assert shown["raw_preview"] == "{not json \\x00\\xff" and "cannot be re-pushed" in shown["note"]
    status, refused = admin(process.port, "POST", f"/admin/parked/{bad['id']}/repush")
    assert status == 409 and "undecodable" in refused["error"]

    fake_grizzly.fail_phones = set()
    report = cli(redis_url, "repush", "--all", "--batch", "2")
    assert (report["scheduled"], report["already_delivered"]) == (3, 0)
    assert [s["id"] for s in report["skipped"]] == [bad["id"]]
    assert fake_grizzly.wait_for(lambda f: f.delivered_ids() >= {811, 812, 813}, 15)
    status, again = admin(process.port, "POST", "/admin/parked/repush?count=2")
    assert status == 200 and (again["scheduled"], again["already_delivered"], again["next"]) == (0, 0, None)
    assert [s["id"] for s in again["skipped"]] == [bad["id"]]
    time.sleep(2.5)
    assert all(successes(fake_grizzly, sms_id) == 1 for sms_id in (811, 812, 813))
    assert fake_grizzly.duplicates() == {}

    assert cli(redis_url, "delete", bad["id"]) == {"id": bad["id"], "deleted": True}
    assert cli(redis_url, "list")["total"] == 0
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0


def test_repushed_record_that_still_cannot_be_pushed_is_parked_again_not_pushed(
    pusher: Callable[..., ServiceProcess],
    fake_pool: FakePool,
    fake_grizzly: FakeGrizzly,
    kafka_broker: Broker,
    topic_prefix: str,
    redis_url: str,
) -> None:
    fake_pool.open(NUMBER, 9504)
    process = pusher()
    value = inbound(821, NUMBER, kind="call_record")
    record = json.dumps({**json.loads(value_bytes(value)), "recording_b64": "!!! not base64 !!!"}).encode()
    produce_inbound(kafka_broker.bootstrap, topic_prefix + "inbound-messages", [], raw=(record,), partitions=1)
    assert fake_grizzly.wait_for(lambda f: parked_total(process.port) == 1, 30)
    [entry] = cli(redis_url, "list")["entries"]
    assert entry["reason"] == "unpushable" and entry["repushable"] is True and entry["upstream"] is None

    answer = cli(redis_url, "repush", entry["id"])
    assert answer["outcome"] == "scheduled" and answer["task_id"] == "?:821"  # looked up again by the retrier

    def parked_again() -> bool:
        entries = cli(redis_url, "list")["entries"]
        return len(entries) == 1 and entries[0]["id"] != entry["id"]

    assert fake_grizzly.wait_for(lambda f: parked_again(), 15)
    [again] = cli(redis_url, "list")["entries"]
    assert again["reason"] == "unpushable" and again["source"] == {"task_id": "grizzly:821"}
    assert fake_grizzly.pushes_for(821) == []
    assert redis_call(redis_url, "ZCARD", "pusher:retry:due") == 0


def value_bytes(message: Any) -> bytes:
    from grizzly_common.events import encode

    return encode(message)


def test_admin_routes_refuse_a_wrong_token_and_answer_bad_ids_with_4xx(
    pusher: Callable[..., ServiceProcess],
    redis_url: str,
) -> None:
    process = pusher()
    port = process.port
    assert admin(port, "GET", "/admin/parked", token=None)[0] == 401
    assert admin(port, "GET", "/admin/parked", token="wrong-token-000000")[0] == 401
    assert admin(port, "POST", "/admin/parked/repush", token="wrong-token-000000")[0] == 401
    assert admin(port, "GET", "/admin/parked") == (200, {"total": 0, "entries": [], "next": None})
    for method, path, code in [
        ("GET", "/admin/parked/not-an-id", 400),
        ("GET", "/admin/parked/1-0", 404),
        ("POST", "/admin/parked/abc/repush", 400),
        ("POST", "/admin/parked/1-0/repush", 404),
        ("POST", "/admin/parked/1-0/delete", 404),
        ("GET", "/admin/parked?count=0", 400),
        ("GET", "/admin/parked?count=x", 400),
        ("GET", "/admin/parked?after=zzz", 400),
        ("POST", "/admin/parked/repush?until=bad", 400),
        ("POST", "/admin/parked/repush?count=100000", 400),
    ]:
        status, answer = admin(port, method, path)
        assert (status, answer["status"]) == (code, "ERROR"), (path, answer)
        assert answer["error"]
    done = subprocess.run(
        [sys.executable, "-m", "grizzly_pusher", "parked", "show", "nope"],
        env=dict(os.environ, REDIS_URL=redis_url),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and b"bad parked id" in done.stderr
