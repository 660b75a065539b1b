"""grizzly-sim (a real process, env-only config) against the real stack for a few seconds: zero violations.

The simulator polls every 0.2-0.4 s, takes numbers (sometimes with exceptionPhoneSet), sends an SMS for each through
sms-ingest and waits for its PUSH_SMS (the pusher points at the simulator), fails pushes for its first seconds so the
pusher must retry, finishes with 1/3/4/5 and repeats finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from grizzly_testkit.infra import ServiceProcess, free_port

from tests.integration.fixtures import UPSTREAM_KEY
from tests.integration.test_conformance_stack import NUMBERS, add_numbers, open_activations


@pytest.fixture
def simulator(
    start_service: Callable[..., ServiceProcess], stack_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, ServiceProcess]]:
    sim_port = free_port()
    start_service("pool", POOL_COUNTRY_MAP_GRIZZLY="ru:0", POOL_SERVICES="tg,wa,vk")
    start_service("edge")
    start_service("ingest")
    start_service("pusher", UPSTREAM_GRIZZLY_PUSH_URL=f"http://127.0.0.1:{sim_port}/agent/api/sms")
    add_numbers(stack_env, NUMBERS)
    env = {
        "SIM_HOST": "127.0.0.1",
        "SIM_PORT": str(sim_port),
        "SIM_PARTNER_URL": f"http://127.0.0.1:{stack_env['EDGE_PORT']}/",
        "SIM_KEY": UPSTREAM_KEY,
        "SIM_SEED": "11",
        "SIM_POLL_MIN_S": "0.2",
        "SIM_POLL_MAX_S": "0.4",
        "SIM_HOLD_MIN_S": "0.2",
        "SIM_HOLD_MAX_S": "1.5",
        "SIM_TAKE_P": "0.7",
        "SIM_MAX_OPEN": "8",
        "SIM_REPEAT_FINISH_P": "0.5",
        "SIM_UNKNOWN_FINISH_P": "0.3",
        "SIM_FAIL_S": "2",
        "SIM_INGEST_URL": f"http://127.0.0.1:{stack_env['INGEST_PORT']}/v1/sms",
        "SIM_INGEST_TOKEN": stack_env["INGEST_TOKEN"],
        "SIM_SMS_DEADLINE_S": "30",
        "LOG_LEVEL": "INFO",
    }
    process = ServiceProcess("grizzly_sim", env, sim_port, tmp_path / "sim.log")
    process.start()
    try:
        yield f"http://127.0.0.1:{sim_port}", process
    finally:
        process.stop()


def report(base: str) -> dict[str, Any]:
    reply = httpx.get(base + "/sim/report", timeout=10)
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


def test_simulator_run_against_the_stack_reports_zero_violations(
    simulator: tuple[str, ServiceProcess], stack_env: dict[str, str]
) -> None:
    base, process = simulator
    deadline = time.monotonic() + 40
    found = report(base)
    while time.monotonic() < deadline and not (
        found["numbers_issued"] > 0 and sum(found["finishes"].values()) > 0 and found["sms_injected"] > 0
    ):  # a few whole cycles first
        time.sleep(0.5)
        found = report(base)
    deadline = time.monotonic() + 40  # let the SMS still in flight arrive (bounded)
    while (
        time.monotonic() < deadline
        and found["sms_delivered"] + found["finding_totals"].get("violation:sms_lost", 0) < found["sms_injected"]
    ):
        time.sleep(0.5)
        found = report(base)
    assert found["violations"] == [], found["violations"]
    assert found["numbers_issued"] > 0 and sum(found["finishes"].values()) > 0, found
    assert found["requests"]["GET_SERVICES"].get("SUCCESS", 0) >= 5, found["requests"]
    assert found["sms_injected"] > 0 and found["sms_delivered"] == found["sms_injected"], found
    pushes = found["pushes"]
    assert pushes["failed_by_us"] == 0 or pushes["retries"] >= 1, pushes
    assert pushes["duplicates_after_success"] == 0
    metrics = httpx.get(base + "/metrics", timeout=10).text
    assert "sim_requests_total" in metrics
    assert UPSTREAM_KEY not in process.log_tail(400)
    # SIGTERM: the simulator finishes what it still holds open, then exits (uvicorn re-raises the signal: -15)
    assert process.terminate() in (0, -15)
    assert open_activations(stack_env) == 0
