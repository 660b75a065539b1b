"""Real Redis and Kafka for the integration tests, and the services as real processes.

Three ways to get the servers, chosen by TEST_INFRA (default "auto"):
  env         TEST_REDIS_URL / TEST_KAFKA_BOOTSTRAP point at servers that already run
  containers  testcontainers starts them (a Docker engine must answer; images from TEST_REDIS_IMAGE /
              TEST_KAFKA_IMAGE, the official images by default), host networking on free ports
  local       redis-server and scripts/kafka.sh as local processes on free ports, data in a temp dir
  auto        env if those variables are set, else containers if a Docker engine answers, else local
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


def _repository_root() -> Path:
    """The checkout this package is installed from (editable, in the workspace): where scripts/kafka.sh is."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "scripts" / "kafka.sh").is_file():
            return parent
    raise RuntimeError("grizzly_testkit runs from a grizzly-partner checkout (scripts/kafka.sh not found)")


ROOT = _repository_root()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def wait_ready(python_args: list[str], timeout_s: float = 90.0) -> None:
    """python -m grizzly_common.ready ... (a real Kafka metadata round trip / Redis PING)."""
    subprocess.run(
        [sys.executable, "-m", "grizzly_common.ready", *python_args, "--timeout", str(timeout_s)],
        check=True,
        timeout=timeout_s + 30,
    )


class Broker(Protocol):
    @property
    def bootstrap(self) -> str: ...

    def stop(self) -> None: ...
    def start(self) -> None: ...


class RedisLike(Protocol):
    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...
    def start(self) -> None: ...


