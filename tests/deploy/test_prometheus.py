"""deploy/prometheus: alert rules and the example scrape config are well-formed, and every metric and label an
alert uses is one the services define (a renamed metric silently turns an alert off)."""

from __future__ import annotations

import ast
import re
from functools import cache
from typing import Any

import pytest
import yaml

from tests.deploy.env_scan import ROOT
from tests.deploy.kustomize import render

PROMETHEUS = ROOT / "deploy" / "prometheus"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"warning", "critical"}
# metrics that come from Prometheus itself or a standard exporter, not from our code
EXTERNAL = {"up": set(), "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"}}
# labels Prometheus adds to every series of the grizzly-partner job (prometheus.yml relabelling)
TARGET_LABELS = {"job", "instance", "service", "namespace", "pod"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan", "le",
}  # fmt: skip
METRIC_KINDS = {"Counter", "Gauge", "Histogram", "Summary"}


@cache
def defined_metrics() -> dict[str, set[str]]:
    """Exposed series name -> label names, for every prometheus_client metric in services/*/src."""
    exposed: dict[str, set[str]] = {}
    for path in sorted((ROOT / "services").glob("*/src/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in METRIC_KINDS):
                continue
            if not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                continue
            name, kind = node.args[0].value, node.func.id
            labels: set[str] = set()
            label_node = node.args[2] if len(node.args) > 2 else None
            for keyword in node.keywords:
                if keyword.arg == "labelnames":
                    label_node = keyword.value
            if isinstance(label_node, ast.List | ast.Tuple):
                labels = {str(elt.value) for elt in label_node.elts if isinstance(elt, ast.Constant)}
            base = name.removesuffix("_total")
            suffixes = {
                "Counter": [(base, "_total"), (base, "_created")],
                "Gauge": [(name, "")],
                "Histogram": [(name, "_bucket"), (name, "_sum"), (name, "_count"), (name, "_created")],
                "Summary": [(name, "_sum"), (name, "_count"), (name, "_created"), (name, "")],
            }[kind]
            for stem, suffix in suffixes:
                exposed[stem + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return exposed


def referenced(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on it) for every selector in a PromQL expression."""
    found = []
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(2)))
        found.append((match.group(1), labels))
    rest = re.sub(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{[^}]*\}", " ", expr)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges and subqueries
    rest = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rest)
    rest = re.sub(r'"[^"]*"', " ", rest)
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", rest):
        word = match.group(1)
        if word.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", word):
            found.append((word, set()))
    return found


@cache
def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    assert set(data) == {"groups"}
    rules = []
    for group in data["groups"]:
        assert set(group) <= {"name", "rules", "interval"} and group["name"] and group["rules"]
        rules.extend(group["rules"])
    return rules


def test_alert_rules_are_well_formed() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        if "for" in rule:
            assert DURATION.match(str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alerts_cover_the_penalties() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    assert 'edge_request_seconds_bucket{action="GET_NUMBER"}' in exprs  # GET_NUMBER p99
    assert 'status="NO_NUMBERS"' in exprs and "edge_counts_reported" in exprs  # NO_NUMBERS after a positive count
    assert "pusher_retries_scheduled_total" in exprs and "pusher_retry_queue_depth" in exprs  # retries growing
    assert "pusher_kafka_consumer_lag" in exprs  # consumer lag


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alerts_use_metrics_and_labels_the_services_define(rule: dict[str, Any]) -> None:
    metrics = defined_metrics()
    for name, labels in referenced(rule["expr"]):
        known = metrics.get(name, EXTERNAL.get(name))
        assert known is not None, f"{rule['alert']}: no service defines {name}"
        assert labels <= known | TARGET_LABELS, f"{rule['alert']}: {name} has no label {labels - known}"


def test_promql_reference_parser() -> None:
    expr = 'sum by (le) (rate(a_bucket{action="X",le!="1"}[5m])) > 1 and on() deriv(max(b)[15m:1m]) > 0'
    assert referenced(expr) == [("a_bucket", {"action", "le"}), ("b", set())]


def test_scrape_config_loads_the_alert_rules_and_keeps_annotated_pods() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"])
    assert "grizzly-partner" in jobs  # the job PartnerServiceDown watches
    relabels = jobs["grizzly-partner"]["relabel_configs"]
    kept = {tuple(r["source_labels"]) for r in relabels if r.get("action") == "keep"}
    assert ("__meta_kubernetes_pod_annotation_prometheus_io_scrape",) in kept
    assert "service" in {r.get("target_label") for r in relabels}


# Deployments Prometheus does not scrape: the console's one port is for the operator ingress only (its
# NetworkPolicy lets nothing else in), so an annotation there would only produce a target that is always down.
NOT_SCRAPED = {"console"}


def test_pod_annotations_point_at_the_metrics_port() -> None:
    for obj in render(ROOT / "deploy" / "k8s" / "base"):
        if obj["kind"] != "Deployment":
            continue
        template = obj["spec"]["template"]
        if obj["metadata"]["name"] in NOT_SCRAPED:
            assert "prometheus.io/scrape" not in template["metadata"].get("annotations", {})
            continue
        annotations = template["metadata"]["annotations"]
        [container] = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        # the ops port where there is one (api-edge: metrics never on the partner URL)
        assert int(annotations["prometheus.io/port"]) == ports.get("ops", ports["http"]), obj["metadata"]["name"]
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "grizzly-partner"


def test_every_metric_is_documented() -> None:
    doc = (ROOT / "docs" / "observability.md").read_text()
    names = set()
    for path in sorted((ROOT / "services").glob("*/src/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in METRIC_KINDS:
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    names.add(node.args[0].value)
    missing = sorted(name for name in names if f"`{name}`" not in doc)
    assert not missing, f"add to docs/observability.md: {missing}"
