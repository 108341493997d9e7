"""create_app(settings): the one place that wires the Loket service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_contracts.events import cases as ev
from pmm_contracts.topics import LOKET_CASES
from pmm_loket.adapters.repository import CaseRepository
from pmm_loket.entrypoints import kafka
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


def create_app(settings: LoketSettings | None = None) -> FastAPI:
    settings = settings or LoketSettings()
    platform = Platform(settings)
    platform.publisher(
        LOKET_CASES,
        events=list(ev.EVENTS),
        description="Every step of a case, without personal data",
    )
    repo = CaseRepository(
        platform.store("cases"), platform.db["counters"], warn_days=settings.deadline_warning_days
    )
    deps = uc.Deps(
        repo=repo,
        register=RegisterReadModel(platform),
        changes=platform.changes,
        intake_days=settings.intake_working_days,
        consultation_days=settings.consultation_working_days,
        case_weeks=settings.case_weeks,
        warn_days=settings.deadline_warning_days,
        retention_days=settings.retention_days,
    )
    platform.on_startup(repo.create_indexes)
    platform.on_startup(repo.rebuild_deadline_index)

    async def migrate_read_log() -> None:
        await repo.migrate_read_log()

    platform.on_startup(migrate_read_log)
    kafka.subscribe(platform, deps)
    platform.periodic(
        "deadline-scan", settings.deadline_scan_interval_s, lambda: uc.scan_deadlines(deps)
    )
    platform.periodic(
        "retention", settings.retention_scan_interval_s, lambda: uc.anonymise_expired(deps)
    )
    app = platform.http_app(title=TITLE, description=DESCRIPTION, routers=[router()])
    app.state.deps = deps
    return app
