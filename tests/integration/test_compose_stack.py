"""The containerized stack (docker-compose.yml + docker-compose.ci.yml, local images, host networking).

Kafka, Redis, the four services and the console run as containers started by docker-compose; every health check
must turn healthy; the console answers its login page (templates and static files are in its image) and is ready
(both admin APIs answer its tokens); the platform's cycle runs through the containerized api-edge, and SMS travel
sms-ingest -> Kafka -> pusher to a fake Grizzly on the host. The edge serves TLS itself here (EDGE_TLS_*, a
certificate made at test time and mounted through EDGE_TLS_DIR, as docs/security.md tells an operator to): every
partner call of these tests is https with the certificate verified; the staging test (test_compose_staging.py) keeps
plain http. `docker stop` on the pusher in the middle of a burst loses no SMS and pushes none twice after SUCCESS.
`down -v` leaves nothing behind.

Skipped (one line) when no Docker engine answers, unless TEST_REQUIRE_DOCKER=1: then it fails.
The images are the content-tagged local ones (scripts/containers.sh build); missing ones are built first.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from grizzly_testkit.infra import NO_ENGINE, ROOT, docker_engine_answers, docker_required, free_port

from tests.integration.fake_grizzly import FakeGrizzly
from tests.integration.test_edge_tls import self_signed

pytestmark = pytest.mark.slow

KEY = "compose-partner-key-0001"
ADMIN_TOKEN = "compose-admin-token-0001"
INGEST_TOKEN = "compose-ingest-token-0001"
PUSHER_ADMIN_TOKEN = "compose-pusher-admin-token-0001"
SERVICES = ("kafka", "redis", "pool", "api-edge", "sms-ingest", "pusher", "console")
BURST = 500


def _unavailable(reason: str) -> None:
    if docker_required():
        pytest.fail(f"TEST_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


def _image_env(services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """The current content tags (scripts/containers.sh env); builds whatever image of `services` is missing."""
    script = str(ROOT / "scripts" / "containers.sh")
    images = subprocess.run([script, "env"], check=True, capture_output=True, text=True, timeout=120).stdout
    env = {}
    for line in images.splitlines():
        for item in line.removeprefix("export ").split():
            name, _, value = item.partition("=")
            if name.startswith("GRIZZLY_") and name.endswith("_IMAGE"):
                env[name] = value
    wanted = [env[f"GRIZZLY_{name.upper().replace('-', '_')}_IMAGE"] for name in services]
    missing = subprocess.run(
        ["docker", "image", "inspect", *wanted], capture_output=True, text=True, timeout=60
    ).returncode
    if missing:
        build = subprocess.run([script, "build", "all"], capture_output=True, text=True, timeout=900)
        if build.returncode != 0:
            pytest.fail(f"scripts/containers.sh build all failed:\n{build.stderr[-3000:]}")
        return _image_env(services)
    return env


@dataclass
class ComposeStack:
    project: str
    env: dict[str, str]
    services: tuple[str, ...] = SERVICES  # the ones health() watches
    tls_cert: Path | None = None  # the edge's certificate on the host when it serves TLS

    @property
    def partner_url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://127.0.0.1:{self.port('EDGE_PORT')}/"

    def partner_verify(self) -> ssl.SSLContext | bool:
        """Trust exactly the edge's certificate (hostname 127.0.0.1 checked against its subjectAltName)."""
        return ssl.create_default_context(cafile=str(self.tls_cert)) if self.tls_cert else True

    def compose(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_compose_command(), "-p", self.project, "-f", "docker-compose.yml", "-f", "docker-compose.ci.yml", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def container(self, service: str) -> str:
        """The id of the service's one container."""
        listed = subprocess.run(
            [
                "docker",
                "ps",
                "-aq",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        [found] = listed.stdout.split()
        return found

    def health(self) -> dict[str, str]:
        ids = {service: self.container(service) for service in self.services}
        fmt = "{{.Id}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"
        listed = subprocess.run(
            ["docker", "inspect", "--format", fmt, *ids.values()],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        status = dict(line.split() for line in listed.stdout.splitlines())
        return {service: next(v for k, v in status.items() if k.startswith(cid)) for service, cid in ids.items()}

    def docker(self, *args: str) -> None:
        subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=120)

    def wait_healthy(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = self.health()
            if all(status == "healthy" for status in health.values()):
                return
            time.sleep(0.5)
        logs = self.compose("logs", "--tail", "30").stdout
        raise AssertionError(f"not every service turned healthy: {health}\n{logs[-6000:]}")

    def port(self, name: str) -> int:
        return int(self.env[name])

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("ps -a", "volume ls", "network ls"):
            listed = subprocess.run(
                ["docker", *kind.split(), "-q", "--filter", label], capture_output=True, text=True, timeout=60
            )
            found += [f"{kind.split()[0]} {item}" for item in listed.stdout.split()]
        return found


PORT_VARIABLES = (
    "REDIS_PORT",
    "KAFKA_PORT",
    "KAFKA_CONTROLLER_PORT",
    "POOL_PORT",
    "POOL_ADMIN_PORT",
    "EDGE_PORT",
    "EDGE_OPS_PORT",
    "INGEST_PORT",
    "PUSHER_PORT",
    "CONSOLE_PORT",
)


def compose_ports(*extra: str) -> dict[str, str]:
    """A free port for every listener of the CI stack (skips or fails, as TEST_REQUIRE_DOCKER says, without Docker)."""
    if not docker_engine_answers():
        _unavailable(NO_ENGINE)
    if not shutil.which("docker-compose") and not shutil.which("docker"):
        _unavailable("neither docker-compose nor docker is installed (scripts/containers.sh install)")
    return {name: str(free_port()) for name in (*PORT_VARIABLES, *extra)}


def compose_env(ports: dict[str, str], images: dict[str, str], **overrides: str) -> dict[str, str]:
    """The environment docker-compose gets: a clean one (no host settings leak in), images, ports and secrets."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        **images,
        **ports,
        "UPSTREAM_GRIZZLY_KEY": KEY,
        "POOL_ADMIN_TOKEN": ADMIN_TOKEN,
        "INGEST_TOKEN": INGEST_TOKEN,
        "POOL_API_TOKEN": "compose-pool-api-token-0001",
        "PUSHER_ADMIN_TOKEN": PUSHER_ADMIN_TOKEN,
        "CONSOLE_OPERATOR_ADMIN_TOKEN": "compose-console-admin-token-0001",
        "CONSOLE_SESSION_SECRET": "compose-console-session-secret-0001",
        "PUSHER_RETRY_S": "1",
        "POOL_NUMBER_CHECK": "off",  # Ofcom drama numbers (reserved, invalid by the phone-number plan)
        **overrides,
    }


@pytest.fixture(scope="module")
def compose_fake() -> Iterator[FakeGrizzly]:
    fake = FakeGrizzly(key=KEY)
    fake.start()
    yield fake
    fake.stop()


def edge_tls_dir(directory: Path) -> Path:
    """A certificate for 127.0.0.1 in `directory`, readable by the edge's user in the container (uid 10001)."""
    cert, key = self_signed(directory)
    directory.chmod(0o755)  # mounted as /tls itself: the container's user must traverse it
    try:
        os.chown(key, 10001, 10001)  # as docs/security.md says: the key readable by the edge's user only
        key.chmod(0o400)
    except PermissionError:  # not root: a throwaway key may be readable by all
        key.chmod(0o644)
    return cert


@pytest.fixture(scope="module")
def compose_stack(compose_fake: FakeGrizzly, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    ports = compose_ports()
    tls = tmp_path_factory.mktemp("edge-tls")
    cert = edge_tls_dir(tls)
    env = compose_env(
        ports,
        _image_env(),
        UPSTREAM_GRIZZLY_PUSH_URL=compose_fake.url,
        PUSHER_CONCURRENCY="4",
        KAFKA_TOPIC_PREFIX=f"c{uuid.uuid4().hex[:8]}-",
        EDGE_TLS_DIR=str(tls),
        EDGE_TLS_CERTFILE="/tls/cert.pem",
        EDGE_TLS_KEYFILE="/tls/key.pem",
    )
    stack = ComposeStack(project=f"grizzlyt{uuid.uuid4().hex[:8]}", env=env, tls_cert=cert)
    up = stack.compose("up", "-d", "--no-build")
    try:
        assert up.returncode == 0, up.stderr[-4000:]
        stack.wait_healthy()
        yield stack
    finally:
        stack.compose("down", "-v", "--timeout", "20")


def _admin(stack: ComposeStack) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stack.port('POOL_ADMIN_PORT')}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )


def _partner(stack: ComposeStack, **body: Any) -> dict[str, Any]:
    reply = httpx.post(stack.partner_url, json={"key": KEY, **body}, timeout=10, verify=stack.partner_verify())
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


def _add_numbers(stack: ComposeStack, numbers: list[int], device: str, country: str = "16") -> None:
    with _admin(stack) as admin:
        added = admin.post(
            "/admin/numbers",
            json={
                "numbers": [
                    {"number": n, "country": country, "operator": "vodafone", "device": device, "slot": i}
                    for i, n in enumerate(numbers)
                ]
            },
        )
        assert added.status_code == 200, added.text


def _send_sms(client: httpx.Client, stack: ComposeStack, number: int, text: str, sms_ref: str) -> int:
    reply = client.post(
        f"http://127.0.0.1:{stack.port('INGEST_PORT')}/v1/sms",
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        json={"number": number, "from": "Telegram", "text": text, "id": sms_ref},
    )
    assert reply.status_code == 200, reply.text
    return int(reply.json()["smsId"])


def test_compose_stack_serves_the_platform_cycle(compose_stack: ComposeStack, compose_fake: FakeGrizzly) -> None:
    assert set(compose_stack.health().values()) == {"healthy"}
    numbers = [447700800001, 447700800002]
    _add_numbers(compose_stack, numbers, "compose-bank-1")

    services = _partner(compose_stack, action="GET_SERVICES")
    assert services["status"] == "SUCCESS"
    [country] = [c for c in services["countryList"] if c["country"] == "16"]
    assert country["operatorMap"]["any"]["tg"] == 2

    issued = _partner(compose_stack, action="GET_NUMBER", country="16", operator="any", service="tg", sum=0.35)
    assert issued["status"] == "SUCCESS"
    assert issued["number"] in numbers

    with httpx.Client(timeout=10) as client:
        sms_id = _send_sms(client, compose_stack, issued["number"], "Telegram code: 51920", "compose-1")
    assert compose_fake.wait_for(lambda fake: [p for p in fake.successes() if p.body["smsId"] == sms_id], 60), (
        "no PUSH_SMS from the containerized pusher"
    )
    [push] = [p for p in compose_fake.successes() if p.body["smsId"] == sms_id]
    assert push.body["phone"] == issued["number"] and push.body["text"] == "Telegram code: 51920"

    finish = {"action": "FINISH_ACTIVATION", "activationId": issued["activationId"], "status": 3}
    assert _partner(compose_stack, **finish) == {"status": "SUCCESS"}
    assert _partner(compose_stack, **finish) == {"status": "SUCCESS"}


def test_compose_edge_serves_the_partner_url_over_https_with_its_own_certificate(compose_stack: ComposeStack) -> None:
    """Issue 17: TLS shown working in compose. The edge container presents the certificate made for this run, the
    platform's GET_SERVICES succeeds with it verified, and neither plain http nor an unknown certificate gets in."""
    assert compose_stack.tls_cert is not None and compose_stack.partner_url.startswith("https://")
    port = compose_stack.port("EDGE_PORT")
    served = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(compose_stack.tls_cert.read_text())
    with httpx.Client(verify=compose_stack.partner_verify(), timeout=10) as client:
        reply = client.post(compose_stack.partner_url, json={"action": "GET_SERVICES", "key": KEY})
        assert reply.status_code == 200 and reply.json()["status"] == "SUCCESS"
        assert reply.http_version == "HTTP/1.1"
        # the ops port is TLS too: what the compose healthcheck (https when EDGE_TLS_CERTFILE is set) calls
        ops = client.get(f"https://127.0.0.1:{compose_stack.port('EDGE_OPS_PORT')}/readyz")
        assert ops.status_code == 200
    with pytest.raises(httpx.TransportError):  # plain http on the TLS port
        httpx.post(f"http://127.0.0.1:{port}/", json={"action": "GET_SERVICES", "key": KEY}, timeout=5)
    with pytest.raises(httpx.ConnectError):  # the system's trust store does not know this certificate
        httpx.post(compose_stack.partner_url, json={"action": "GET_SERVICES", "key": KEY}, timeout=5)


def test_compose_console_serves_its_pages_and_reaches_both_admin_apis(compose_stack: ComposeStack) -> None:
    console = f"http://127.0.0.1:{compose_stack.port('CONSOLE_PORT')}"
    with httpx.Client(base_url=console, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")  # both admin APIs answer the tokens compose gave the console
        assert ready.status_code == 200, ready.text
        page = client.get("/login")
        assert page.status_code == 200 and "<form" in page.text
        # the login page's own scripts and styles: the package data made it into the image
        assets = set(re.findall(r"""(?:src|href)=["'](/static/[^"'?#]+)""", page.text))
        assert assets, "the login page links no static file"
        for asset in sorted(assets):
            assert client.get(asset).status_code == 200, asset
        assert client.get("/").status_code in {302, 303, 401}, "a page without a session"


def test_docker_stop_on_the_pusher_mid_burst_loses_no_sms_and_pushes_none_twice(
    compose_stack: ComposeStack, compose_fake: FakeGrizzly
) -> None:
    number = 447700800099
    _add_numbers(compose_stack, [number], "compose-bank-2", country="17")  # its own country: the only candidate
    issued = _partner(compose_stack, action="GET_NUMBER", country="17", operator="any", service="wa", sum=0.35)
    assert issued["status"] == "SUCCESS" and issued["number"] == number
    compose_fake.delay_s = 0.01  # a platform that takes a moment: pushes are in flight when the pusher stops

    sent: list[int] = []
    errors: list[BaseException] = []

    def burst() -> None:
        try:
            with httpx.Client(timeout=15) as client:
                for i in range(BURST):
                    sent.append(_send_sms(client, compose_stack, number, f"burst code {i:04d}", f"burst-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    def burst_pushes(fake: FakeGrizzly) -> list[Any]:
        return [p for p in fake.pushes if str(p.body.get("text", "")).startswith("burst code")]

    sender = threading.Thread(target=burst)
    sender.start()
    try:
        assert compose_fake.wait_for(lambda fake: len(burst_pushes(fake)) >= BURST // 5, 60), "the burst never started"
        pusher = compose_stack.container("pusher")
        compose_stack.docker("stop", "-t", "30", pusher)  # SIGTERM, SIGKILL after 30 s
        compose_stack.docker("start", pusher)
    finally:
        sender.join(timeout=120)
    assert not errors, errors
    assert len(set(sent)) == BURST

    def all_delivered(fake: FakeGrizzly) -> bool:
        return {p.body["smsId"] for p in burst_pushes(fake) if p.answered_success} >= set(sent)

    assert compose_fake.wait_for(all_delivered, 180), "SMS lost across docker stop/start of the pusher"
    time.sleep(2 * float(compose_stack.env["PUSHER_RETRY_S"]))  # a late duplicate would show up by now
    pushes = burst_pushes(compose_fake)
    successes = Counter(p.body["smsId"] for p in pushes if p.answered_success)
    assert set(successes) == set(sent)
    assert [sms for sms, count in successes.items() if count > 1] == [], "pushed twice after SUCCESS"
    first_success: dict[Any, float] = {}
    for push in sorted(pushes, key=lambda p: p.at):
        if push.answered_success:
            first_success.setdefault(push.body["smsId"], push.at)
        else:
            assert push.body["smsId"] not in first_success, "a push after SUCCESS"


def test_compose_down_removes_everything(compose_stack: ComposeStack) -> None:
    down = compose_stack.compose("down", "-v", "--timeout", "20")
    assert down.returncode == 0, down.stderr[-4000:]
    assert compose_stack.leftovers() == []
