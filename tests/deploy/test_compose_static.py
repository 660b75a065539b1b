"""docker-compose.yml, checked statically (no Docker needed): builds, environment, ports.

A compose service is matched to services/<dir> by its build (dockerfile or context under services/<dir>), its
image (grizzly-partner/<dir>) or its name. For each matched service:
  every variable the service cannot start without (no default) is set;
  every variable whose default is a loopback address (REDIS_URL, KAFKA_BOOTSTRAP, *_POOL_URL) is set: 127.0.0.1
  inside a container is the container itself;
  every variable set with the service's own prefix (EDGE_, POOL_, ...) is one the service reads (typos);
  the container port published is the port the service listens on.
Across all services, no two publish the same host port.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import env_scan

ROOT = env_scan.ROOT
COMPOSE_NAMES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")
PREFIXES = {
    "api-edge": "EDGE_",
    "pool": "POOL_",
    "sms-ingest": "INGEST_",
    "pusher": "PUSHER_",
    "simulator": "SIM_",
    "console": "CONSOLE_",
}
PORT_VARS = {
    "api-edge": "EDGE_PORT",
    "pool": "POOL_PORT",
    "sms-ingest": "INGEST_PORT",
    "pusher": "PUSHER_PORT",
    "console": "CONSOLE_PORT",
}
ALIASES = {"edge": "api-edge", "ingest": "sms-ingest", "sim": "simulator"}
WILDCARDS = ("", "0.0.0.0", "::")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


def compose_file() -> Path | None:
    return next((ROOT / name for name in COMPOSE_NAMES if (ROOT / name).exists()), None)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    path = compose_file()
    if path is None:
        pytest.skip(f"no {' / '.join(COMPOSE_NAMES)} at the repository root yet")
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose file without services"
    return data


def service_dir(name: str, spec: dict[str, Any]) -> str | None:
    dirs = env_scan.service_dirs()
    build = spec.get("build")
    if isinstance(build, dict | str):
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "" if isinstance(build, str) else build.get("dockerfile", "")
        for text in (dockerfile, context):
            match = re.search(r"services/([^/]+)", str(text))
            if match and match.group(1) in dirs:
                return match.group(1)
    image = str(spec.get("image", ""))
    match = re.search(r"grizzly-partner/([^:@]+)", image)
    if match and match.group(1) in dirs:
        return match.group(1)
    base = ALIASES.get(name, name)
    return base if base in dirs else None


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """The variables a compose service sets (environment + env_file when the file is in the repository)."""
    values: dict[str, str] = {}
    env_files = spec.get("env_file", [])
    for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
        path = ROOT / (entry if isinstance(entry, str) else entry["path"])
        if path.exists():
            for line in path.read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition("=")
                    values[key.strip().removeprefix("export ").strip()] = value.strip()
    env = spec.get("environment", {})
    if isinstance(env, list):
        for item in env:
            key, sep, value = str(item).partition("=")
            values[key] = value if sep else "${" + key + "}"  # "NAME" alone passes the host's value through
    else:
        values.update({str(k): "" if v is None else str(v) for k, v in env.items()})
    return values


def published_ports(spec: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(host ip, host port, container port, protocol) for every published port."""
    found: list[tuple[str, int, int, str]] = []
    for port in spec.get("ports", []):
        if isinstance(port, dict):
            if port.get("published") is None:
                continue
            host_ip, protocol = str(port.get("host_ip", "")), str(port.get("protocol", "tcp"))
            published, target = str(port["published"]), str(port["target"])
        else:
            text = INTERPOLATION.sub(lambda m: _default_of(m.group(0)), str(port))
            text, _, protocol = text.partition("/")
            protocol = protocol or "tcp"
            parts = text.rsplit(":", 2)
            if len(parts) == 1:
                continue  # container port only: Docker picks a free host port
            host_ip = parts[0] if len(parts) == 3 else ""
            published, target = parts[-2], parts[-1]
        host_range, target_range = _port_range(published), _port_range(target)
        if len(target_range) == 1 and len(host_range) > 1:
            target_range = target_range * len(host_range)  # "8000-8005:80": one of the host range
        found.extend((host_ip, h, t, protocol) for h, t in zip(host_range, target_range, strict=True))
    return found


