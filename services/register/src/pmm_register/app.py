"""create_app(settings): the one place that wires the register service."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from pmm_contracts.events.register import OrganisationState, ProfessionalState
from pmm_contracts.topics import (
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
    REGISTER_VERIFICATIONS,
)
from pmm_register.adapters.repository import RegisterRepository
from pmm_register.adapters.search_index import SearchIndex
from pmm_register.domain import model
from pmm_register.entrypoints.http import router
from pmm_register.service import usecases as uc
from pmm_register.settings import RegisterSettings
from pmm_runtime.platform import Platform

TITLE = "Landelijk Maatwerkregister"
DESCRIPTION = (
    "Who to call where: the maatwerk professionals of every connected municipality, "
    "executing organisation and ministry, including the urgent line."
)

ERROR_STATUSES: dict[type[Exception], int] = {
    model.UnknownOrganisation: 422,
    model.NotAMember: 422,
    model.RoleNotAllowed: 422,
    model.MembershipConflict: 409,
    model.DuplicateEmail: 409,
    model.NotFound: 404,
    model.RegisterError: 422,
    uc.Conflict: 409,
    uc.Forbidden: 403,
}


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
        REGISTER_VERIFICATIONS, events=[], description="Requests to verify a stale entry"
    )
    index = SearchIndex()
    repo = RegisterRepository(
        platform.store("organisations"), platform.store("professionals"), index
    )
    deps = uc.Deps(
        repo=repo,
        source=settings.source,
        notify=platform.relay.notify,
        stale_after_months=settings.stale_after_months,
    )
    platform.on_startup(repo.create_indexes)

    async def search_index(stop: asyncio.Event) -> None:
        await index.follow(settings.kafka_bootstrap, REGISTER_PROFESSIONALS, stop)

    platform.background(search_index)

    async def search_index_ready() -> bool:
        return index.ready

    # A new replica takes traffic once its index has replayed the changelog (seconds); the
    # store's answer in the meantime is correct but slow on FerretDB.
    platform.readiness("search_index", search_index_ready)

    platform.periodic(
        "stale-scan", settings.stale_scan_interval_s, lambda: uc.request_verifications(deps)
    )
    app = platform.http_app(
        title=TITLE, description=DESCRIPTION, routers=[router()], error_statuses=ERROR_STATUSES
    )
    app.state.deps = deps
    return app
