"""grizzly-sim: the push endpoint's checks (Starlette app, no polling) and the request loop against a fake partner."""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from grizzly_sim.app import create_app
from grizzly_sim.conformance import push_listener
from grizzly_sim.partner import PartnerClient
from grizzly_sim.platform import Simulator
from grizzly_sim.pushes import Findings, PushLedger
from grizzly_sim.settings import Settings
from grizzly_testkit.infra import free_port
from sim_fake_partner import INGEST_TOKEN, KEY, FakePartner
from starlette.testclient import TestClient

UA = {"User-Agent": "partner-test/1.0", "Content-Type": "application/json"}


def settings(**env: str) -> Settings:
    base = {"SIM_KEY": KEY, "SIM_POLL_MIN_S": "0.05", "SIM_POLL_MAX_S": "0.1", "SIM_HOLD_MIN_S": "0.05",
            "SIM_HOLD_MAX_S": "0.2", "SIM_SEED": "7", "SIM_TAKE_P": "1", "SIM_UNKNOWN_FINISH_P": "0.5"}  # fmt: skip
    return Settings.from_env({**base, **env})


def sms(sms_id: int = 1, **fields: Any) -> bytes:
    body = {"action": "PUSH_SMS", "key": KEY, "smsId": sms_id, "phone": 79001000000, "phoneFrom": "VK", "text": "1"}
    return orjson.dumps({**body, **fields})


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(settings(), run_loop=False)) as test_client:
        yield test_client


def kinds(client: TestClient) -> list[str]:
    return [v["kind"] for v in client.get("/sim/report").json()["violations"]]


def test_push_with_numbers_user_agent_and_gzip_is_accepted(client: TestClient) -> None:
    reply = client.post("/agent/api/sms", content=gzip.compress(sms()), headers={**UA, "Content-Encoding": "gzip"})
    assert reply.json() == {"status": "SUCCESS"}
    report = client.get("/sim/report").json()
    assert report["violation_count"] == 0 and report["pushes"]["succeeded"] == 1


def test_push_types_key_and_user_agent_are_violations(client: TestClient) -> None:
    assert client.post("/agent/api/sms", content=sms(smsId="5"), headers=UA).json()["status"] == "ERROR"
    assert client.post("/agent/api/sms", content=sms(2, phone="79001000000"), headers=UA).json()["status"] == "ERROR"
    assert client.post("/agent/api/sms", content=sms(3, key="nope-nope"), headers=UA).json()["status"] == "ERROR"
    client.post("/agent/api/sms", content=sms(4), headers={"User-Agent": "", "Content-Type": "application/json"})
    assert kinds(client) == ["push_bad_fields", "push_bad_fields", "push_wrong_key", "push_no_user_agent"]


def test_duplicate_after_success_is_a_violation_but_a_retry_after_error_is_not(client: TestClient) -> None:
    assert client.post("/sim/fail?seconds=30").json()["status"] == "SUCCESS"
    assert client.post("/agent/api/sms", content=sms(10), headers=UA).json()["status"] == "ERROR"
    client.post("/sim/fail?seconds=0")
    assert client.post("/agent/api/sms", content=sms(10), headers=UA).json()["status"] == "SUCCESS"  # the retry
    assert kinds(client) == []
    client.post("/agent/api/sms", content=sms(10), headers=UA)  # again after SUCCESS
    assert kinds(client) == ["push_duplicate_after_success"]
    assert client.get("/sim/report").json()["pushes"]["retries"] == 1


def test_fail_mode_http500(client: TestClient) -> None:
    client.post("/sim/fail?seconds=30&mode=http500")
    assert client.post("/agent/api/sms", content=sms(20), headers=UA).status_code == 500
    assert client.post("/sim/fail?seconds=x").status_code == 400


def test_push_call_record_multipart_is_accepted(client: TestClient) -> None:
    data = {"action": "PUSH_CALL_RECORD", "key": KEY, "callId": "77", "phone": "79001000000", "phoneFrom": "123"}
    reply = client.post("/agent/api/sms", data=data, files={"file": ("a.wav", b"RIFF....", "audio/wav")})
    assert reply.json() == {"status": "SUCCESS"}, reply.text
    assert kinds(client) == []


def test_settings_name_the_variable() -> None:
    with pytest.raises(ValueError, match="SIM_KEY"):
        Settings.from_env({})
    with pytest.raises(ValueError, match="SIM_FINISH_WEIGHTS"):
        settings(SIM_FINISH_WEIGHTS="7:1")
    with pytest.raises(ValueError, match="SIM_POLL_MAX_S"):
        settings(SIM_POLL_MIN_S="5", SIM_POLL_MAX_S="1")
    assert "fake-partner" not in repr(settings())


def simulate(bugs: frozenset[str] = frozenset(), seconds: float = 2.0, **env: str) -> dict[str, Any]:
    """The simulator loop against the fake partner for a few seconds, SMS included; its report."""

    async def go() -> dict[str, Any]:
        port = free_port()
        fake = FakePartner([79001000000 + i for i in range(6)], bugs=bugs, push_url=f"http://127.0.0.1:{port}/x")
        async with fake.running():
            config = settings(SIM_PARTNER_URL=fake.url, SIM_INGEST_URL=fake.ingest_url, SIM_INGEST_TOKEN=INGEST_TOKEN,
                              SIM_SMS_DEADLINE_S="3", **env)  # fmt: skip
            findings = Findings()
            ledger = PushLedger(key=KEY, findings=findings)
            async with (
                PartnerClient(config.partner_url, config.key) as client,
                push_listener("127.0.0.1", port, ledger),
            ):
                simulator = Simulator(config, client, ledger, findings, rng=random.Random(config.seed))
                task = asyncio.create_task(simulator.run())
                await asyncio.sleep(seconds)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return simulator.report()

    return asyncio.run(go())


def test_simulator_finds_nothing_wrong_with_a_correct_partner() -> None:
    report = simulate()
    assert report["violations"] == []
    assert report["numbers_issued"] > 0 and sum(report["finishes"].values()) > 0
    assert report["sms_delivered"] > 0 and report["unknown_finish_probes"] > 0


@pytest.mark.parametrize(
    ("bug", "kind"),
    [
        ("overreport", "count_overreport"),
        ("string_number", "get_number_types"),
        ("finish_once", "finish_not_idempotent"),
        ("push_twice", "push_duplicate_after_success"),
        ("duplicates", "duplicate_number"),
    ],
)
def test_simulator_reports_each_bug(bug: str, kind: str) -> None:
    report = simulate(frozenset({bug}), SIM_REPEAT_FINISH_P="1")
    assert kind in {v["kind"] for v in report["violations"]}


def test_simulator_reports_a_number_offered_again_after_it_was_sold() -> None:
    report = simulate(frozenset({"reoffer_retired"}), seconds=3.0, SIM_FINISH_WEIGHTS="3:1")
    assert "reoffered_after_finish" in {v["kind"] for v in report["violations"]}
