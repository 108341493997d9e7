"""create_app(settings): the one place that wires the let service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_contracts.events import escalations as ev
from pmm_contracts.topics import LET_ESCALATIONS
from pmm_let.adapters.repository import EscalationRepository
from pmm_let.entrypoints import kafka
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


def create_app(settings: LetSettings | None = None) -> FastAPI:
    settings = settings or LetSettings()
    platform = Platform(settings)
    platform.publisher(
        LET_ESCALATIONS,
        events=list(ev.EVENTS),
        description="Escalations to the LET: admission, session, agreements, outcome",
    )
    repo = EscalationRepository(platform.store("escalations"))
    deps = uc.Deps(repo=repo, register=RegisterReadModel(platform), changes=platform.changes)
    platform.on_startup(repo.create_indexes)
    platform.on_startup(repo.rebuild_deadline_index)
    kafka.subscribe(platform, deps, settings.cases_topic)
    platform.periodic(
        "agreement-deadlines", settings.deadline_scan_interval_s, lambda: uc.scan_overdue(deps)
    )
    app = platform.http_app(title=TITLE, description=DESCRIPTION, routers=[router()])
    app.state.deps = deps
    return app
