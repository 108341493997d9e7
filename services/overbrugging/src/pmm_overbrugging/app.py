"""create_app(settings): the one place that wires the overbrugging service."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events import bridging as ev
from pmm_contracts.topics import LOKET_CASES, OVERBRUGGING_APPLICATIONS
from pmm_overbrugging.adapters.repository import BridgingRepository
from pmm_overbrugging.domain import model
from pmm_overbrugging.entrypoints.http import router
from pmm_overbrugging.service import usecases as uc
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_runtime.platform import Platform

TITLE = "Overbruggingsprocedure"
DESCRIPTION = (
    "When it is clear which support a household needs but not who must pay, the state "
    "pre-finances (voorschot) or guarantees (garantstelling) it from a yearly budget, and "
    "recovers it afterwards from the responsible party."
)

ERROR_STATUSES: dict[type[Exception], int] = {
    model.ForbiddenTransition: 409,
    model.InsufficientBudget: 409,
    model.ConditionsNotMet: 422,
    model.RuleViolation: 422,
    uc.NotFound: 404,
    uc.Forbidden: 403,
    uc.Conflict: 409,
}


def create_app(settings: OverbruggingSettings | None = None) -> FastAPI:
    settings = settings or OverbruggingSettings()
    platform = Platform(settings)
    platform.publisher(
        OVERBRUGGING_APPLICATIONS,
        events=list(ev.EVENTS),
        description="Every step of a bridging application, no personal data",
    )
    repo = BridgingRepository(
        platform.store("applications"), platform.db["budgets"], platform.db["ledger"]
    )
    deps = uc.Deps(repo=repo, source=settings.source, notify=platform.relay.notify)
    platform.on_startup(repo.create_indexes)
    platform.periodic(
        "pending-bookings",
        settings.pending_bookings_interval_s,
        lambda: uc.complete_pending_bookings(deps),
    )

    async def on_case(event: CloudEvent[Any]) -> None:
        await uc.on_case_event(deps, event)

    platform.subscribe(
        LOKET_CASES,
        handler=on_case,
        purpose="bridging-requests",
        description="Bridging requests of the Loket become applications",
    )
    app = platform.http_app(
        title=TITLE, description=DESCRIPTION, routers=[router()], error_statuses=ERROR_STATUSES
    )
    app.state.deps = deps
    return app
