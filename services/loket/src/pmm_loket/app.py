"""create_app(settings): the one place that wires the Loket service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_contracts.events import cases as ev
from pmm_contracts.topics import LET_ESCALATIONS, LOKET_CASES, OVERBRUGGING_APPLICATIONS
from pmm_loket.adapters.repository import CaseRepository
from pmm_loket.domain import model
from pmm_loket.entrypoints.http import router
from pmm_loket.service import usecases as uc
from pmm_loket.settings import LoketSettings
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel

TITLE = "Landelijk Maatwerkloket Multiproblematiek"
DESCRIPTION = (
    "Intake and orchestration of stuck cases by regievoerders: the only door to the LET and "
    "the overbruggingsprocedure, and the source of every learning point."
)

ERROR_STATUSES: dict[type[Exception], int] = {
    model.ForbiddenTransition: 409,
    model.NotInState: 409,
    model.RuleViolation: 422,
    model.UnknownPart: 404,
    uc.NotFound: 404,
    uc.Forbidden: 403,
    uc.Conflict: 409,
}


def create_app(settings: LoketSettings | None = None) -> FastAPI:
    settings = settings or LoketSettings()
    platform = Platform(settings)
    platform.publisher(
        LOKET_CASES,
        events=list(ev.EVENTS),
        description="Every step of a case, without personal data",
    )
    repo = CaseRepository(platform.store("cases"), platform.db["counters"])
    register = RegisterReadModel(platform)
    deps = uc.Deps(
        repo=repo,
        register=register,
        source=settings.source,
        notify=platform.relay.notify,
        intake_days=settings.intake_working_days,
        consultation_days=settings.consultation_working_days,
        case_weeks=settings.case_weeks,
        warn_days=settings.deadline_warning_days,
        retention_days=settings.retention_days,
    )
    platform.on_startup(repo.create_indexes)

    async def on_escalation(event: object) -> None:
        await uc.on_escalation_event(deps, event)  # type: ignore[arg-type]

    async def on_bridging(event: object) -> None:
        await uc.on_bridging_event(deps, event)  # type: ignore[arg-type]

    platform.subscribe(
        LET_ESCALATIONS,
        handler=on_escalation,
        purpose="escalations",
        description="The LET's admission, outcome and withdrawal update cases",
    )
    platform.subscribe(
        OVERBRUGGING_APPLICATIONS,
        handler=on_bridging,
        purpose="bridging",
        description="Bridging decisions and payments update cases",
    )
    platform.periodic(
        "deadline-scan", settings.deadline_scan_interval_s, lambda: uc.scan_deadlines(deps)
    )
    platform.periodic(
        "retention", settings.retention_scan_interval_s, lambda: uc.anonymise_expired(deps)
    )
    app = platform.http_app(
        title=TITLE, description=DESCRIPTION, routers=[router()], error_statuses=ERROR_STATUSES
    )
    app.state.deps = deps
    return app
