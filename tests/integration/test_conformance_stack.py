"""The conformance kit (the grizzly-conformance command) against the real stack: pool, api-edge, sms-ingest, pusher.

Numbers go in through the pool's admin API; the pusher's push URL points at the kit's push listener, so the SMS
items run end to end (ingestion -> Kafka -> pusher -> PUSH_SMS). Every item must PASS and the run must leave no
activation open. It runs with --destructive: the pool must never offer a number again for a service it was
finished for with status 3 or 1, and must keep offering it for the others.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from grizzly_testkit.infra import ServiceProcess, free_port

from tests.integration.fixtures import UPSTREAM_KEY

pytestmark = pytest.mark.single_pass  # the conformance kit against the stack, not how Redis and Kafka run

# Two operators' worth of Russian numbers on two devices; the pool maps our "ru" to Grizzly's country "0".
NUMBERS = [79001000000 + i for i in range(14)] + [79281000000 + i for i in range(10)]


def add_numbers(stack_env: dict[str, str], numbers: list[int]) -> None:
    rows = [
        {"number": n, "country": "ru", "operator": "mts" if i % 2 else "beeline", "device": f"bank{i % 2}", "slot": i}
        for i, n in enumerate(numbers)
    ]
    reply = httpx.post(
        f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}/admin/numbers",
        json={"numbers": rows},
        headers={"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


def open_activations(stack_env: dict[str, str]) -> int:
    reply = httpx.get(
        f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}/admin/stats",
        headers={"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    stats = reply.json()
    return int(stats.get("open_activations", stats.get("active", 0)))


@pytest.fixture
def partner(start_service: Callable[..., ServiceProcess], stack_env: dict[str, str]) -> tuple[dict[str, str], int]:
    """The whole stack, with the pusher pushing to a port the conformance kit will listen on."""
    listen_port = free_port()
    start_service("pool", POOL_COUNTRY_MAP_GRIZZLY="ru:0", POOL_SERVICES="tg,wa,vk")
    start_service("edge")
    start_service("ingest")
    start_service("pusher", UPSTREAM_GRIZZLY_PUSH_URL=f"http://127.0.0.1:{listen_port}/agent/api/sms")
    add_numbers(stack_env, NUMBERS)
    return stack_env, listen_port


def test_conformance_kit_passes_against_the_real_stack(partner: tuple[dict[str, str], int], tmp_path: Path) -> None:
    stack_env, listen_port = partner
    report_path = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "grizzly_sim.conformance",
        "--url", f"http://127.0.0.1:{stack_env['EDGE_PORT']}/GrizzlySMS.php",
        "--key", UPSTREAM_KEY,
        "--json", str(report_path),
        "--push-listen", f"127.0.0.1:{listen_port}",
        "--sms-ingest-url", f"http://127.0.0.1:{stack_env['INGEST_PORT']}/v1/sms",
        "--ingest-token", stack_env["INGEST_TOKEN"],
        "--push-wait-s", "30", "--retry-wait-s", "30", "--dup-window-s", "3",
        "--destructive",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert report_path.exists(), done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    not_passed = {i["id"]: (i["result"], i["detail"]) for i in report["items"] if i["result"] != "PASS"}
    assert not not_passed, not_passed
    assert {"retire.sold", "retire.do_not_offer"} <= {i["id"] for i in report["items"]}
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert UPSTREAM_KEY not in done.stdout + done.stderr  # the key is never printed
    assert open_activations(stack_env) == 0


def test_conformance_kit_fails_and_exits_nonzero_on_a_wrong_key(partner: tuple[dict[str, str], int]) -> None:
    stack_env, _ = partner
    command = [
        sys.executable, "-m", "grizzly_sim.conformance",
        "--url", f"http://127.0.0.1:{stack_env['EDGE_PORT']}/", "--key", "not-the-partner-key-0001",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "FAILED" in done.stdout
