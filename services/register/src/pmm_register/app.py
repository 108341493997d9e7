"""create_app(settings): the one place that wires the register service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_contracts.events.register import (
    OrganisationState,
    ProfessionalState,
    VerificationRequested,
)
from pmm_contracts.topics import (
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
    REGISTER_VERIFICATIONS,
)
from pmm_register.adapters.repository import Organisations, Professionals
from pmm_register.adapters.search_index import SearchIndex
from pmm_register.entrypoints import kafka
from pmm_register.entrypoints.http import router
from pmm_register.service import usecases as uc
from pmm_register.settings import RegisterSettings
from pmm_runtime.platform import Platform

TITLE = "Landelijk Maatwerkregister"
DESCRIPTION = (
    "Who to call where: the maatwerk professionals of every connected municipality, "
    "executing organisation and ministry, including the urgent line."
)


def create_app(settings: RegisterSettings | None = None) -> FastAPI:
    settings = settings or RegisterSettings()
    platform = Platform(settings)
    platform.publisher(
        REGISTER_ORGANISATIONS,
        events=[OrganisationState],
        description="Compacted changelog of organisations (tombstone on removal)",
    )
    platform.publisher(
        REGISTER_PROFESSIONALS,
        events=[ProfessionalState],
        description="Compacted changelog of professionals (tombstone on removal)",
    )
    platform.publisher(
        REGISTER_VERIFICATIONS,
        events=[VerificationRequested],
        description="Requests to verify a stale entry",
    )
    index = SearchIndex()
    professionals = Professionals(platform.store("professionals"), index)
    deps = uc.Deps(
        organisations=Organisations(platform.store("organisations")),
        professionals=professionals,
        changes=platform.changes,
        stale_after_months=settings.stale_after_months,
    )
    platform.on_startup(professionals.create_indexes)
    kafka.follow_changelog(platform, index)
    platform.periodic(
        "stale-scan", settings.stale_scan_interval_s, lambda: uc.request_verifications(deps)
    )
    app = platform.http_app(title=TITLE, description=DESCRIPTION, routers=[router()])
    app.state.deps = deps
    return app
