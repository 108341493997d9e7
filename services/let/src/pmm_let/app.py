"""create_app(settings): the one place that wires the let service."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events import escalations as ev
from pmm_contracts.topics import LET_ESCALATIONS, LOKET_CASES
from pmm_let.adapters.repository import EscalationRepository
from pmm_let.domain import model
from pmm_let.entrypoints.http import router
from pmm_let.service import usecases as uc
from pmm_let.settings import LetSettings
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel

TITLE = "Landelijk Escalatie Team"
DESCRIPTION = (
    "When the professional and the Loket have done everything and a case is still stuck, "
    "an independent chair convenes the executives of the organisations involved to force "
    "a breakthrough: admissibility, session, agreements and outcome."
)

ERROR_STATUSES: dict[type[Exception], int] = {
    model.ForbiddenTransition: 409,
    model.WrongStatus: 409,
    model.RuleViolation: 422,
    model.UnknownAgreement: 404,
    uc.NotFound: 404,
    uc.Forbidden: 403,
    uc.Conflict: 409,
}


def create_app(settings: LetSettings | None = None) -> FastAPI:
    settings = settings or LetSettings()
    platform = Platform(settings)
    platform.publisher(
        LET_ESCALATIONS,
        events=list(ev.EVENTS),
        description="Escalations to the LET: admission, session, agreements, outcome",
    )
    repo = EscalationRepository(platform.store("escalations"))
    register = RegisterReadModel(platform)
    deps = uc.Deps(
        repo=repo, register=register, source=settings.source, notify=platform.relay.notify
    )
    platform.on_startup(repo.create_indexes)

    async def on_case_event(event: CloudEvent[Any]) -> None:
        await uc.on_case_event(deps, event)

    platform.subscribe(
        LOKET_CASES,
        handler=on_case_event,
        purpose="cases",
        description="The Loket's escalation requests open escalations (other case events "
        "are skipped)",
    )
    platform.periodic(
        "agreement-deadlines", settings.deadline_scan_interval_s, lambda: uc.scan_overdue(deps)
    )
    app = platform.http_app(
        title=TITLE, description=DESCRIPTION, routers=[router()], error_statuses=ERROR_STATUSES
    )
    app.state.deps = deps
    return app
