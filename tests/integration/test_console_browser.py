"""The operator console in a real headless browser (Debian's chromium through playwright, no browser download)
against the real stack: Redis, Kafka, pool, api-edge, sms-ingest, pusher, the console, and a fake platform.

The operator logs in (a wrong token is refused), sees numbers imported through the CLI, watches an SMS arrive and
its push succeed, sees a push parked while the platform refuses it and re-pushes it after the fix, and changes a
device's cap; a change without the session's CSRF token is refused. Every change reaches the admin APIs under the
operator's name.

CONSOLE_SCREENSHOTS=docs/console saves a screenshot of each main page on the way (docs/console.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from grizzly_testkit.infra import ServiceProcess, free_port
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.fake_grizzly import FakeGrizzly
from tests.integration.fixtures import UPSTREAM_KEY

CHROMIUM = "/usr/bin/chromium"  # Debian's package; playwright's own browser download is not possible here
OPERATOR_TOKEN = "test-console-operator-01"
PUSHER_ADMIN_TOKEN = "test-pusher-admin-token-01"
NUMBERS = (447700900301, 447700900302, 447700900303)
DEVICE = "goip-7"

# skipped on a developer's machine without it; in CI (CI=true) a missing browser fails the test instead
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="apt-get install chromium"),
    pytest.mark.single_pass,  # the pages and the browser, not how Redis and Kafka run
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def screenshot(page: Page, name: str) -> None:
    """Into $CONSOLE_SCREENSHOTS (docs/console/ when the docs are refreshed); nothing when it is unset."""
    folder = os.environ.get("CONSOLE_SCREENSHOTS", "")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def partner(edge: ServiceProcess, **body: Any) -> dict[str, Any]:
    reply = httpx.post(f"http://127.0.0.1:{edge.port}/GrizzlySMS.php", json={"key": UPSTREAM_KEY, **body}, timeout=10)
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


def send_sms(ingest: ServiceProcess, token: str, number: int, text: str) -> int:
    reply = httpx.post(
        f"http://127.0.0.1:{ingest.port}/v1/sms",
        headers={"Authorization": f"Bearer {token}"},
        json={"number": number, "from": "Telegram", "text": text},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return int(reply.json()["smsId"])


def import_with_the_cli(stack_env: dict[str, str], folder: Path) -> None:
    """grizzly-pool import FILE, as an operator runs it on a pool host (Redis directly)."""
    csv = folder / "farm.csv"
    rows = [f"{n},16,vodafone,{DEVICE},{slot}" for slot, n in enumerate(NUMBERS, start=1)]
    csv.write_text("number,country,operator,device,slot\n" + "\n".join(rows) + "\n")
    env = dict(os.environ, REDIS_URL=stack_env["REDIS_URL"], POOL_NUMBER_CHECK="off")
    done = subprocess.run(
        [sys.executable, "-m", "grizzly_pool", "import", str(csv)], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


def start_stack(start_service: Callable[..., ServiceProcess], stack_env: dict[str, str]) -> dict[str, ServiceProcess]:
    """The pool first (the others ask it at start), then the rest side by side, then the console."""
    pusher_env = {
        "PUSHER_ADMIN_TOKEN": PUSHER_ADMIN_TOKEN,
        "PUSHER_MAX_RETRY_AGE_S": "3",  # with PUSHER_RETRY_S=1: a push failing for 3 s is parked
        "PUSHER_LEASE_S": "4",
        "UPSTREAM_GRIZZLY_PUSH_TIMEOUT_S": "1",
    }
    services = {"pool": start_service("pool")}
    with ThreadPoolExecutor(3) as pool:
        started = {
            "edge": pool.submit(start_service, "edge"),
            "ingest": pool.submit(start_service, "ingest"),
            "pusher": pool.submit(start_service, "pusher", **pusher_env),
        }
        services |= {name: future.result() for name, future in started.items()}
    services["console"] = start_service(
        "console",
        CONSOLE_PORT=str(free_port()),
        CONSOLE_HOST="127.0.0.1",
        CONSOLE_POOL_ADMIN_URL=f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}",
        CONSOLE_PUSHER_ADMIN_URL=f"http://127.0.0.1:{stack_env['PUSHER_PORT']}",
        PUSHER_ADMIN_TOKEN=PUSHER_ADMIN_TOKEN,
        CONSOLE_OPERATORS="admin",
        CONSOLE_OPERATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        CONSOLE_SESSION_SECRET="test-console-session-secret-01",
        CONSOLE_COOKIE_SECURE="false",
    )
    return services


def device_cap(stack_env: dict[str, str]) -> int:
    stats = httpx.get(
        f"http://127.0.0.1:{stack_env['POOL_ADMIN_PORT']}/admin/stats",
        headers={"Authorization": f"Bearer {stack_env['POOL_ADMIN_TOKEN']}"},
        timeout=10,
    ).json()
    return int(stats["devices"][DEVICE]["cap"])


def test_operator_console_in_a_real_browser(
    start_service: Callable[..., ServiceProcess],
    stack_env: dict[str, str],
    fake_grizzly: FakeGrizzly,
    browser: Browser,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    stack = start_stack(start_service, stack_env)
    import_with_the_cli(stack_env, tmp_path)
    base = f"http://127.0.0.1:{stack['console'].port}"
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # a live region shows news within its 3 s poll; parking takes ~4 s
    failed_requests: list[str] = []
    page.on("requestfailed", lambda request: failed_requests.append(request.url))
    page.on("pageerror", lambda error: failed_requests.append(f"script error: {error}"))

    # a wrong token is refused; the right one opens the overview
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/login?next=%2F")
    screenshot(page, "login")
    page.fill("input[name=token]", "not-the-operator-token")
    page.click("form.login button[type=submit]")
    expect(page.locator("p.error")).to_have_text("Wrong token.")
    page.fill("input[name=token]", OPERATOR_TOKEN)
    page.click("form.login button[type=submit]")
    expect(page).to_have_url(base + "/")
    expect(page.locator("header .who")).to_have_text("admin")
    expect(page.locator('[data-k="numbers"]')).to_have_text(str(len(NUMBERS)))

    # the numbers imported through the CLI
    page.goto(f"{base}/numbers?number={NUMBERS[0]}")
    expect(page.locator("#number")).to_contain_text(DEVICE)
    page.goto(base + "/numbers")
    for number in NUMBERS:
        expect(page.locator("#numbers")).to_contain_text(str(number))
    screenshot(page, "numbers")

    # an SMS arrives and its push succeeds: the SMS log shows it pushed (the page updates itself: htmx)
    issued = partner(stack["edge"], action="GET_NUMBER", country="16", operator="any", service="tg", sum=0.35)
    assert issued["status"] == "SUCCESS", issued
    page.goto(base + "/sms")
    expect(page.locator("#sms")).to_contain_text("no SMS yet")
    sms_id = send_sms(stack["ingest"], stack_env["INGEST_TOKEN"], issued["number"], "Telegram code: 51920")
    pushed = page.locator(f'#sms tr[data-sms="{sms_id}"]')
    expect(pushed).to_have_attribute("data-status", "pushed")
    expect(pushed).to_contain_text("Telegram code: 51920")
    assert sms_id in fake_grizzly.delivered_ids()
    assert partner(stack["edge"], action="FINISH_ACTIVATION", activationId=issued["activationId"], status=3) == {
        "status": "SUCCESS"
    }
    page.goto(f"{base}/activations/{issued['activationId']}")
    expect(page.locator("#trail")).to_contain_text("push_attempt")
    expect(page.locator("#trail")).to_contain_text(f"sms_id={sms_id}")
    screenshot(page, "activation")
    page.goto(f"{base}/numbers?number={issued['number']}")  # the number's history names the sold activation
    expect(page.locator("#history")).to_contain_text(str(issued["activationId"]))
    screenshot(page, "number")

    # a push the platform refuses is parked; after the fix the operator re-pushes it
    refused = partner(stack["edge"], action="GET_NUMBER", country="16", operator="any", service="tg", sum=0.35)
    assert refused["status"] == "SUCCESS", refused
    fake_grizzly.fail_phones = {refused["number"]}
    parked_sms = send_sms(stack["ingest"], stack_env["INGEST_TOKEN"], refused["number"], "Telegram code: 77777")
    page.goto(base + "/queue")
    row = page.locator("#parked tr[data-parked]", has_text=str(refused["number"]))
    expect(row).to_have_count(1)  # parked after PUSHER_MAX_RETRY_AGE_S, shown by the live region
    screenshot(page, "queue")
    fake_grizzly.fail_phones = set()
    row.get_by_role("button", name="Re-push").click()
    expect(page.locator("p.flash.ok")).to_contain_text("re-pushed")
    assert fake_grizzly.wait_for(lambda fake: parked_sms in fake.delivered_ids(), 20), "the re-push did not arrive"
    expect(page.locator("#parked")).to_contain_text("nothing parked")

    # a CSV uploaded on the Import page: the progress bar follows the pool's import job to its end
    upload = tmp_path / "more.csv"
    upload.write_text("number,country,operator,device,slot\n447700900311,16,vodafone,goip-8,1\n"
                      "447700900312,16,vodafone,goip-8,2\n")  # fmt: skip
    page.goto(base + "/import")
    page.set_input_files("input[name=file]", str(upload))
    page.click("#import-form button[type=submit]")
    expect(page.locator('section[data-state="done"]')).to_have_count(1)
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#import-summary")).to_contain_text("2 added")
    screenshot(page, "import")

    # a device's cap, changed by the operator
    page.goto(base + "/devices")
    cap = page.get_by_label(f"cap of {DEVICE}")
    cap.fill("1")
    page.locator(f'tr[data-device="{DEVICE}"] form.cap button').click()
    expect(page.locator("p.flash.ok")).to_have_text(f"{DEVICE}: cap 1")
    expect(page.get_by_label(f"cap of {DEVICE}")).to_have_value("1")
    assert device_cap(stack_env) == 1
    screenshot(page, "devices")

    # a change without the session's CSRF token is refused (the cookie alone is not enough)
    forged = context.request.post(base + "/devices/set", form={"device": DEVICE, "cap": "9"}, max_redirects=0)
    assert forged.status == 403
    assert device_cap(stack_env) == 1

    # the change is in the operator audit under the operator's name (the pool records X-Operator)
    page.goto(base + "/audit")
    expect(page.locator('#audit tr[data-by="admin"]', has_text=f"device={DEVICE}")).to_have_count(1)
    expect(page.locator('#audit tr[data-by="cli"]', has_text="import")).to_have_count(1)  # grizzly-pool import
    expect(page.locator('#audit tr[data-by="admin"]', has_text="import")).to_have_count(1)  # the Import page
    expect(page.locator('#audit tr[data-by="admin"][data-event="parked_repush"]')).to_have_count(1)  # the pusher
    screenshot(page, "audit")

    # the other pages, for the docs
    for name in ("sms", "earnings", "upstreams", "activations"):
        page.goto(f"{base}/{name}")
        expect(page.locator("h1")).to_be_visible()
        screenshot(page, name)
    page.goto(base + "/")
    expect(page.locator("#sms-chart[data-drawn]")).to_have_count(1)  # Chart.js drew it (vendored, no CDN)
    screenshot(page, "overview")

    assert not failed_requests, failed_requests  # nothing the pages load is missing or blocked
    context.close()
    took = time.monotonic() - began
    assert took < 90, f"the browser test took {took:.0f} s"
