"""The overbruggingsprocedure's HTTP API: translate, call a use case, render."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from pmm_contracts.events.cases import Money
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import ShortText
from pmm_overbrugging.domain.model import ALLOWED_TRANSITIONS, Application, Form, Status, to_euros
from pmm_overbrugging.service import usecases as uc
from pmm_runtime.auth import CurrentIdentity
from pmm_runtime.errors import RuleViolation
from pmm_runtime.http import PROBLEM_RESPONSES, Page, PageQuery, page_query


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
FIRST_YEAR, LAST_YEAR = 2000, 2100
Year = Annotated[int, Path(ge=FIRST_YEAR, le=LAST_YEAR, description="the budget year")]
Paging = Annotated[PageQuery, Depends(page_query)]


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
    budget_year: int | None = Field(default=None, ge=FIRST_YEAR, le=LAST_YEAR)
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


class ApplicationView(BaseModel):
    """An application as the API shows it: money in euros, what may come next."""

    id: str
    case_id: str
    case_number: str
    status: Status
    allowed_next: list[Status]
    provision: str
    provider: str
    estimated_amount: Decimal
    candidate_payers: list[str]
    conditions: dict[str, dict[str, Any]]
    missing_conditions: list[str]
    form: Form | None
    amount: Decimal
    budget_year: int | None
    period_end: date | None
    paid: Decimal
    recovered: Decimal
    written_off: Decimal
    outstanding: Decimal
    responsible_party: str | None
    legal_ground: str | None
    reason: str | None
    version: int

    @classmethod
    def of(cls, a: Application) -> ApplicationView:
        same = {k: v for k, v in vars(a).items() if k in cls.model_fields}
        money = {m: to_euros(getattr(a, f"{m}_cents")) for m in MONEY}
        return cls(
            **same,
            **money,
            estimated_amount=to_euros(a.estimated_cents),
            allowed_next=sorted(ALLOWED_TRANSITIONS[a.status]),
            missing_conditions=a.missing_conditions(),
        )


MONEY = ("amount", "paid", "recovered", "written_off", "outstanding")


class LedgerEntry(BaseModel):
    entry_id: str
    kind: str
    amount: Decimal
    year: int
    at: datetime


class ApplicationWithLedger(ApplicationView):
    ledger: list[LedgerEntry]


def router() -> APIRouter:
    api = APIRouter(responses=PROBLEM_RESPONSES)

    @api.put("/budgets/{year}", tags=["budget"], summary="Set or raise a year's budget")
    async def set_budget(
        year: Year, body: BudgetBody, d: Deps, who: CurrentIdentity
    ) -> uc.BudgetFigures:
        return await uc.set_budget(d, who, year, body.total)

    @api.get(
        "/budgets/{year}",
        tags=["budget"],
        summary="Committed, paid, recovered, available; outstanding advances; rates",
    )
    async def figures(year: Year, d: Deps, who: CurrentIdentity) -> uc.BudgetFigures:
        return await uc.figures(d, who, year)

    @api.get("/applications", tags=["applications"], summary="Applications, oldest first")
    async def list_applications(
        request: Request,
        paging: Paging,
        d: Deps,
        who: CurrentIdentity,
        case_id: str | None = None,
        status: Status | None = None,
    ) -> Page[ApplicationView]:
        total, found = await uc.search(
            d, who, case_id=case_id, status=status, skip=paging.skip, limit=paging.page_size
        )
        return Page.of(request, paging, total, [ApplicationView.of(a) for a in found])

    @api.get("/applications/{application_id}", tags=["applications"])
    async def get_application(
        application_id: str, d: Deps, who: CurrentIdentity
    ) -> ApplicationWithLedger:
        application = await uc.get(d, who, application_id)
        entries = await uc.ledger(d, who, application_id)
        return ApplicationWithLedger(
            **ApplicationView.of(application).model_dump(),
            ledger=[
                LedgerEntry(
                    entry_id=e["_id"],
                    kind=e["kind"],
                    amount=to_euros(e["amount_cents"]),
                    year=e["year"],
                    at=e["at"],
                )
                for e in entries
            ],
        )

    @api.post(
        "/applications/{application_id}/conditions",
        tags=["applications"],
        summary="The assessor records each condition of the checklist",
    )
    async def conditions(
        application_id: str, body: ConditionsBody, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        given = {name: (c.met, c.note) for name, c in body if c is not None}
        return ApplicationView.of(await uc.record_conditions(d, who, application_id, given))

    @api.post(
        "/applications/{application_id}/decision",
        tags=["applications"],
        summary="Approve as advance or guarantee (budget_holder), or reject",
    )
    async def decide(
        application_id: str, body: Decision, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        if body.approve:
            if body.form is None:
                raise RuleViolation("form", "an approval needs form and amount")
            if body.amount is None:
                raise RuleViolation("amount", "an approval needs form and amount")
            year = body.budget_year or d.today().year
            approved = await uc.approve(
                d,
                who,
                application_id,
                body.command_id,
                body.form,
                body.amount,
                year,
                body.period_end,
            )
            return ApplicationView.of(approved)
        if not body.reason:
            raise RuleViolation("reason", "a rejection needs a reason")
        return ApplicationView.of(
            await uc.reject(d, who, application_id, body.command_id, body.reason)
        )

    @api.post("/applications/{application_id}/payment", tags=["money"])
    async def pay(
        application_id: str, body: MoneyCommand, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        return ApplicationView.of(
            await uc.pay(d, who, application_id, body.command_id, body.amount)
        )

    @api.post("/applications/{application_id}/guarantee/call", tags=["money"])
    async def call(
        application_id: str, body: MoneyCommand, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        return ApplicationView.of(
            await uc.call_guarantee(d, who, application_id, body.command_id, body.amount)
        )

    @api.post("/applications/{application_id}/guarantee/release", tags=["money"])
    async def release(
        application_id: str, body: Command, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        return ApplicationView.of(await uc.release(d, who, application_id, body.command_id))

    @api.post("/applications/{application_id}/responsible-party", tags=["afterwards"])
    async def determine(
        application_id: str, body: Determination, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        return ApplicationView.of(
            await uc.determine(d, who, application_id, body.responsible_party, body.legal_ground)
        )

    @api.post("/applications/{application_id}/recovery", tags=["afterwards"])
    async def recovery(application_id: str, d: Deps, who: CurrentIdentity) -> ApplicationView:
        return ApplicationView.of(await uc.request_recovery(d, who, application_id))

    @api.post("/applications/{application_id}/repayments", tags=["afterwards"])
    async def repay(
        application_id: str, body: MoneyCommand, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        return ApplicationView.of(
            await uc.repay(d, who, application_id, body.command_id, body.amount)
        )

    @api.post("/applications/{application_id}/write-off", tags=["afterwards"])
    async def write_off(
        application_id: str, body: WriteOff, d: Deps, who: CurrentIdentity
    ) -> ApplicationView:
        return ApplicationView.of(
            await uc.write_off(d, who, application_id, body.command_id, body.reason)
        )

    return api
