"""deploy/observability: the alert rules and the Grafana dashboard parse, cover what the
issue asks for, explain themselves, and use metrics that exist (or are listed below as
still to be added)."""

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
REQUIRED_ALERTS = {
    "PmmConsumerLagHigh",
    "PmmDeadLetterGrowth",
    "PmmOutboxBacklog",
    "PmmHttp5xxRate",
    "PmmServiceDown",
    "PmmBudgetNearlyExhausted",
}
# Metrics the alerts and the dashboard use that no service exports yet: the runtime adds
# the HTTP ones, the overbrugging service the budget ones (see deploy/README.md). When one
# appears in pmm_runtime.metrics, this test asks to take it off the list.
NOT_YET_EXPORTED = {
    "pmm_http_requests_total",
    "pmm_http_request_duration_seconds_bucket",
    "pmm_overbrugging_budget_available_euros",
    "pmm_overbrugging_budget_total_euros",
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
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }
    names = set()
    for family in Metrics("x").registry.collect():
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
            known = (
                metric in exported or metric in NOT_YET_EXPORTED or metric.startswith(OTHER_SOURCES)
            )
            assert known, f"{rule['alert']}: {metric} is exported by nothing"


def test_the_pending_metrics_are_still_pending() -> None:
    assert not (NOT_YET_EXPORTED & exported_metrics()), "exported now: take it off the list"


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
