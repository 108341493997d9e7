"""The register's HTTP API: translate requests into use-case calls, and results into JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from pmm_contracts.vocabulary import LifeDomain, Role
from pmm_register.domain.model import Organisation, Professional
from pmm_register.service import commands as c
from pmm_register.service import usecases as uc
from pmm_runtime.auth import CurrentIdentity
from pmm_runtime.http import Page


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]


def org_view(org: Organisation) -> dict[str, Any]:
    return {**org.state().model_dump(mode="json"), "history": org.history}


def pro_view(professional: Professional) -> dict[str, Any]:
    return professional.state().model_dump(mode="json")


def router() -> APIRouter:
    api = APIRouter()

    # Organisations ------------------------------------------------------------------------

    @api.get("/organisations", tags=["organisations"], summary="All organisations")
    async def list_organisations(d: Deps, who: CurrentIdentity) -> list[dict[str, Any]]:
        await uc.require_reader(d, who)
        return [org_view(o) for o in await d.repo.all_organisations()]

    @api.get("/organisations/{code}", tags=["organisations"])
    async def get_organisation(code: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        await uc.require_reader(d, who)
        return org_view(await uc._get_org(d, code))

    @api.post("/organisations", tags=["organisations"], status_code=status.HTTP_201_CREATED)
    async def create_organisation(
        body: c.CreateOrganisation, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return org_view(await uc.create_organisation(d, who, body))

    @api.patch("/organisations/{code}", tags=["organisations"])
    async def update_organisation(
        code: str, body: c.UpdateOrganisation, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return org_view(await uc.update_organisation(d, who, code, body))

    @api.post("/organisations/{code}/join", tags=["organisations"])
    async def join(code: str, body: c.Join, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return org_view(await uc.join(d, who, code, body))

    @api.post(
        "/organisations/{code}/commitment",
        tags=["organisations"],
        summary="Record the administrative commitment (bestuurlijke afspraken)",
    )
    async def commit(code: str, body: c.Commit, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return org_view(await uc.commit(d, who, code, body))

    @api.post("/organisations/{code}/leave", tags=["organisations"])
    async def leave(code: str, body: c.Leave, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return org_view(await uc.leave(d, who, code, body))

    # Professionals ------------------------------------------------------------------------

    @api.post("/professionals", tags=["professionals"], status_code=status.HTTP_201_CREATED)
    async def register_professional(
        body: c.RegisterProfessional, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return pro_view(await uc.register_professional(d, who, body))

    @api.get(
        "/professionals",
        tags=["professionals"],
        response_model=Page,
        summary="Search by organisation, role, life domain, tag and free text",
    )
    async def search(
        d: Deps, who: CurrentIdentity, query: Annotated[c.SearchQuery, Query()]
    ) -> Page:
        await uc.require_reader(d, who)
        total, found = await uc.search(d, query)
        return Page(
            total=total,
            page=query.page,
            page_size=query.page_size,
            items=[pro_view(p) for p in found],
        )

    @api.get("/professionals/{professional_id}", tags=["professionals"])
    async def get_professional(
        professional_id: str, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        await uc.require_reader(d, who)
        return pro_view(await uc._get_pro(d, professional_id))

    @api.patch("/professionals/{professional_id}", tags=["professionals"])
    async def update_professional(
        professional_id: str, body: c.UpdateProfessional, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return pro_view(await uc.update_professional(d, who, professional_id, body))

    @api.post(
        "/professionals/{professional_id}/verify",
        tags=["professionals"],
        summary="Confirm the entry is still right (clears 'stale')",
    )
    async def verify(professional_id: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return pro_view(await uc.verify(d, who, professional_id))

    @api.put("/professionals/{professional_id}/absence", tags=["professionals"])
    async def set_absence(
        professional_id: str, body: c.Absence, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return pro_view(await uc.set_absence(d, who, professional_id, body))

    @api.delete("/professionals/{professional_id}/absence", tags=["professionals"])
    async def end_absence(professional_id: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return pro_view(await uc.set_absence(d, who, professional_id, None))

    @api.delete(
        "/professionals/{professional_id}",
        tags=["professionals"],
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Remove (leaving, GDPR erasure): a tombstone erases it everywhere",
    )
    async def remove(
        professional_id: str,
        d: Deps,
        who: CurrentIdentity,
        reason: Annotated[str | None, Query(max_length=500)] = None,
    ) -> Response:
        await uc.remove_professional(d, who, professional_id, reason)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @api.get(
        "/contact", tags=["search"], summary="Who do I contact at organisation X for life domain Y"
    )
    async def contact(
        d: Deps,
        who: CurrentIdentity,
        organisation: Annotated[str, Query(min_length=2)],
        life_domain: LifeDomain | None = None,
        urgent: bool = False,
    ) -> list[dict[str, Any]]:
        await uc.require_reader(d, who)
        found = await uc.contact_for(
            d, organisation, life_domain.value if life_domain else None, urgent
        )
        return [
            {
                "professional": pro_view(item.professional),
                "via_deputy_of": item.via_deputy_of,
                "call": (item.professional.urgent_phone if urgent else item.professional.phone),
            }
            for item in found
        ]

    _ = Role
    return api
