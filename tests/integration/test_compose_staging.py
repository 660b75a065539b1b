"""`docker-compose --profile staging` in CI: the Grizzly simulator (services/simulator) joins the containerized stack.

The CI stack (docker-compose.yml + docker-compose.ci.yml, local images, host networking, free ports, its own project)
comes up healthy, numbers go in through the pool admin API, then `scripts/containers.sh compose-ci --profile staging
up -d --no-build` adds the simulator with the pusher pointed at its push endpoint. Within a bounded wait the
simulator's GET /sim/report shows numbers issued and finished through the containerized api-edge, SMS injected
through the containerized sms-ingest and delivered by the pusher (via Kafka), and zero violations. `down -v` leaves
no container, volume or network of the project.

Skipped (one line) when no Docker engine answers, unless TEST_REQUIRE_DOCKER=1: then it fails.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest
from grizzly_testkit.infra import ROOT

from tests.integration.test_compose_stack import (
    SERVICES,
    ComposeStack,
    _add_numbers,
    _image_env,
    compose_env,
    compose_ports,
)

pytestmark = pytest.mark.slow

STAGING = (*SERVICES, "simulator")
NUMBERS = [447700900001 + i for i in range(6)]  # country 16 (UK, dial code 44): the simulator checks the prefix
REPORT_WAIT_S = 60


def _report(base: str) -> dict[str, Any]:
    reply = httpx.get(base + "/sim/report", timeout=10)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def _cycles_done(found: dict[str, Any]) -> bool:
    return bool(
        found["numbers_issued"] >= 3
        and sum(found["finishes"].values()) >= 3
        and found["sms_injected"] >= 3
        and found["sms_delivered"] == found["sms_injected"]
    )


def test_compose_staging_profile_runs_the_simulator_against_the_stack() -> None:
    ports = compose_ports("SIM_PORT")
    project = f"grizzlys{uuid.uuid4().hex[:8]}"
    env = compose_env(
        ports,
        _image_env(STAGING),
        COMPOSE_PROJECT_NAME=project,
        UPSTREAM_GRIZZLY_PUSH_URL=f"http://127.0.0.1:{ports['SIM_PORT']}/agent/api/sms",
        KAFKA_TOPIC_PREFIX=f"s{uuid.uuid4().hex[:8]}-",
        SIM_SEED="7",
    )
    stack = ComposeStack(project=project, env=env)
    sim = f"http://127.0.0.1:{ports['SIM_PORT']}"
    try:
        up = stack.compose("up", "-d", "--no-build")  # no profile: the simulator stays out
        assert up.returncode == 0, up.stderr[-4000:]
        stack.wait_healthy()
        _add_numbers(stack, NUMBERS, "staging-bank-1")

        staging = subprocess.run(
            [str(ROOT / "scripts" / "containers.sh"), "compose-ci", "--profile", "staging", "up", "-d", "--no-build"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert staging.returncode == 0, staging.stderr[-4000:]
        stack.services = STAGING
        stack.wait_healthy()

        deadline = time.monotonic() + REPORT_WAIT_S
        found = _report(sim)
        while time.monotonic() < deadline and not _cycles_done(found) and not found["violations"]:
            time.sleep(0.5)
            found = _report(sim)
        summary = {k: found[k] for k in ("numbers_issued", "finishes", "sms_injected", "sms_delivered", "pushes")}
        assert found["violations"] == [], found["violations"]
        assert found["violation_count"] == 0, found["finding_totals"]
        assert _cycles_done(found), (summary, stack.compose("--profile", "staging", "logs", "--tail", "30").stdout)
        assert found["requests"]["GET_SERVICES"].get("SUCCESS", 0) >= 1, found["requests"]
        assert found["pushes"]["succeeded"] >= found["sms_delivered"]
        assert found["pushes"]["duplicates_after_success"] == 0, found["pushes"]
    finally:
        down = stack.compose("--profile", "staging", "down", "-v", "--timeout", "20")
    assert down.returncode == 0, down.stderr[-4000:]
    assert stack.leftovers() == []
