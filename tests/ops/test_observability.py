"""deploy/observability: the alert rules and the Grafana dashboard parse, cover what the
issue asks for, explain themselves, and use only metrics that a service exports (its
``create_app`` builds the registry; nothing connects) or that Kafka's exporter,
kube-state-metrics or Prometheus itself provide."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pmm_runtime.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]

OBSERVABILITY = REPO / "deploy" / "observability"
SERVICES = ("register", "loket", "let", "overbrugging", "signalen")
REQUIRED_ALERTS = {
    "PmmConsumerLagHigh",
    "PmmDeadLetterGrowth",
    "PmmOutboxBacklog",
    "PmmHttp5xxRate",
    "PmmServiceDown",
    "PmmBudgetNearlyExhausted",
}
OTHER_SOURCES = ("kafka_consumergroup_", "kafka_topic_", "kube_", "up")
METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)(?=\{|\[|\s*\)|\s*$|\s*[<>=!/*+-])")
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "max", "and", "or", "histogram_quantile", "le",
    "without", "on", "ignoring", "avg", "min", "count",
}  # fmt: skip


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    text = (OBSERVABILITY / "grafana" / "pmm-dashboard.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def exported_metrics() -> set[str]:
    """Every sample name on the /metrics of some service, as its ``create_app`` wires it."""
    import importlib
    import os

    from pmm_runtime.auth import generate_key_pair

    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }
    registries = [Metrics("x").registry]
    saved = {k: v for k, v in os.environ.items() if k.startswith("PMM_")}
    for name in saved:
        del os.environ[name]
    try:
        public_key = generate_key_pair()[1]
        for service in SERVICES:
            settings_module = importlib.import_module(f"pmm_{service}.settings")
            settings_class = next(
                v
                for k, v in vars(settings_module).items()
                if k.endswith("Settings") and k != "ServiceSettings" and isinstance(v, type)
            )
            app = importlib.import_module(f"pmm_{service}.app").create_app(
                settings_class(jwt_public_key=public_key, log_json=True)
            )
            registries.append(app.state.platform.metrics.registry)
    finally:
        os.environ.update(saved)
    names = set()
    for registry in registries:
        for family in registry.collect():
            names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def metrics_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "[]", without_labels)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_ranges)
    return {m for m in METRIC.findall(without_groupings) if m not in PROMQL_WORDS}


def test_the_required_alerts_exist_and_explain_themselves(rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8").lower()
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}
        annotations = rule["annotations"]
        assert annotations["summary"]
        assert annotations["description"]
        anchor = annotations["runbook_url"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert f"### {rule['alert'].lower()}" in readme, f"deploy/README.md: {rule['alert']}"


def test_every_alert_uses_metrics_that_exist(rules: list[dict[str, Any]]) -> None:
    exported = exported_metrics()
    for rule in rules:
        used = metrics_in(rule["expr"])
        assert used, rule["alert"]
        for metric in used:
            known = metric in exported or metric.startswith(OTHER_SOURCES)
            assert known, f"{rule['alert']}: {metric} is exported by nothing"


def test_every_dashboard_panel_uses_metrics_that_exist(dashboard: dict[str, Any]) -> None:
    exported = exported_metrics()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for metric in metrics_in(target["expr"]):
                known = metric in exported or metric.startswith(OTHER_SOURCES)
                assert known, f"{panel['title']}: {metric} is exported by nothing"


def test_the_dashboard_shows_what_every_alert_watches(
    dashboard: dict[str, Any], rules: list[dict[str, Any]]
) -> None:
    assert dashboard["uid"] == "pmm-overview"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    shown = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            shown |= metrics_in(target["expr"])
    for rule in rules:
        assert metrics_in(rule["expr"]) <= shown, rule["alert"]


def test_the_cluster_gets_the_same_rules_and_dashboard(rendered: dict[str, Any]) -> None:
    production = rendered["production"]
    rule_file = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text(encoding="utf-8"))
    assert production.named("PrometheusRule", "pmm")["spec"]["groups"] == rule_file["groups"]
    config_map = production.named("ConfigMap", "pmm-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = (OBSERVABILITY / "grafana" / "pmm-dashboard.json").read_text(encoding="utf-8")
    assert config_map["data"]["pmm-dashboard.json"] == text
