"""``/metrics`` of a running service: process, HTTP per route and status, messaging
(FastStream's Prometheus middleware) and overbrugging's budget gauges, under the names
that deploy/observability's alerts and dashboard use (issue 16)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from pmm_contracts.topics import REGISTER_ORGANISATIONS
from pmm_loket.app import create_app as create_loket
from pmm_loket.settings import LoketSettings
from pmm_overbrugging.app import create_app as create_overbrugging
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_register.app import create_app as create_register
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

WAIT_S = 200.0  # a new consumer group first replays the shared register topic


async def scrape(client: httpx.AsyncClient) -> list[Sample]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(answer.text) for s in family.samples]


def named(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


async def test_metrics_of_a_service_per_route_status_process_and_topic(
    make_settings: Callable[..., Any],
    serve: Callable[..., Any],
    issuer: LocalIssuer,
    unique: str,
) -> None:
    register = await serve(create_register(make_settings(RegisterSettings)))
    loket_app = create_loket(make_settings(LoketSettings))
    loket = await serve(loket_app)

    code = f"mt{unique[:8]}"
    created = await register.post(
        "/v1/organisations",
        headers=bearer(issuer, "pmm", "register_admin"),
        json={"code": code, "name": "Metrics", "kind": "municipality", "joined_on": "2024-01-01"},
    )
    assert created.status_code == 201, created.text
    await eventually(lambda: loket_app.state.deps.register.is_member(code), timeout_s=WAIT_S)

    professional = bearer(issuer, code, "maatwerk_professional")
    for _ in range(3):
        assert (await loket.get("/v1/cases", headers=professional)).status_code in {200, 403}
    assert (await loket.get("/v1/cases/LMM-2026-000001")).status_code == 401
    assert (await loket.get("/cases/LMM-2026-000001")).status_code == 401  # unversioned path
    assert (await loket.get("/no/such/path")).status_code == 404
    samples = await scrape(loket)

    # HTTP: per method, route template and status; a histogram of durations per route.
    listed = named(samples, "pmm_http_requests_total", method="GET", route="/v1/cases")
    assert sum(s.value for s in listed) == 3, listed
    assert named(samples, "pmm_http_requests_total", route="/v1/cases/{case_id}", status="401"), (
        "no 401 of the case route"
    )
    assert named(samples, "pmm_http_requests_total", route="/cases/{case_id}", status="401")
    assert named(samples, "pmm_http_requests_total", route="unmatched", status="404")
    assert not [s for s in samples if "LMM-2026" in str(s.labels)], "a path as a label"
    buckets = named(
        samples, "pmm_http_request_duration_seconds_bucket", route="/v1/cases", le="+Inf"
    )
    assert buckets, "no duration histogram"
    assert buckets[0].value == 3

    # The process and the interpreter.
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert named(samples, name), name
    assert named(samples, "python_gc_collections_total")

    # Messaging: FastStream's metrics per topic, next to the platform's own.
    received = named(samples, "faststream_received_messages_total", handler=REGISTER_ORGANISATIONS)
    assert received, sorted({s.name for s in samples if s.name.startswith("faststream")})
    assert received[0].value >= 1
    assert named(samples, "faststream_received_processed_messages_duration_seconds_count")
    consumed = named(samples, "pmm_events_consumed_total", topic=REGISTER_ORGANISATIONS)
    assert consumed
    assert consumed[0].value >= 1
    assert named(samples, "pmm_service_info", service="loket")

    # The register published the organisation: FastStream counts the produce.
    published = named(
        await scrape(register),
        "faststream_published_messages_total",
        destination=REGISTER_ORGANISATIONS,
        status="success",
    )
    assert published, "no publish metric"
    assert published[0].value >= 1


async def test_overbrugging_exports_the_budget_gauges_the_alert_uses(
    make_settings: Callable[..., Any], serve: Callable[..., Any], issuer: LocalIssuer
) -> None:
    app = create_overbrugging(make_settings(OverbruggingSettings, budget_metrics_interval_s=0.2))
    client = await serve(app)
    holder = bearer(issuer, "pmm", "budget_holder")
    for year, total in ((2031, "1000.00"), (2032, "250000.50")):
        answer = await client.put(f"/v1/budgets/{year}", headers=holder, json={"total": total})
        assert answer.status_code == 200, answer.text

    async def gauges() -> list[Sample]:
        samples = await scrape(client)
        found = named(samples, "pmm_overbrugging_budget_total_euros", year="2032")
        return samples if found else []

    samples = await eventually(gauges, timeout_s=30)
    assert named(samples, "pmm_overbrugging_budget_total_euros", year="2031")[0].value == 1000.0
    assert named(samples, "pmm_overbrugging_budget_total_euros", year="2032")[0].value == 250000.5
    available = named(samples, "pmm_overbrugging_budget_available_euros", year="2032")
    assert available[0].value == 250000.5
    assert named(samples, "pmm_overbrugging_budget_committed_euros", year="2031")[0].value == 0.0
