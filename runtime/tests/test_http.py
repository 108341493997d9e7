"""HTTP base: health, readiness, metrics, problem details, identity (401/403)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from pymongo.errors import ServerSelectionTimeoutError

from pmm_runtime.auth import Identity, LocalIssuer, generate_key_pair, require_roles
from pmm_runtime.errors import Conflict, RuleViolation
from pmm_runtime.http import Page, PageQuery, page_query
from pmm_runtime.settings import ServiceSettings

from .support import platform

pytestmark = pytest.mark.integration


class Budget(BaseModel):
    year: int = Field(ge=2020)
    amount: str


class OverBudget(Conflict):
    pass


def routes() -> APIRouter:
    router = APIRouter()

    @router.post("/budgets")
    async def create(
        body: Budget, who: Annotated[Identity, Depends(require_roles("budget_holder"))]
    ) -> dict[str, Any]:
        if body.amount == "too much":
            raise OverBudget("amount exceeds the available budget")
        if body.amount == "negative":
            raise RuleViolation("amount", "must not be negative")
        return {"year": body.year, "by": who.actor}

    @router.get("/numbers")
    async def numbers(
        request: Request, paging: Annotated[PageQuery, Depends(page_query)]
    ) -> Page[int]:
        everything = list(range(1, 121))
        chunk = everything[paging.skip : paging.skip + paging.page_size]
        return Page[int].of(request, paging, len(everything), chunk)

    @router.get("/store-away")
    async def store_away() -> None:
        raise ServerSelectionTimeoutError("no store")

    @router.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    return router


@pytest.fixture
async def client(
    make_settings: Callable[..., ServiceSettings], running_platform: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app_platform = platform(make_settings(service_name="web"))
    app = app_platform.http_app(title="t", description="d", routers=[routes()])
    await running_platform(app_platform)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
    ) as http:
        yield http


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"broker": "ok", "store": "ok"}
    metrics = await client.get("/metrics")
    assert "pmm_service_info" in metrics.text
    assert (await client.get("/asyncapi.json")).json()["asyncapi"].startswith("3.")


async def test_missing_forged_and_expired_tokens_get_401(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    body = {"year": 2026, "amount": "1"}
    assert (await client.post("/budgets", json=body)).status_code == 401
    forger = LocalIssuer(generate_key_pair()[0], issuer="urn:pmm:local-issuer", audience="pmm")
    forged = forger.issue(subject="x", organisation="pmm", roles=["budget_holder"])
    response = await client.post(
        "/budgets", json=body, headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    expired = issuer.issue(
        subject="x",
        organisation="pmm",
        roles=["budget_holder"],
        now=datetime.now(UTC) - timedelta(days=1),
        ttl=timedelta(hours=1),
    )
    response = await client.post(
        "/budgets", json=body, headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_wrong_role_gets_403_and_right_role_passes(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    body = {"year": 2026, "amount": "1"}
    professional = issuer.issue(subject="p1", organisation="uwv", roles=["maatwerk_professional"])
    response = await client.post(
        "/budgets", json=body, headers={"Authorization": f"Bearer {professional}"}
    )
    assert response.status_code == 403
    holder = issuer.issue(subject="b1", organisation="pmm", roles=["budget_holder"])
    response = await client.post(
        "/budgets", json=body, headers={"Authorization": f"Bearer {holder}"}
    )
    assert response.status_code == 200
    assert response.json() == {"year": 2026, "by": "pmm:b1"}


async def test_bad_input_is_a_422_problem_naming_the_field_and_domain_errors_map(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    holder = {
        "Authorization": "Bearer "
        + issuer.issue(subject="b1", organisation="pmm", roles=["budget_holder"])
    }
    response = await client.post("/budgets", json={"year": 1999, "amount": "1"}, headers=holder)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["errors"][0]["field"] == "year"
    assert "year" in problem["detail"]
    response = await client.post(
        "/budgets", json={"year": 2026, "amount": "too much"}, headers=holder
    )
    assert response.status_code == 409
    assert response.json()["detail"] == "amount exceeds the available budget"
    assert response.json()["type"] == "urn:nl:pmm:problem:conflict"
    response = await client.post(
        "/v1/budgets", json={"year": 2026, "amount": "negative"}, headers=holder
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:nl:pmm:problem:rule-violation"
    assert problem["field"] == "amount"
    assert problem["errors"] == [
        {"field": "amount", "message": "must not be negative", "type": "rule-violation"}
    ]


async def test_one_paging_style_with_bounds_totals_and_next_links(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.get("/v1/numbers", params={"page_size": 50})).json()
    assert first["total"] == 120
    assert first["items"][0] == 1
    assert first["next"] == "http://test/v1/numbers?page_size=50&page=2"
    last = (await client.get("/v1/numbers", params={"page": 3, "page_size": 50})).json()
    assert last["items"] == list(range(101, 121))
    assert last["next"] is None
    for params in ({"page": 2305843009213693952}, {"page_size": 100_000}, {"page": 0}):
        response = await client.get("/v1/numbers", params=params)
        assert response.status_code == 422, params
        assert response.json()["field"] in params


async def test_versioned_paths_header_store_outage_and_bugs_are_problem_documents(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/numbers")
    assert response.headers["API-Version"] == "1.0.0"
    assert (await client.get("/numbers")).status_code == 200  # the path before /v1
    away = await client.get("/v1/store-away")
    assert away.status_code == 503
    assert away.headers["content-type"] == "application/problem+json"
    assert away.json()["type"] == "urn:nl:pmm:problem:unavailable"
    bug = await client.get("/v1/bug")
    assert bug.status_code == 500
    assert bug.headers["content-type"] == "application/problem+json"
    kinds = {k["type"] for k in (await client.get("/v1/problems")).json()}
    assert "urn:nl:pmm:problem:not-in-state" in kinds
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/numbers" in spec["paths"]
    assert "/numbers" not in spec["paths"]
    answer = spec["paths"]["/v1/numbers"]["get"]["responses"]["422"]
    assert "application/problem+json" in answer["content"]
