"""The Loket's HTTP API: translate requests into use-case calls and cases into JSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel

from pmm_loket.adapters.repository import CaseFilter
from pmm_loket.domain.model import ALLOWED_TRANSITIONS, Case, Consultation, Punctuality, Status
from pmm_loket.service import commands as c
from pmm_loket.service import usecases as uc
from pmm_runtime.auth import CurrentIdentity
from pmm_runtime.http import Page, PageQuery, page_query

Paging = Annotated[PageQuery, Depends(page_query)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=uc.IDEMPOTENCY_FIELD,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="One key per submission, chosen by the client (e.g. a UUID): a retry "
        "with the same key and body answers the case created first, once; the same key "
        "with another body is refused (422).",
    ),
]


class CaseSummary(BaseModel):
    """A case in a list: status, deadlines and what may happen next."""

    id: str
    number: str
    status: str
    submitting_organisation: str
    case_director_id: str | None
    urgency: str
    submitted_at: str
    intake_due: str
    case_due: str | None
    timeliness: dict[str, str | None]
    duration_days: int | None
    allowed_next: list[str]


class ConsultationView(BaseModel):
    """A consultation as the consulted organisation sees it: the question, not the file."""

    case_id: str
    case_number: str
    consultation_id: str
    organisation: str
    professional_id: str | None
    question: str
    requested_on: str
    due: str
    answered_on: str | None
    asked_by: str | None
    case_director_id: str | None


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]


def summary(case: Case, d: uc.Deps) -> CaseSummary:
    return CaseSummary(**summary_fields(case, d))


def summary_fields(case: Case, d: uc.Deps) -> dict[str, Any]:
    return {
        "id": case.id,
        "number": case.number,
        "status": case.status.value,
        "submitting_organisation": case.submitting_organisation,
        "case_director_id": case.case_director_id,
        "urgency": case.urgency.value,
        "submitted_at": case.submitted_at.isoformat(),
        "intake_due": case.intake_due.isoformat(),
        "case_due": case.case_due.isoformat() if case.case_due else None,
        "timeliness": uc.case_timeliness(case, d.today()),
        "duration_days": case.duration_days if case.closed_at else None,
        "allowed_next": sorted(s.value for s in ALLOWED_TRANSITIONS[case.status]),
    }


def consultation_view(case: Case, consultation: Consultation) -> ConsultationView:
    return ConsultationView(
        **{
            "case_id": case.id,
            "case_number": case.number,
            "consultation_id": consultation.id,
            "organisation": consultation.organisation,
            "professional_id": consultation.professional_id,
            "question": consultation.question,
            "requested_on": consultation.requested_on.isoformat(),
            "due": consultation.due.isoformat(),
            "answered_on": consultation.answered_on.isoformat()
            if consultation.answered_on
            else None,
            "asked_by": consultation.asked_by,
            "case_director_id": case.case_director_id,
        }
    )


def detail(case: Case, d: uc.Deps) -> dict[str, Any]:
    return {**d.repo.dump(case), **summary_fields(case, d), "version": case.version}


def router() -> APIRouter:
    api = APIRouter(tags=["cases"])

    @api.post(
        "/cases",
        status_code=status.HTTP_201_CREATED,
        summary="Submit a stuck case (maatwerk professional of a joined organisation)",
    )
    async def submit(
        body: c.SubmitCase,
        d: Deps,
        who: CurrentIdentity,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> dict[str, Any]:
        submitted = await uc.submit(d, who, body, idempotency_key=idempotency_key)
        if submitted.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return detail(submitted.case, d)

    @api.get(
        "/cases",
        summary="Cases you may see",
        description="Filters: status, regievoerder, open cases only, punctuality of a "
        "deadline (intake, case or consultation: on_time, late, or very_late beyond 3x the "
        "term), the case number, the household reference, and text in the question, what "
        "was tried locally or the legal basis. Paged, by case number.",
    )
    async def list_cases(
        request: Request,
        d: Deps,
        who: CurrentIdentity,
        paging: Paging,
        status: Status | None = None,
        case_director_id: str | None = None,
        open: bool = False,
        timeliness: Punctuality | None = None,
        deadline: Literal["intake", "case", "consultation"] = "case",
        number: Annotated[str | None, Query(max_length=20)] = None,
        household_reference: Annotated[str | None, Query(max_length=64)] = None,
        q: Annotated[str | None, Query(min_length=2, max_length=100)] = None,
    ) -> Page[CaseSummary]:
        wanted = CaseFilter(
            status=status,
            case_director_id=case_director_id,
            open_only=open,
            timeliness=timeliness,
            deadline=deadline,
            number=number,
            household_reference=household_reference,
            text=q,
        )
        total, found = await uc.list_cases(d, who, wanted, skip=paging.skip, limit=paging.page_size)
        return Page[CaseSummary].of(request, paging, total, [summary(c, d) for c in found])

    @api.get(
        "/case-directors/{case_director_id}/cases",
        summary="A regievoerder's open cases (regievoerders and PMM staff)",
    )
    async def director_cases(
        request: Request, case_director_id: str, d: Deps, who: CurrentIdentity, paging: Paging
    ) -> Page[CaseSummary]:
        uc.require_staff(who)
        wanted = CaseFilter(case_director_id=case_director_id, open_only=True)
        total, found = await uc.list_cases(d, who, wanted, skip=paging.skip, limit=paging.page_size)
        return Page[CaseSummary].of(request, paging, total, [summary(c, d) for c in found])

    @api.get("/cases/{case_id}", summary="The case file (the read is audited)")
    async def get_case(case_id: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return detail(await uc.get_case(d, who, case_id), d)

    @api.get("/cases/{case_id}/audit", summary="Audit trail: actor, time, action, reason")
    async def audit(case_id: str, d: Deps, who: CurrentIdentity) -> list[dict[str, Any]]:
        return await uc.audit_trail(d, who, case_id)

    @api.post("/cases/{case_id}/triage")
    async def triage(case_id: str, body: c.Triage, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return detail(await uc.triage(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/assign", summary="Assign or reassign to a regievoerder")
    async def assign(case_id: str, body: c.Assign, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return detail(await uc.assign(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/consultations")
    async def consult(
        case_id: str, body: c.RequestConsultation, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return detail(await uc.request_consultation(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/consultations/{consultation_id}/answer")
    async def answer(
        case_id: str,
        consultation_id: str,
        body: c.AnswerConsultation,
        d: Deps,
        who: CurrentIdentity,
    ) -> dict[str, Any]:
        case = await uc.answer_consultation(d, who, case_id, consultation_id, body)
        if uc.can_see(who, case):
            return detail(case, d)
        (answered,) = [k for k in case.consultations if k.id == consultation_id]
        return consultation_view(case, answered).model_dump()

    @api.get(
        "/consultations",
        summary="Open consultations addressed to your organisation (ambassador, maatwerk "
        "professional): the question, not the case file",
    )
    async def my_consultations(d: Deps, who: CurrentIdentity) -> list[ConsultationView]:
        return [consultation_view(case, k) for case, k in await uc.consultations_for(d, who)]

    @api.post("/cases/{case_id}/notes")
    async def note(case_id: str, body: c.Note, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return detail(await uc.add_note(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/suspend")
    async def suspend(
        case_id: str, body: c.Suspend, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return detail(await uc.suspend(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/resume")
    async def resume(
        case_id: str, d: Deps, who: CurrentIdentity, body: c.Resume | None = None
    ) -> dict[str, Any]:
        return detail(await uc.resume(d, who, case_id, body or c.Resume()), d)

    @api.post("/cases/{case_id}/reopen")
    async def reopen(case_id: str, body: c.Reason, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return detail(await uc.reopen(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/escalate", summary="Ask the LET (only while in progress)")
    async def escalate(
        case_id: str, body: c.Escalate, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return detail(await uc.escalate(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/bridging", summary="Ask the overbruggingsprocedure")
    async def bridging(
        case_id: str, body: c.RequestBridging, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return detail(await uc.request_bridging(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/close")
    async def close(case_id: str, body: c.Close, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return detail(await uc.close(d, who, case_id, body), d)

    @api.post("/cases/{case_id}/evaluation", summary="Learning points after closing")
    async def evaluate(
        case_id: str, body: c.Evaluate, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return detail(await uc.evaluate(d, who, case_id, body), d)

    return api
