"""The LET's HTTP API: translate requests into use-case calls, and results into JSON."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from pmm_let.domain.model import Escalation, Invitation, Status
from pmm_let.service import commands as c
from pmm_let.service import usecases as uc
from pmm_runtime.auth import CurrentIdentity
from pmm_runtime.http import PROBLEM_RESPONSES, Page, PageQuery, page_query


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]
Paging = Annotated[PageQuery, Depends(page_query)]


class Proposal(BaseModel):
    invited: list[Invitation]
    uncovered_organisations: list[str]


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    reason: str | None = None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    command_id: str | None = None


def router() -> APIRouter:
    api = APIRouter(tags=["escalations"], responses=PROBLEM_RESPONSES)

    @api.get("/escalations", summary="Escalations you may read, newest first")
    async def list_escalations(
        request: Request,
        d: Deps,
        who: CurrentIdentity,
        paging: Paging,
        status: Status | None = None,
        case_id: Annotated[
            str | None, Query(min_length=1, max_length=64, description="only this case's")
        ] = None,
    ) -> Page[Escalation]:
        total, found = await uc.search(d, who, paging, status=status, case_id=case_id)
        return Page.of(request, paging, total, found)

    @api.get("/escalations/{escalation_id}")
    async def get_escalation(escalation_id: str, d: Deps, who: CurrentIdentity) -> Escalation:
        return await uc.get(d, who, escalation_id)

    @api.get("/escalations/{escalation_id}/audit", summary="Audit trail (chair, PMM staff)")
    async def audit(
        request: Request, escalation_id: str, d: Deps, who: CurrentIdentity, paging: Paging
    ) -> Page[AuditEntry]:
        total, trail = await uc.audit_trail(d, who, escalation_id, paging)
        return Page.of(request, paging, total, [AuditEntry.model_validate(a) for a in trail])

    @api.post(
        "/escalations/{escalation_id}/admissibility",
        summary="The chair admits, or refuses with a reason (back to the Loket)",
    )
    async def admissibility(
        escalation_id: str, body: c.DecideAdmissibility, d: Deps, who: CurrentIdentity
    ) -> Escalation:
        return await uc.decide_admissibility(d, who, escalation_id, body)

    @api.get(
        "/escalations/{escalation_id}/session/proposal",
        summary="Executives to invite, from the register (deputies of absent ones)",
    )
    async def proposal(
        escalation_id: str, session_date: date, d: Deps, who: CurrentIdentity
    ) -> Proposal:
        invited, uncovered = await uc.proposal(d, who, escalation_id, session_date)
        return Proposal(invited=invited, uncovered_organisations=uncovered)

    @api.post("/escalations/{escalation_id}/session", summary="Schedule the session")
    async def schedule(
        escalation_id: str, body: c.ScheduleSession, d: Deps, who: CurrentIdentity
    ) -> Escalation:
        return await uc.schedule_session(d, who, escalation_id, body)

    @api.post(
        "/escalations/{escalation_id}/session/attendance",
        summary="Record who attended: the session is held",
    )
    async def attendance(
        escalation_id: str, body: c.RecordAttendance, d: Deps, who: CurrentIdentity
    ) -> Escalation:
        return await uc.record_attendance(d, who, escalation_id, body)

    @api.post("/escalations/{escalation_id}/agreements", status_code=201)
    async def agreement(
        escalation_id: str, body: c.RecordAgreement, d: Deps, who: CurrentIdentity
    ) -> Escalation:
        return await uc.record_agreement(d, who, escalation_id, body)

    @api.post("/escalations/{escalation_id}/agreements/{agreement_id}/done")
    async def agreement_done(
        escalation_id: str, agreement_id: str, d: Deps, who: CurrentIdentity
    ) -> Escalation:
        return await uc.complete_agreement(d, who, escalation_id, agreement_id)

    @api.post(
        "/escalations/{escalation_id}/outcome",
        summary="Breakthrough, partial or none, with a summary (back to the Loket)",
    )
    async def outcome(
        escalation_id: str, body: c.Conclude, d: Deps, who: CurrentIdentity
    ) -> Escalation:
        return await uc.conclude(d, who, escalation_id, body)

    @api.post(
        "/escalations/{escalation_id}/withdrawal",
        summary="Withdraw before the session (e.g. solved under escalation pressure)",
    )
    async def withdrawal(
        escalation_id: str, body: c.Withdraw, d: Deps, who: CurrentIdentity
    ) -> Escalation:
        return await uc.withdraw(d, who, escalation_id, body)

    @api.get("/overview", tags=["figures"], summary="Overview and figures (chair, PMM staff)")
    async def overview(d: Deps, who: CurrentIdentity) -> uc.Overview:
        return await uc.overview(d, who)

    return api
