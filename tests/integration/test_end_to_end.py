"""The walking skeleton, end to end on real Redis and Kafka: the platform's whole cycle through all four services.

GET_SERVICES counts come from the pool; GET_NUMBER takes a number; an SMS posted to sms-ingest travels through
Kafka to the pusher, which delivers PUSH_SMS (with a User-Agent) to a fake platform; FINISH_ACTIVATION closes the
activation, idempotently; the audit trail holds every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from grizzly_testkit.infra import ServiceProcess

from tests.integration.fake_grizzly import FakeGrizzly
from tests.integration.fixtures import UPSTREAM_KEY

NUMBERS = [447700900001, 447700900002, 447700900003]


def partner(edge: ServiceProcess, **body: Any) -> dict[str, Any]:
    reply = httpx.post(f"http://127.0.0.1:{edge.port}/GrizzlySMS.php", json={"key": UPSTREAM_KEY, **body}, timeout=10)
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


def counts(edge: ServiceProcess) -> dict[str, int]:
    answer = partner(edge, action="GET_SERVICES")
    assert answer["status"] == "SUCCESS"
    [country] = answer["countryList"]
    assert country["country"] == "16"
    return country["operatorMap"]["any"]  # type: ignore[no-any-return]


def test_platform_cycle_through_every_service(
    start_service: Callable[..., ServiceProcess], stack_env: dict[str, str], fake_grizzly: FakeGrizzly
) -> None:
    pool = start_service("pool")
    edge = start_service("edge")
    ingest = start_service("ingest")
    start_service("pusher")
    admin = httpx.Client(
        base_url=f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}",
        headers={"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"},
        timeout=10,
    )
    with admin:
        added = admin.post(
            "/admin/numbers",
            json={
                "numbers": [
                    {"number": n, "country": "16", "operator": "vodafone", "device": "bank-1", "slot": i}
                    for i, n in enumerate(NUMBERS)
                ]
            },
        )
        assert added.status_code == 200, added.text

        before = counts(edge)
        assert before["tg"] == 3 and before["wa"] == 3

        issued = partner(edge, action="GET_NUMBER", country="16", operator="any", service="tg", sum=0.35)
        assert issued["status"] == "SUCCESS"
        number, activation_id = issued["number"], issued["activationId"]
        assert type(number) is int and number in NUMBERS
        assert type(activation_id) is int
        assert counts(edge)["tg"] == 2  # busy now

        sms = httpx.post(
            f"http://127.0.0.1:{ingest.port}/v1/sms",
            headers={"Authorization": f"Bearer {stack_env['INGEST_TOKEN']}"},
            json={"number": number, "from": "Telegram", "text": "Telegram code: 51920"},
            timeout=10,
        )
        assert sms.status_code == 200, sms.text
        sms_id = sms.json()["smsId"]

        assert fake_grizzly.wait_for(lambda fake: fake.successes(), timeout_s=30), "no PUSH_SMS arrived"
        [push] = fake_grizzly.successes()
        assert push.body == {
            "action": "PUSH_SMS",
            "key": UPSTREAM_KEY,
            "smsId": sms_id,
            "phone": number,
            "phoneFrom": "Telegram",
            "text": "Telegram code: 51920",
        }
        assert push.headers.get("User-Agent")

        assert partner(edge, action="FINISH_ACTIVATION", activationId=activation_id, status=3) == {"status": "SUCCESS"}
        assert partner(edge, action="FINISH_ACTIVATION", activationId=activation_id, status=3) == {"status": "SUCCESS"}
        after = counts(edge)
        assert after["tg"] == 2, "a number sold for tg is never offered for tg again"
        assert after["wa"] == 3, "but it is free again for other services"

        trail = admin.get(f"/admin/activations/{activation_id}")
        assert trail.status_code == 200, trail.text
        events = [event["event"] for event in trail.json()["events"]]
        assert events[0] == "issued"
        assert "push_attempt" in events and "finish" in events

        # the pusher told the pool about the SMS before pushing it: SIM health and the day's earnings
        [sim] = [
            s for s in admin.get("/admin/sims", params={"device": "bank-1"}).json()["sims"] if s["number"] == number
        ]
        assert {k: sim[k] for k in ("issued", "sold", "sms", "streak", "suspect")} == {
            "issued": 1, "sold": 1, "sms": 1, "streak": 0, "suspect": False,
        }  # fmt: skip
        assert sim["last_sms_ms"] > 0
        earned = admin.get("/admin/earnings", params={"since": "1d", "by": "service,country"}).json()["rows"]
        assert earned == [{"service": "tg", "country": "16", "currency": "none", "issued": 1, "sold": 1, "refused": 0,
                           "cancelled": 0, "refunded": 0, "amount": "0.35", "sell_through": 1.0}]  # fmt: skip
    assert pool.process is not None and pool.process.poll() is None
