"""HTTP base: health, readiness, metrics, problem details, identity (401/403)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pmm_runtime.auth import Identity, LocalIssuer, generate_key_pair, require_roles
from pmm_runtime.settings import ServiceSettings

from .support import platform

pytestmark = pytest.mark.integration


class Budget(BaseModel):
    year: int = Field(ge=2020)
    amount: str


class OverBudget(Exception):
    pass


def routes() -> APIRouter:
    router = APIRouter()

    @router.post("/budgets")
    async def create(
        body: Budget, who: Annotated[Identity, Depends(require_roles("budget_holder"))]
    ) -> dict[str, Any]:
        if body.amount == "too much":
            raise OverBudget("amount exceeds the available budget")
        return {"year": body.year, "by": who.actor}

    return router


@pytest.fixture
async def client(
    make_settings: Callable[..., ServiceSettings], running_platform: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app_platform = platform(make_settings(service_name="web"))
    app = app_platform.http_app(
        title="t", description="d", routers=[routes()], error_statuses={OverBudget: 409}
    )
    await running_platform(app_platform)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
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
