"""create_app(settings): the one place that wires the overbrugging service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_contracts.events import bridging as ev
from pmm_contracts.topics import OVERBRUGGING_APPLICATIONS
from pmm_overbrugging.adapters.budget_metrics import BudgetGauges
from pmm_overbrugging.adapters.repository import BridgingRepository
from pmm_overbrugging.entrypoints import kafka
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
    deps = uc.Deps(repo=repo, changes=platform.changes)
    platform.on_startup(repo.create_indexes)
    gauges = BudgetGauges(
        platform.metrics.registry,
        platform.db["budgets"],
        interval_s=settings.budget_metrics_interval_s,
    )
    platform.background(gauges.run)  # pmm_overbrugging_budget_*_euros in every replica
    platform.periodic(
        "pending-bookings",
        settings.pending_bookings_interval_s,
        lambda: uc.complete_pending_bookings(deps),
    )
    kafka.subscribe(platform, deps, settings.cases_topic)
    app = platform.http_app(title=TITLE, description=DESCRIPTION, routers=[router()])
    app.state.deps = deps
    return app