def _port_range(text: str) -> list[int]:
    text = INTERPOLATION.sub(lambda m: _default_of(m.group(0)), text)
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def _default_of(expression: str) -> str:
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", expression)
    assert match, f"{expression}: a published port needs a default to be checked"
    return match.group(1)


def _concrete_upstreams(values: dict[str, str]) -> tuple[str, ...]:
    raw = INTERPOLATION.sub(lambda m: _default_of_or_blank(m.group(0)), values.get("UPSTREAMS", ""))
    names = tuple(u.strip() for u in raw.split(",") if u.strip())
    return names or ("grizzly",)


def _concrete_operators(values: dict[str, str]) -> tuple[str, ...]:
    raw = INTERPOLATION.sub(lambda m: _default_of_or_blank(m.group(0)), values.get("CONSOLE_OPERATORS", ""))
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _concrete(var: env_scan.EnvVar, values: dict[str, str]) -> list[str]:
    return var.concrete(_concrete_upstreams(values), _concrete_operators(values))


def _default_of_or_blank(expression: str) -> str:
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", expression)
    return match.group(1) if match else ""


def matched(compose: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    pairs = []
    for name, spec in compose["services"].items():
        directory = service_dir(name, spec or {})
        if directory is not None:
            pairs.append((name, directory, spec or {}))
    return pairs


def test_the_services_are_in_compose(compose: dict[str, Any]) -> None:
    found = {directory for _, directory, _ in matched(compose)}
    assert {"api-edge", "pool", "sms-ingest", "pusher", "console"} <= found


def test_every_build_context_and_dockerfile_exists(compose: dict[str, Any]) -> None:
    builds = 0
    for name, spec in compose["services"].items():
        build = (spec or {}).get("build")
        if build is None:
            continue
        builds += 1
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (context / dockerfile).is_file(), f"{name}: {context / dockerfile} does not exist"
    assert builds, "no service is built from this repository"


def test_every_variable_a_service_needs_is_set(compose: dict[str, Any]) -> None:
    problems = []
    for name, directory, spec in matched(compose):
        scanned = env_scan.scan_service(directory)
        values = environment(spec)
        host_network = spec.get("network_mode") == "host"
        for var in scanned.vars.values():
            for concrete in _concrete(var, values):
                if var.required and concrete not in values:
                    problems.append(f"{name}: {concrete} is required by services/{directory} ({var.where})")
                loopback = "127.0.0.1" in var.default or "localhost" in var.default
                if loopback and not host_network and concrete not in values:
                    problems.append(f"{name}: {concrete} defaults to {var.default}, the container itself")
    assert not problems, "\n".join(problems)


def test_no_unknown_variables_with_a_service_prefix(compose: dict[str, Any]) -> None:
    problems = []
    for name, directory, spec in matched(compose):
        scanned = env_scan.scan_service(directory)
        values = environment(spec)
        readable = {c for var in scanned.vars.values() for c in _concrete(var, values)}
        prefixes = [PREFIXES[directory]] if directory in PREFIXES else []
        if "UPSTREAMS" in readable:
            prefixes.append("UPSTREAM_")
        for key in values:
            if any(key.startswith(p) for p in prefixes) and key not in readable:
                problems.append(f"{name}: sets {key}, which services/{directory} never reads")
    assert not problems, "\n".join(problems)


def test_published_container_port_is_the_port_the_service_listens_on(compose: dict[str, Any]) -> None:
    for name, directory, spec in matched(compose):
        if directory not in PORT_VARS or spec.get("network_mode") == "host":
            continue
        values = environment(spec)
        var = env_scan.scan_service(directory).vars.get(PORT_VARS[directory])
        if var is None:
            continue
        raw = values.get(PORT_VARS[directory], var.default)
        listens = int(INTERPOLATION.sub(lambda m: _default_of(m.group(0)), raw))
        targets = {target for _, _, target, _ in published_ports(spec)}
        exposed = {int(str(p).partition("/")[0]) for p in spec.get("expose", [])}
        if targets or exposed:
            assert listens in targets | exposed, f"{name} listens on {listens}, publishes {sorted(targets)}"


def test_host_ports_do_not_clash(compose: dict[str, Any]) -> None:
    seen: dict[tuple[int, str], tuple[str, str]] = {}
    for name, spec in compose["services"].items():
        if (spec or {}).get("network_mode") == "host":
            continue
        for host_ip, host_port, _, protocol in published_ports(spec or {}):
            key = (host_port, protocol)
            if key in seen:
                other, other_ip = seen[key]
                # two specific, different addresses may share a port; a wildcard clashes with everything
                specific = host_ip not in WILDCARDS and other_ip not in WILDCARDS
                assert specific and host_ip != other_ip, f"{name} and {other} both publish {key}"
            seen[key] = (name, host_ip)


def test_environment_parsing_understands_compose_syntaxes() -> None:
    assert environment({"environment": ["A=1", "B", "C="]}) == {"A": "1", "B": "${B}", "C": ""}
    assert environment({"environment": {"A": 1, "B": None}}) == {"A": "1", "B": ""}
    assert _concrete_upstreams({"UPSTREAMS": "${UPSTREAMS:-grizzly,smshub}"}) == ("grizzly", "smshub")
    assert _concrete_operators({"CONSOLE_OPERATORS": "${CONSOLE_OPERATORS:-admin,ops.team}"}) == ("admin", "ops.team")
    family = env_scan.EnvVar("CONSOLE_OPERATOR_<NAME>_TOKEN", env_scan.NO_DEFAULT, "env_secret", "x.py:1")
    assert family.concrete((), ("admin", "ops.team")) == [
        "CONSOLE_OPERATOR_ADMIN_TOKEN",
        "CONSOLE_OPERATOR_OPS_TEAM_TOKEN",
    ]


def test_port_parsing_understands_compose_syntaxes() -> None:
    spec = {
        "ports": [
            "8080:8080",
            "127.0.0.1:8081:81/udp",
            "9000-9001:9000-9001",
            "${EDGE_PORT:-8088}:8080",
            "5000",
            {"target": 80, "published": 8089, "host_ip": "0.0.0.0"},
        ]
    }
    assert published_ports(spec) == [
        ("", 8080, 8080, "tcp"),
        ("127.0.0.1", 8081, 81, "udp"),
        ("", 9000, 9000, "tcp"),
        ("", 9001, 9001, "tcp"),
        ("", 8088, 8080, "tcp"),
        ("0.0.0.0", 8089, 80, "tcp"),
    ]


def test_the_console_sends_the_tokens_the_admin_apis_check(compose: dict[str, Any]) -> None:
    services = {directory: environment(spec) for _, directory, spec in matched(compose)}
    console = services["console"]
    assert console["POOL_ADMIN_TOKEN"] == services["pool"]["POOL_ADMIN_TOKEN"]
    assert console["PUSHER_ADMIN_TOKEN"] == services["pusher"]["PUSHER_ADMIN_TOKEN"]
    # and it calls them on the ports they listen on (host networking: 127.0.0.1)
    assert console["CONSOLE_POOL_ADMIN_URL"] == "http://127.0.0.1:" + services["pool"]["POOL_ADMIN_PORT"]
    assert console["CONSOLE_PUSHER_ADMIN_URL"] == "http://127.0.0.1:" + services["pusher"]["PUSHER_PORT"]
