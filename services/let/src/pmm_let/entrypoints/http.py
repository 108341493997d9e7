"""The LET's HTTP API: translate requests into use-case calls, and results into JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from pmm_let.domain.model import Escalation, Invitation
from pmm_let.service import commands as c
from pmm_let.service import usecases as uc
from pmm_runtime.auth import CurrentIdentity
from pmm_runtime.http import Page


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]


def view(escalation: Escalation) -> dict[str, Any]:
    return escalation.model_dump(mode="json") | {"next_deadline": _iso(escalation.next_deadline)}


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def invitations_view(invited: list[Invitation], uncovered: list[str]) -> dict[str, Any]:
    return {
        "invited": [i.model_dump(mode="json") for i in invited],
        "uncovered_organisations": uncovered,
    }


def router() -> APIRouter:
    api = APIRouter(tags=["escalations"])

    @api.get("/escalations", response_model=Page, summary="Escalations you may read")
    async def list_escalations(
        d: Deps, who: CurrentIdentity, query: Annotated[c.ListQuery, Query()]
    ) -> Page:
        total, found = await uc.search(d, who, query)
        return Page(
            total=total,
            page=query.page,
            page_size=query.page_size,
            items=[view(e) for e in found],
        )

    @api.get("/escalations/{escalation_id}")
    async def get_escalation(escalation_id: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return view(await uc.get(d, who, escalation_id))

    @api.get("/escalations/{escalation_id}/audit", summary="Audit trail (chair, PMM staff)")
    async def audit(escalation_id: str, d: Deps, who: CurrentIdentity) -> list[dict[str, Any]]:
        trail = await uc.audit_trail(d, who, escalation_id)
        return [{**entry, "at": entry["at"].isoformat()} for entry in trail]

    @api.post(
        "/escalations/{escalation_id}/admissibility",
        summary="The chair admits, or refuses with a reason (back to the Loket)",
    )
    async def admissibility(
        escalation_id: str, body: c.DecideAdmissibility, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.decide_admissibility(d, who, escalation_id, body))

    @api.get(
        "/escalations/{escalation_id}/session/proposal",
        summary="Executives to invite, from the register (deputies of absent ones)",
    )
    async def proposal(
        escalation_id: str, session_date: date, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        invited, uncovered = await uc.proposal(d, who, escalation_id, session_date)
        return invitations_view(invited, uncovered)

    @api.post("/escalations/{escalation_id}/session", summary="Schedule the session")
    async def schedule(
        escalation_id: str, body: c.ScheduleSession, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.schedule_session(d, who, escalation_id, body))

    @api.post(
        "/escalations/{escalation_id}/session/attendance",
        summary="Record who attended: the session is held",
    )
    async def attendance(
        escalation_id: str, body: c.RecordAttendance, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.record_attendance(d, who, escalation_id, body))

    @api.post("/escalations/{escalation_id}/agreements", status_code=201)
    async def agreement(
        escalation_id: str, body: c.RecordAgreement, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.record_agreement(d, who, escalation_id, body))

    @api.post("/escalations/{escalation_id}/agreements/{agreement_id}/done")
    async def agreement_done(
        escalation_id: str, agreement_id: str, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.complete_agreement(d, who, escalation_id, agreement_id))

    @api.post(
        "/escalations/{escalation_id}/outcome",
        summary="Breakthrough, partial or none, with a summary (back to the Loket)",
    )
    async def outcome(
        escalation_id: str, body: c.Conclude, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.conclude(d, who, escalation_id, body))

    @api.post(
        "/escalations/{escalation_id}/withdrawal",
        summary="Withdraw before the session (e.g. solved under escalation pressure)",
    )
    async def withdrawal(
        escalation_id: str, body: c.Withdraw, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.withdraw(d, who, escalation_id, body))

    @api.get("/overview", tags=["figures"], summary="Overview and figures (chair, PMM staff)")
    async def overview(d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return await uc.overview(d, who)

    return api
