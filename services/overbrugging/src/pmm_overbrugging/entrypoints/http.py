"""The overbruggingsprocedure's HTTP API: translate, call a use case, render."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from pmm_contracts.events.cases import Money
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import ShortText
from pmm_contracts.vocabulary import Role
from pmm_overbrugging.domain.model import (
    ALLOWED_TRANSITIONS,
    Application,
    Form,
    RuleViolation,
    to_euros,
)
from pmm_overbrugging.service import usecases as uc
from pmm_runtime.auth import CurrentIdentity


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]
CommandId = Annotated[
    str,
    Field(
        min_length=8,
        max_length=80,
        description="unique id of this command: a retry books nothing twice",
    ),
]
PositiveMoney = Annotated[Money, Field(gt=Decimal(0))]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetBody(Body):
    total: PositiveMoney


class Condition(Body):
    met: bool
    note: ShortText | None = None


class ConditionsBody(Body):
    need_established: Condition | None = None
    provision_available: Condition | None = None
    financing_disputed: Condition | None = None
    urgency: Condition | None = None
    settle_attempt: Condition | None = None


class Decision(Body):
    command_id: CommandId
    approve: bool
    form: Form | None = None
    amount: PositiveMoney | None = None
    budget_year: int | None = Field(default=None, ge=2020, le=2100)
    period_end: date | None = None
    reason: ShortText | None = None


class MoneyCommand(Body):
    command_id: CommandId
    amount: PositiveMoney


class Command(Body):
    command_id: CommandId


class Determination(Body):
    responsible_party: OrgCode
    legal_ground: ShortText


class WriteOff(Body):
    command_id: CommandId
    reason: ShortText


def view(a: Application) -> dict[str, Any]:
    return {
        "id": a.id,
        "case_id": a.case_id,
        "case_number": a.case_number,
        "status": a.status.value,
        "allowed_next": sorted(s.value for s in ALLOWED_TRANSITIONS[a.status]),
        "provision": a.provision,
        "provider": a.provider,
        "estimated_amount": str(to_euros(a.estimated_cents)),
        "candidate_payers": a.candidate_payers,
        "conditions": a.conditions,
        "missing_conditions": a.missing_conditions(),
        "form": a.form.value if a.form else None,
        "amount": str(to_euros(a.amount_cents)),
        "budget_year": a.budget_year,
        "period_end": a.period_end.isoformat() if a.period_end else None,
        "paid": str(to_euros(a.paid_cents)),
        "recovered": str(to_euros(a.recovered_cents)),
        "written_off": str(to_euros(a.written_off_cents)),
        "outstanding": str(to_euros(a.outstanding_cents)),
        "responsible_party": a.responsible_party,
        "legal_ground": a.legal_ground,
        "reason": a.reason,
        "version": a.version,
    }


def router() -> APIRouter:
    api = APIRouter()

    @api.put("/budgets/{year}", tags=["budget"], summary="Set or raise a year's budget")
    async def set_budget(
        year: int, body: BudgetBody, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return await uc.set_budget(d, who, year, body.total)

    @api.get(
        "/budgets/{year}",
        tags=["budget"],
        summary="Committed, paid, recovered, available; outstanding advances; rates",
    )
    async def figures(year: int, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        uc.require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF)
        return await uc.figures(d, year)

    @api.get("/applications", tags=["applications"])
    async def list_applications(
        d: Deps, who: CurrentIdentity, status: str | None = None
    ) -> list[dict[str, Any]]:
        uc.require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF, Role.CASE_DIRECTOR)
        return [view(a) for a in await d.repo.all(status)]

    @api.get("/applications/{application_id}", tags=["applications"])
    async def get_application(application_id: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        uc.require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF, Role.CASE_DIRECTOR)
        application = await uc.get(d, application_id)
        return {
            **view(application),
            "ledger": [
                {
                    **{k: v for k, v in e.items() if k != "amount_cents"},
                    "amount": str(to_euros(e["amount_cents"])),
                }
                for e in await d.repo.entries(application_id)
            ],
        }

    @api.post(
        "/applications/{application_id}/conditions",
        tags=["applications"],
        summary="The assessor records each condition of the checklist",
    )
    async def conditions(
        application_id: str, body: ConditionsBody, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        given = {name: (c.met, c.note) for name, c in body if c is not None}
        return view(await uc.record_conditions(d, who, application_id, given))

    @api.post(
        "/applications/{application_id}/decision",
        tags=["applications"],
        summary="Approve as advance or guarantee (budget_holder), or reject",
    )
    async def decide(
        application_id: str, body: Decision, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        if body.approve:
            if body.form is None or body.amount is None:
                raise RuleViolation("an approval needs form and amount")
            year = body.budget_year or d.today().year
            return view(
                await uc.approve(
                    d,
                    who,
                    application_id,
                    body.command_id,
                    body.form,
                    body.amount,
                    year,
                    body.period_end,
                )
            )
        if not body.reason:
            raise RuleViolation("a rejection needs a reason")
        return view(await uc.reject(d, who, application_id, body.command_id, body.reason))

    @api.post("/applications/{application_id}/payment", tags=["money"])
    async def pay(
        application_id: str, body: MoneyCommand, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.pay(d, who, application_id, body.command_id, body.amount))

    @api.post("/applications/{application_id}/guarantee/call", tags=["money"])
    async def call(
        application_id: str, body: MoneyCommand, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.call_guarantee(d, who, application_id, body.command_id, body.amount))

    @api.post("/applications/{application_id}/guarantee/release", tags=["money"])
    async def release(
        application_id: str, body: Command, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.release(d, who, application_id, body.command_id))

    @api.post("/applications/{application_id}/responsible-party", tags=["afterwards"])
    async def determine(
        application_id: str, body: Determination, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(
            await uc.determine(d, who, application_id, body.responsible_party, body.legal_ground)
        )

    @api.post("/applications/{application_id}/recovery", tags=["afterwards"])
    async def recovery(application_id: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return view(await uc.request_recovery(d, who, application_id))

    @api.post("/applications/{application_id}/repayments", tags=["afterwards"])
    async def repay(
        application_id: str, body: MoneyCommand, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.repay(d, who, application_id, body.command_id, body.amount))

    @api.post("/applications/{application_id}/write-off", tags=["afterwards"])
    async def write_off(
        application_id: str, body: WriteOff, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.write_off(d, who, application_id, body.command_id, body.reason))

    return api