@dataclass
class LocalRedis:
    workdir: Path
    port: int = field(default_factory=free_port)
    appendfsync: str = "everysec"  # "always" for tests that kill Redis itself
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("redis-server is not installed: run scripts/stack.sh install")
        self.process = subprocess.Popen(
            [
                redis_server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_ready(["redis", self.url])

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def kill(self) -> None:
        """kill -9: Redis gets no chance to write anything more."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class LocalKafka:
    """scripts/kafka.sh with its own data dir and ports; stop/start keeps every record."""

    workdir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _script(self, command: str) -> None:
        env = dict(
            os.environ,
            KAFKA_WORK=str(self.workdir),
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            PYTHON=sys.executable,
        )
        subprocess.run(
            [str(ROOT / "scripts" / "kafka.sh"), command], check=True, env=env, timeout=180, stdout=subprocess.DEVNULL
        )

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")


def docker_engine_answers(timeout_s: float = 3.0) -> bool:
    """A Docker engine answers GET /_ping on DOCKER_HOST (unix:// or tcp://) or the default unix socket."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (name, int(port))
        else:
            return False
    except (OSError, ValueError):
        return False
    with sock:
        try:
            sock.settimeout(timeout_s)
            sock.connect(target)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        except OSError:
            return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] and reply.endswith(b"OK")


def docker_required() -> bool:
    """TEST_REQUIRE_DOCKER=1 (CI on a machine that has an engine): no engine is a failure, not a skip."""
    return os.environ.get("TEST_REQUIRE_DOCKER", "") in ("1", "true", "yes")


NO_ENGINE = "no Docker engine answers (scripts/containers.sh engine-start starts one)"


def _docker_container(image: str) -> object:
    """A generic testcontainers container on host networking (no Ryuk: its image cannot be pulled here)."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.container import DockerContainer

    return DockerContainer(image).with_kwargs(network_mode="host")


def _container_logs(container: object, lines: int = 40) -> str:
    try:
        wrapped = container.get_wrapped_container()  # type: ignore[attr-defined]
        return bytes(wrapped.logs(tail=lines)).decode(errors="replace")
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return f"(no logs: {exc!r})"


def _wait_container_ready(container: object, python_args: list[str], what: str) -> None:
    try:
        wait_ready(python_args)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{what} container not ready; its last log lines:\n{_container_logs(container)}") from exc


@dataclass
class ContainerRedis:
    """The official redis image (or TEST_REDIS_IMAGE, e.g. the local Debian one) on host networking, free port."""

    image: str = field(default_factory=lambda: os.environ.get("TEST_REDIS_IMAGE", "redis:7"))
    port: int = field(default_factory=free_port)
    container: object | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.container is not None:
            self.container.get_wrapped_container().start()  # type: ignore[attr-defined]
        else:
            container = _docker_container(self.image).with_command(  # type: ignore[attr-defined]
                f"redis-server --port {self.port} --bind 127.0.0.1 --appendonly yes --save ''"
            )
            container.start()
            self.container = container
        _wait_container_ready(self.container, ["redis", self.url], f"redis ({self.image})")

    def stop(self) -> None:
        """Stop and remove the container (and its anonymous volume)."""
        if self.container is not None:
            self.container.stop()  # type: ignore[attr-defined]
            self.container = None


@dataclass
class ContainerKafka:
    """The official apache/kafka image (or TEST_KAFKA_IMAGE) in KRaft mode on host networking.

    The local image (docker/kafka) reads the same KAFKA_* variables. stop()/start() stop and start the same
    container, so the log survives like a broker restart; remove() deletes it.
    """

    image: str = field(default_factory=lambda: os.environ.get("TEST_KAFKA_IMAGE", "apache/kafka:4.1.1"))
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    container: object | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.container is not None:
            self.container.get_wrapped_container().start()  # type: ignore[attr-defined]
        else:
            env = {
                "KAFKA_NODE_ID": "1",
                "KAFKA_PROCESS_ROLES": "broker,controller",
                "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{self.port}",
                "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{self.controller_port}",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
                "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
                "KAFKA_NUM_PARTITIONS": "4",
            }
            container = _docker_container(self.image)
            for name, value in env.items():
                container = container.with_env(name, value)  # type: ignore[attr-defined]
            container.start()  # type: ignore[attr-defined]
            self.container = container
        _wait_container_ready(self.container, ["kafka", self.bootstrap], f"kafka ({self.image})")

    def stop(self) -> None:
        if self.container is not None:
            self.container.get_wrapped_container().stop(timeout=30)  # type: ignore[attr-defined]

    def remove(self) -> None:
        if self.container is not None:
            self.container.stop()  # type: ignore[attr-defined]
            self.container = None


@dataclass
class ExternalServer:
    """A server the caller already runs (TEST_REDIS_URL / TEST_KAFKA_BOOTSTRAP): never stopped by the tests."""

    address: str

    @property
    def url(self) -> str:
        return self.address

    @property
    def bootstrap(self) -> str:
        return self.address

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def infra_mode() -> str:
    mode = os.environ.get("TEST_INFRA", "auto")
    if mode not in ("auto", "env", "containers", "local"):
        raise RuntimeError(f"TEST_INFRA must be auto, env, containers or local, got {mode!r}")
    if mode in ("env", "local"):
        return mode
    if mode == "auto" and os.environ.get("TEST_REDIS_URL") and os.environ.get("TEST_KAFKA_BOOTSTRAP"):
        return "env"
    if docker_engine_answers():
        return "containers"
    if docker_required():
        raise RuntimeError(f"TEST_REQUIRE_DOCKER=1 but {NO_ENGINE}")
    sys.stderr.write(f"{NO_ENGINE}: integration tests use local redis-server and Kafka processes\n")
    return "local"


@dataclass
class ServiceProcess:
    """One of our services as a real OS process (so a test can SIGTERM or kill -9 it)."""

    module: str  # e.g. "grizzly_pusher"
    env: dict[str, str]
    port: int  # the port its /readyz answers on
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    ready_port: int | None = None  # where /readyz answers when not on `port` (api-edge's ops port)

    def start(self, timeout_s: float = 60.0) -> None:
        env = dict(os.environ, **self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen([sys.executable, "-m", self.module], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.ready_port or self.port}/readyz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.module} not ready on :{self.port} after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait: a graceful shutdown."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout_s)
        self.process = None
        return code

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None
