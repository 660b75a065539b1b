"""The Kubernetes manifests (deploy/k8s), rendered in Python and checked offline.

Every object validates against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields fail);
the KEDA ScaledObject (a CRD) against a small schema of our own. Then the rules the services depend on.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy import env_scan
from tests.deploy.kustomize import Obj, load_docs, render

K8S = env_scan.ROOT / "deploy" / "k8s"
BASE = K8S / "base"
STAGING = K8S / "overlays" / "staging"
KEDA = K8S / "components" / "keda"
# the oldest Kubernetes minor we support, and the newest the validator knows
K8S_VERSIONS = ("1.28", kubernetes_validate.latest_version())

SERVICES = ("api-edge", "pool", "sms-ingest", "pusher", "console")  # Deployment name = services/<dir> = image name
PORT_VARS = {
    "api-edge": "EDGE_PORT",
    "pool": "POOL_PORT",
    "sms-ingest": "INGEST_PORT",
    "pusher": "PUSHER_PORT",
    "console": "CONSOLE_PORT",
}
EXTRA_PORT_VARS = {("pool", "admin"): "POOL_ADMIN_PORT", ("api-edge", "ops"): "EDGE_OPS_PORT"}
PROBE_PORT_VARS = {"api-edge": "EDGE_OPS_PORT"}  # health off the partner URL
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD)$")
RENDERINGS = {
    "base": (BASE, ()),
    "staging": (STAGING, ()),
    "base+keda": (BASE, (KEDA,)),
}


@cache
def _render(name: str) -> tuple[Obj, ...]:
    directory, components = RENDERINGS[name]
    return tuple(render(directory, components))


def objects(name: str, kind: str) -> list[Obj]:
    return [obj for obj in _render(name) if obj["kind"] == kind]


def one(name: str, kind: str, object_name: str) -> Obj:
    [found] = [obj for obj in objects(name, kind) if obj["metadata"]["name"] == object_name]
    return found


def container(deployment: Obj) -> Obj:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def config_data(name: str) -> dict[str, str]:
    return dict(one(name, "ConfigMap", "grizzly-config")["data"])


@cache
def secret_example() -> Obj:
    [secret] = load_docs(BASE / "secret.example.yaml")
    return secret


def resolve(name: str, env_entry: Obj) -> str | None:
    """The value an env entry gets in the pod (None: from the Secret)."""
    if "value" in env_entry:
        return str(env_entry["value"])
    ref = env_entry["valueFrom"]
    if "configMapKeyRef" in ref:
        return config_data(name)[ref["configMapKeyRef"]["key"]]
    return None


def env_value(name: str, deployment: Obj, var: str) -> str | None:
    for entry in container(deployment).get("env", []):
        if entry["name"] == var:
            return resolve(name, entry)
    raise KeyError(var)


def port_number(ctr: Obj, port: Any) -> int:
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in ctr["ports"]}, f"{ctr['name']}: port {port} not exposed"
        return port
    [number] = [p["containerPort"] for p in ctr["ports"] if p["name"] == port]
    return int(number)


# ---------------------------------------------------------------- schema validation


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_every_object_validates_against_the_kubernetes_schema(rendering: str, version: str) -> None:
    checked = 0
    for obj in _render(rendering):
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: test_keda_scaled_object_shape
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 13  # ConfigMap + 5 x (Deployment, Service) + 2 PDBs (+ the HPA unless KEDA replaces it)


def test_the_secret_example_validates_against_the_kubernetes_schema() -> None:
    kubernetes_validate.validate(secret_example(), K8S_VERSIONS[-1], strict=True)


def test_schema_validation_is_not_a_no_op() -> None:
    broken = dict(one("base", "Deployment", "pusher"))
    broken["spec"] = dict(broken["spec"], replica=2)  # misspelled field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


# ---------------------------------------------------------------- deployments


@pytest.mark.parametrize("rendering", ["base", "staging"])
def test_each_service_has_a_deployment_and_a_service_selecting_it(rendering: str) -> None:
    for service in SERVICES:
        deployment = one(rendering, "Deployment", service)
        assert deployment["apiVersion"] == "apps/v1"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        svc = one(rendering, "Service", service)
        assert svc["spec"]["selector"].items() <= labels.items()
        ctr = container(deployment)
        assert ctr["image"].startswith(f"grizzly-partner/{service}:")
        for port in svc["spec"]["ports"]:
            assert port_number(ctr, port["targetPort"]) > 0


@pytest.mark.parametrize("service", SERVICES)
def test_probes_hit_healthz_and_readyz_on_the_service_port(service: str) -> None:
    deployment = one("base", "Deployment", service)
    ctr = container(deployment)
    app_port = int(env_value("base", deployment, PROBE_PORT_VARS.get(service, PORT_VARS[service])) or 0)
    liveness, readiness = ctr["livenessProbe"]["httpGet"], ctr["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    # the console stays in its Service when the pool or pusher is down: its pages say which panel failed and why
    assert readiness["path"] == ("/healthz" if service == "console" else "/readyz")
    assert port_number(ctr, liveness["port"]) == app_port
    assert port_number(ctr, readiness["port"]) == app_port
    if "startupProbe" in ctr:
        assert port_number(ctr, ctr["startupProbe"]["httpGet"]["port"]) == app_port
    # the exposed ports are the ports the process listens on
    for port in ctr["ports"]:
        var = PORT_VARS[service] if port["name"] == "http" else EXTRA_PORT_VARS[(service, port["name"])]
        assert int(env_value("base", deployment, var) or 0) == port["containerPort"], var


@pytest.mark.parametrize("service", SERVICES)
def test_resources_are_requested_and_limited(service: str) -> None:
    resources = container(one("base", "Deployment", service))["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), section


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root_with_a_read_only_root_filesystem(service: str) -> None:
    pod = one("base", "Deployment", service)["spec"]["template"]["spec"]
    ctr = container(one("base", "Deployment", service))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = ctr["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    # a Service named pool would otherwise inject POOL_PORT=tcp://10.x.x.x:8081 into every pod
    assert pod["enableServiceLinks"] is False


def _uvicorn_grace_s() -> float:
    text = (env_scan.ROOT / "libs/common/src/grizzly_common/web.py").read_text()
    match = re.search(r"timeout_graceful_shutdown=(\d+(?:\.\d+)?)", text)
    assert match, "grizzly_common.web.serve no longer sets timeout_graceful_shutdown"
    return float(match.group(1))


@pytest.mark.parametrize("service", SERVICES)
def test_grace_period_covers_pre_stop_sleep_and_the_service_shutdown(service: str) -> None:
    deployment = one("base", "Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    command = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    assert pre_stop_s >= 3, "endpoints need a few seconds to drop the pod before SIGTERM"
    own_grace_s = _uvicorn_grace_s()
    if service == "pusher":
        own_grace_s = max(own_grace_s, float(env_value("base", deployment, "PUSHER_SHUTDOWN_GRACE_S") or 0))
    assert pod["terminationGracePeriodSeconds"] > pre_stop_s + own_grace_s


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("rendering", ["base", "staging"])
def test_every_env_reference_exists_in_the_config_map_or_the_secret(rendering: str) -> None:
    data = config_data(rendering)
    secret_keys = set(secret_example()["stringData"])
    used_config_keys = set()
    for deployment in objects(rendering, "Deployment"):
        for entry in container(deployment).get("env", []):
            ref = entry.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["name"] == "grizzly-config"
                assert ref["configMapKeyRef"]["key"] in data, entry["name"]
                used_config_keys.add(ref["configMapKeyRef"]["key"])
            elif "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["name"] == "grizzly-secrets"
                assert ref["secretKeyRef"]["key"] in secret_keys, entry["name"]
            else:
                assert "value" in entry, entry
        assert "envFrom" not in container(deployment), "explicit env only: each service gets what it reads"
    assert set(data) == used_config_keys, "ConfigMap keys no Deployment uses"


@pytest.mark.parametrize("rendering", ["base", "staging"])
def test_no_secret_values_in_the_config_map(rendering: str) -> None:
    data = config_data(rendering)
    secret_keys = set(secret_example()["stringData"])
    every_secret_var = {v.name for s in env_scan.scan_all().values() for v in s.vars.values() if v.secret}
    for key, value in data.items():
        assert not SECRET_NAME.search(key), key
        assert key not in secret_keys
        assert not any(var == key or re.fullmatch(var.replace("<NAME>", "[A-Z0-9_]+"), key) for var in every_secret_var)
        assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), f"{key} carries a password in its URL"
    for deployment in objects(rendering, "Deployment"):
        for entry in container(deployment).get("env", []):
            if SECRET_NAME.search(entry["name"]):
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{entry['name']} must come from the Secret"


def test_the_secret_example_holds_placeholders_only_and_is_not_deployed() -> None:
    secret = secret_example()
    assert secret["metadata"]["name"] == "grizzly-secrets"
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert value.startswith("REPLACE_ME"), key
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    for rendering in RENDERINGS:
        assert not objects(rendering, "Secret")


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_env_matches_what_the_service_reads(service: str) -> None:
    scanned = env_scan.scan_service(service)
    if not scanned.has_settings:
        pytest.skip(f"services/{service} has no settings module yet")
    deployment = one("base", "Deployment", service)
    upstreams = tuple(u.strip() for u in config_data("base")["UPSTREAMS"].split(",") if u.strip())
    operators = tuple(o.strip() for o in config_data("base")["CONSOLE_OPERATORS"].split(",") if o.strip())
    readable = {name: var for var in scanned.vars.values() for name in var.concrete(upstreams, operators)}
    entries = {entry["name"]: entry for entry in container(deployment).get("env", [])}
    for name, entry in entries.items():
        assert name in readable, f"{service} sets {name}, which services/{service} never reads"
        if readable[name].secret:
            assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name} is a secret"
    for name, var in readable.items():
        if var.required:
            assert name in entries, f"{service} requires {name}"
        if "127.0.0.1" in var.default or "localhost" in var.default:
            assert name in entries, f"{name} defaults to a loopback address ({var.default}): wrong in a pod"
    # api-edge, pool and pusher must agree on the upstream list (keys, country maps, pushes)
    if "UPSTREAMS" in readable:
        assert entries["UPSTREAMS"]["valueFrom"]["configMapKeyRef"]["key"] == "UPSTREAMS"


def test_inbound_topic_partitions_agree_and_bound_the_pusher_replicas() -> None:
    data = config_data("base")
    assert data["INGEST_TOPIC_PARTITIONS"] == data["PUSHER_TOPIC_PARTITIONS"], "first creator picks the count"
    partitions = int(data["PUSHER_TOPIC_PARTITIONS"])
    for rendering in ("base", "staging"):
        assert one(rendering, "HorizontalPodAutoscaler", "pusher")["spec"]["maxReplicas"] <= partitions
    assert one("base+keda", "ScaledObject", "pusher")["spec"]["maxReplicaCount"] <= partitions


# ---------------------------------------------------------------- scaling and disruption


@pytest.mark.parametrize("rendering", ["base", "staging"])
def test_pusher_hpa_targets_the_pusher_deployment_on_cpu(rendering: str) -> None:
    [hpa] = objects(rendering, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "pusher")
    one(rendering, "Deployment", "pusher")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in one(rendering, "Deployment", "pusher")["spec"], "the autoscaler owns the count"
    # the pusher requests CPU, or a CPU utilisation target means nothing
    assert "cpu" in container(one(rendering, "Deployment", "pusher"))["resources"]["requests"]


@pytest.mark.parametrize("rendering", ["base", "staging"])
@pytest.mark.parametrize("service", ["api-edge", "pool"])
def test_pod_disruption_budget_protects_edge_and_pool_without_blocking_drains(rendering: str, service: str) -> None:
    pdb = one(rendering, "PodDisruptionBudget", service)
    deployment = one(rendering, "Deployment", service)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] >= 1
    assert deployment["spec"].get("replicas", 1) > pdb["spec"]["minAvailable"], "one pod must be evictable"


# ---------------------------------------------------------------- KEDA component

SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "kafka"},
                            "metadata": {
                                "type": "object",
                                "required": ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"],
                                # KEDA reads trigger metadata as strings: an unquoted number is rejected
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_keda_component_is_not_in_the_base() -> None:
    for rendering in ("base", "staging"):
        assert not [obj for obj in _render(rendering) if obj["apiVersion"].startswith("keda.sh/")]
    kustomization = yaml.safe_load((KEDA / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"


@pytest.mark.parametrize("rendering", ["base+keda"])
def test_keda_scaled_object_shape(rendering: str) -> None:
    scaled = one(rendering, "ScaledObject", "pusher")
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "pusher"
    one(rendering, "Deployment", "pusher")
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], "never scale the pusher to zero"


def test_keda_replaces_the_cpu_hpa_and_watches_the_pushers_own_brokers_group_and_topic() -> None:
    assert not objects("base+keda", "HorizontalPodAutoscaler"), "two autoscalers on one Deployment fight"
    [trigger] = one("base+keda", "ScaledObject", "pusher")["spec"]["triggers"]
    data = config_data("base+keda")
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == data["KAFKA_BOOTSTRAP"]
    assert meta["topic"] == data["KAFKA_TOPIC_PREFIX"] + "inbound-messages"
    assert meta["consumerGroup"] == data["PUSHER_GROUP_ID"]


def test_keda_topic_is_the_inbound_topic_of_grizzly_common() -> None:
    from grizzly_common.events import Topics

    [trigger] = one("base+keda", "ScaledObject", "pusher")["spec"]["triggers"]
    assert trigger["metadata"]["topic"] == Topics(config_data("base")["KAFKA_TOPIC_PREFIX"]).inbound


# ---------------------------------------------------------------- staging overlay


def test_staging_pins_images_namespace_and_its_own_topics() -> None:
    for obj in _render("staging"):
        assert obj["metadata"]["namespace"] == "grizzly-staging"
    for service in SERVICES:
        assert container(one("staging", "Deployment", service))["image"] == f"grizzly-partner/{service}:staging"
    staging, base = config_data("staging"), config_data("base")
    assert staging["KAFKA_TOPIC_PREFIX"] and staging["KAFKA_TOPIC_PREFIX"] != base["KAFKA_TOPIC_PREFIX"]
    assert set(staging) == set(base), "the overlay patches values, it adds no keys"
    # the base stays as written: rendering the overlay did not modify it
    assert all("namespace" not in obj["metadata"] for obj in _render("base"))


def _policy_ports(policy: Obj) -> dict[int, list[Any]]:
    """port -> the `from` peers allowed to reach it ([] = anyone)."""
    found: dict[int, list[Any]] = {}
    for rule in policy["spec"].get("ingress", []):
        for port in rule.get("ports", []):
            found.setdefault(int(port["port"]), []).extend(rule.get("from", []))
    return found


def _peer_names(peers: list[Any]) -> set[str | None]:
    """The app.kubernetes.io/name each peer selects (None: a peer selected by another label, or any pod)."""
    return {peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") for peer in peers}


@pytest.mark.parametrize("rendering", ["base", "staging"])
def test_network_policies_let_only_the_callers_reach_each_port(rendering: str) -> None:
    policies = {obj["metadata"]["name"]: obj for obj in objects(rendering, "NetworkPolicy")}
    deny = policies["grizzly-default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "grizzly-partner"}}
    assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    pool = _policy_ports(policies["pool"])
    assert _peer_names(pool[8081]) == {"api-edge", "sms-ingest", "pusher", None}  # None: the metrics scraper
    # the admin API: the console, and an operator's toolbox pod
    assert [peer["podSelector"]["matchLabels"] for peer in pool[8082]] == [
        {"app.kubernetes.io/name": "console"},
        {"grizzly-partner/pool-admin": "true"},
    ]
    assert all("namespaceSelector" not in peer for peer in pool[8082]), "the admin API: this namespace only"
    edge = _policy_ports(policies["api-edge"])
    assert edge[8080] == [] and edge[8086] and all("podSelector" in peer for peer in edge[8086])
    pusher = _policy_ports(policies["pusher"])
    assert _peer_names(pusher[8084]) == {"console", None}  # None: the metrics scraper
    assert [p for p in pusher[8084] if "namespaceSelector" in p] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"grizzly-partner/scrape": "true"}}}
    ]
    # every port a Deployment listens on is covered by the policy of its pods
    for deployment in objects(rendering, "Deployment"):
        name = deployment["metadata"]["name"]
        ports = {p["containerPort"] for p in container(deployment)["ports"]}
        assert ports == set(_policy_ports(policies[name])), name


@pytest.mark.parametrize("rendering", ["base", "staging"])
def test_the_console_accepts_only_the_ingress_controller_and_reaches_only_the_admin_apis(rendering: str) -> None:
    policy = one(rendering, "NetworkPolicy", "console")
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "console"}}
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    # in: port 8085 only, from pods selected by namespace AND pod labels (never anyone, never an address block)
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"port": 8085, "protocol": "TCP"}]
    assert rule["from"], "an empty from would let anyone in"
    for peer in rule["from"]:
        assert set(peer) == {"namespaceSelector", "podSelector"}
        assert peer["namespaceSelector"].get("matchLabels") and peer["podSelector"].get("matchLabels")
    # out: the two admin APIs (the ports their Deployments listen on) and DNS, nothing else
    reaches: set[tuple[str | None, int, str]] = set()
    for egress in spec["egress"]:
        for peer in egress["to"]:
            assert "ipBlock" not in peer
            name = peer["podSelector"]["matchLabels"].get("app.kubernetes.io/name")
            reaches.update((name, port["port"], port["protocol"]) for port in egress["ports"])
    pool_ports = {p["name"]: p["containerPort"] for p in container(one(rendering, "Deployment", "pool"))["ports"]}
    pusher_ports = {p["name"]: p["containerPort"] for p in container(one(rendering, "Deployment", "pusher"))["ports"]}
    assert reaches == {
        ("pool", pool_ports["admin"], "TCP"),
        ("pusher", pusher_ports["http"], "TCP"),
        (None, 53, "UDP"),
        (None, 53, "TCP"),
    }
    # and the console's settings point at exactly those Services and ports
    deployment = one(rendering, "Deployment", "console")
    assert env_value(rendering, deployment, "CONSOLE_POOL_ADMIN_URL") == f"http://pool-admin:{pool_ports['admin']}"
    assert env_value(rendering, deployment, "CONSOLE_PUSHER_ADMIN_URL") == f"http://pusher:{pusher_ports['http']}"
    services = {
        svc["metadata"]["name"]: {p["port"] for p in svc["spec"]["ports"]} for svc in objects(rendering, "Service")
    }
    assert pool_ports["admin"] in services["pool-admin"] and pusher_ports["http"] in services["pusher"]


@pytest.mark.parametrize("rendering", ["base", "staging"])
def test_the_console_reaches_one_pool_replica_so_import_jobs_are_found(rendering: str) -> None:
    """An import job lives in the pool replica that took the POST (grizzly_pool.imports): the console's requests
    must all reach that replica, through a Service with client affinity on the admin port only."""
    svc = one(rendering, "Service", "pool-admin")
    pool = one(rendering, "Deployment", "pool")
    assert svc["spec"]["selector"].items() <= pool["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["sessionAffinity"] == "ClientIP"
    assert svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] >= 3600
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8082, "admin")]
    # the internal API keeps its spread over the replicas
    assert "sessionAffinity" not in one(rendering, "Service", "pool")["spec"]
    assert pool["spec"].get("replicas", 1) > 1, "one replica would not need the affinity"


def _size_bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", quantity)
    assert match, quantity
    return int(match.group(1)) * {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}[match.group(2)]


def _source_constant(path: str, name: str) -> int:
    """NAME = 256 * 1024 * 1024 in a module, evaluated (only digits, * and spaces)."""
    match = re.search(rf"^{name}(?:: Final)? = ([\d* ]+)", (env_scan.ROOT / path).read_text(), re.MULTILINE)
    assert match, f"{path}: {name} not found"
    value = 1
    for factor in match.group(1).split("*"):
        value *= int(factor)
    return value


def test_tmp_holds_the_csv_imports_the_pool_and_the_console_accept() -> None:
    def tmp(service: str) -> Obj:
        [volume] = [
            v for v in one("base", "Deployment", service)["spec"]["template"]["spec"]["volumes"] if v["name"] == "tmp"
        ]
        return dict(volume["emptyDir"])

    # the pool keeps each CSV and its check buckets (about the file's size again) in TMPDIR: RUNNING_MAX jobs and one
    # synchronous import; on disk (a tmpfs counts against the memory limit), never evicted before the pool refuses
    per_file = 2 * _source_constant("services/pool/src/grizzly_pool/admin.py", "MAX_IMPORT_BYTES")
    running = _source_constant("services/pool/src/grizzly_pool/imports.py", "RUNNING_MAX")
    pool = tmp("pool")
    assert "medium" not in pool and _size_bytes(pool["sizeLimit"]) >= (running + 1) * per_file
    # the console spools an upload to /tmp on its way to the pool
    console = tmp("console")
    upload = _source_constant("services/console/src/grizzly_console/app.py", "MAX_FORM_BYTES")
    assert "medium" not in console and _size_bytes(console["sizeLimit"]) >= 4 * upload


def test_the_console_takes_its_secrets_from_the_secret_and_one_token_per_operator() -> None:
    deployment = one("base", "Deployment", "console")
    entries = {entry["name"]: entry for entry in container(deployment)["env"]}
    secret_keys = set(secret_example()["stringData"])
    operators = [o.strip() for o in config_data("base")["CONSOLE_OPERATORS"].split(",") if o.strip()]
    assert operators
    wanted = {"POOL_ADMIN_TOKEN", "PUSHER_ADMIN_TOKEN", "CONSOLE_SESSION_SECRET"}
    wanted |= {f"CONSOLE_OPERATOR_{re.sub(r'[^A-Z0-9]', '_', o.upper())}_TOKEN" for o in operators}
    for name in wanted:
        ref = entries[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "grizzly-secrets" and ref["key"] in secret_keys, name
        assert not ref.get("optional"), f"the console cannot work without {name}"
    # TLS at the operator Ingress: the cookie never travels over plain http
    assert config_data("base")["CONSOLE_COOKIE_SECURE"] == "true"
    # the tokens it sends are the ones the admin APIs check: the same Secret keys
    for service, var in (("pool", "POOL_ADMIN_TOKEN"), ("pusher", "PUSHER_ADMIN_TOKEN")):
        [theirs] = [e for e in container(one("base", "Deployment", service))["env"] if e["name"] == var]
        assert theirs["valueFrom"]["secretKeyRef"]["key"] == entries[var]["valueFrom"]["secretKeyRef"]["key"], var
