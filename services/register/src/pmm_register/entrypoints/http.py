"""The register's HTTP API: translate requests into use-case calls, and results into JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel

from pmm_contracts.events.register import OrganisationState, ProfessionalState
from pmm_contracts.vocabulary import LifeDomain
from pmm_register.domain.model import Organisation
from pmm_register.service import commands as c
from pmm_register.service import usecases as uc
from pmm_runtime.auth import CurrentIdentity
from pmm_runtime.http import PROBLEM_RESPONSES, Page, PageQuery, page_query


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]
Paging = Annotated[PageQuery, Depends(page_query)]


class OrganisationView(OrganisationState):
    """An organisation as its changelog state carries it, with its membership history."""

    history: list[dict[str, Any]]


class ContactView(BaseModel):
    professional: ProfessionalState
    via_deputy_of: str | None = None
    call: str | None = None


def org_view(org: Organisation) -> OrganisationView:
    return OrganisationView(**dict(org.state()), history=org.history)


def router() -> APIRouter:
    api = APIRouter(responses=PROBLEM_RESPONSES)

    # Organisations ------------------------------------------------------------------------

    @api.get("/organisations", tags=["organisations"], summary="All organisations, by code")
    async def list_organisations(
        request: Request, d: Deps, who: CurrentIdentity, paging: Paging
    ) -> Page[OrganisationView]:
        total, found = await uc.list_organisations(d, who, paging)
        return Page.of(request, paging, total, [org_view(o) for o in found])

    @api.get("/organisations/{code}", tags=["organisations"])
    async def get_organisation(code: str, d: Deps, who: CurrentIdentity) -> OrganisationView:
        return org_view(await uc.get_organisation(d, who, code))

    @api.post("/organisations", tags=["organisations"], status_code=status.HTTP_201_CREATED)
    async def create_organisation(
        body: c.CreateOrganisation, d: Deps, who: CurrentIdentity
    ) -> OrganisationView:
        return org_view(await uc.create_organisation(d, who, body))

    @api.patch("/organisations/{code}", tags=["organisations"])
    async def update_organisation(
        code: str, body: c.UpdateOrganisation, d: Deps, who: CurrentIdentity
    ) -> OrganisationView:
        return org_view(await uc.update_organisation(d, who, code, body))

    @api.post("/organisations/{code}/join", tags=["organisations"])
    async def join(code: str, body: c.Join, d: Deps, who: CurrentIdentity) -> OrganisationView:
        return org_view(await uc.join(d, who, code, body))

    @api.post(
        "/organisations/{code}/commitment",
        tags=["organisations"],
        summary="Record the administrative commitment (bestuurlijke afspraken)",
    )
    async def commit(code: str, body: c.Commit, d: Deps, who: CurrentIdentity) -> OrganisationView:
        return org_view(await uc.commit(d, who, code, body))

    @api.post("/organisations/{code}/leave", tags=["organisations"])
    async def leave(code: str, body: c.Leave, d: Deps, who: CurrentIdentity) -> OrganisationView:
        return org_view(await uc.leave(d, who, code, body))

    # Professionals ------------------------------------------------------------------------

    @api.post("/professionals", tags=["professionals"], status_code=status.HTTP_201_CREATED)
    async def register_professional(
        body: c.RegisterProfessional, d: Deps, who: CurrentIdentity
    ) -> ProfessionalState:
        return (await uc.register_professional(d, who, body)).state()

    @api.get(
        "/professionals",
        tags=["professionals"],
        summary="Search by organisation, role, life domain, tag and free text",
    )
    async def search(
        request: Request,
        d: Deps,
        who: CurrentIdentity,
        query: Annotated[c.SearchQuery, Query()],
        paging: Paging,
    ) -> Page[ProfessionalState]:
        total, found = await uc.search(d, who, query, paging)
        return Page.of(request, paging, total, [p.state() for p in found])

    @api.get("/professionals/{professional_id}", tags=["professionals"])
    async def get_professional(
        professional_id: str, d: Deps, who: CurrentIdentity
    ) -> ProfessionalState:
        return (await uc.get_professional(d, who, professional_id)).state()

    @api.patch("/professionals/{professional_id}", tags=["professionals"])
    async def update_professional(
        professional_id: str, body: c.UpdateProfessional, d: Deps, who: CurrentIdentity
    ) -> ProfessionalState:
        return (await uc.update_professional(d, who, professional_id, body)).state()

    @api.post(
        "/professionals/{professional_id}/verify",
        tags=["professionals"],
        summary="Confirm the entry is still right (clears 'stale')",
    )
    async def verify(professional_id: str, d: Deps, who: CurrentIdentity) -> ProfessionalState:
        return (await uc.verify(d, who, professional_id)).state()

    @api.put("/professionals/{professional_id}/absence", tags=["professionals"])
    async def set_absence(
        professional_id: str, body: c.Absence, d: Deps, who: CurrentIdentity
    ) -> ProfessionalState:
        return (await uc.set_absence(d, who, professional_id, body)).state()

    @api.delete("/professionals/{professional_id}/absence", tags=["professionals"])
    async def end_absence(professional_id: str, d: Deps, who: CurrentIdentity) -> ProfessionalState:
        return (await uc.set_absence(d, who, professional_id, None)).state()

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
        reason: Annotated[c.Reason | None, Query()] = None,
    ) -> Response:
        await uc.remove_professional(d, who, professional_id, reason)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @api.get(
        "/contact", tags=["search"], summary="Who do I contact at organisation X for life domain Y"
    )
    async def contact(
        request: Request,
        d: Deps,
        who: CurrentIdentity,
        paging: Paging,
        organisation: Annotated[str, Query(min_length=2, max_length=32)],
        life_domain: LifeDomain | None = None,
        urgent: bool = False,
    ) -> Page[ContactView]:
        found = await uc.contact_for(
            d, who, organisation, life_domain.value if life_domain else None, urgent
        )
        items = [
            ContactView(
                professional=item.professional.state(),
                via_deputy_of=item.via_deputy_of,
                call=item.professional.urgent_phone if urgent else item.professional.phone,
            )
            for item in found[paging.skip : paging.skip + paging.page_size]
        ]
        return Page.of(request, paging, len(found), items)

    return api
