"""The overbruggingsprocedure: the budget holder's applications (conditions, decision,
payment or guarantee, responsible party, recovery) and the year's budget with its ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from pmm_console import labels
from pmm_console.clients import ServiceError
from pmm_console.context import Ctx, UserCtx, errors_for_fields
from pmm_console.problems import Errors
from pmm_console.views.cases import _amount, names, organisations

PAGE_SIZE = 25

# form -> (the service's path under /applications/{id}/, fields, the allowed_next status
# that offers it; None: offered while the application is received)
ACTIONS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "conditions": ("conditions", tuple(labels.CONDITIONS), None),
    "decision": (
        "decision",
        ("approve", "form", "amount", "budget_year", "period_end", "reason"),
        "approved",
    ),
    "payment": ("payment", ("amount",), "paid"),
    "call": ("guarantee/call", ("amount",), "called"),
    "release": ("guarantee/release", (), "released"),
    "determine": ("responsible-party", ("responsible_party", "legal_ground"), "determined"),
    "recovery": ("recovery", (), "recovery_requested"),
    "repayment": ("repayments", ("amount",), "recovered"),
    "write_off": ("write-off", ("reason",), "written_off"),
}
NO_COMMAND_ID = {"conditions", "determine", "recovery"}


def application_actions(application: dict[str, Any]) -> list[str]:
    """The forms to show: from the service's ``allowed_next`` (a payment only for an
    advance, a call only for a guarantee); the checklist while it is received."""
    allowed = set(application.get("allowed_next") or [])
    form = application.get("form")
    found = []
    for action, (_, _, target) in ACTIONS.items():
        if target is None:
            if application.get("status") == "received":
                found.append(action)
        elif target in allowed:
            if action == "payment" and form != "advance":
                continue
            if action == "call" and form != "guarantee":
                continue
            found.append(action)
    return found


def command(action: str, form: FormData) -> dict[str, Any] | None:
    def text(name: str) -> str | None:
        value = form.get(name)
        return value.strip() or None if isinstance(value, str) else None

    if action == "conditions":
        body: dict[str, Any] = {}
        for name in labels.CONDITIONS:
            met = text(f"{name}_met")
            if met:
                body[name] = {
                    "met": met == "yes",
                    **({"note": n} if (n := text(f"{name}_note")) else {}),
                }
        return body
    body = {}
    for name in ACTIONS[action][1]:
        value = text(name)
        if value is None:
            continue
        if name == "approve":
            body[name] = {"yes": True, "no": False}.get(value, value)
        elif name == "amount":
            body[name] = _amount(value)
        else:
            body[name] = value
    if action not in NO_COMMAND_ID:
        body["command_id"] = text("command_id") or str(uuid.uuid4())
    if action == "recovery":
        return None
    return body


def router() -> Any:
    web = APIRouter()

    @web.get("/applications")
    async def applications(ctx: UserCtx, status: str = "", page: int = 1) -> Response:
        result = await ctx.services.overbrugging.page(
            "/applications", ctx.token, {"status": status}, page=max(page, 1), page_size=PAGE_SIZE
        )
        return ctx.render("applications.html", result=result, status=status)

    async def application_page(
        ctx: Ctx,
        application_id: str,
        status_code: int = 200,
        open_action: str | None = None,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        application = await ctx.services.overbrugging.get(
            f"/applications/{application_id}", ctx.token
        )
        actions = application_actions(application) if ctx.has("budget_holder") else []
        orgs, _ = await organisations(ctx)
        return ctx.render(
            "application.html",
            status_code,
            a=application,
            actions=actions,
            open_action=open_action,
            values=values or {},
            errors=errors or {},
            organisations=orgs,
            org_names=names(orgs),
            command_id=str(uuid.uuid4()),  # a second click on the same form books nothing twice
            year=datetime.now(UTC).year,
        )

    @web.get("/applications/{application_id}")
    async def application(application_id: str, ctx: UserCtx) -> Response:
        return await application_page(ctx, application_id)

    @web.post("/applications/{application_id}/actions/{action}")
    async def act(application_id: str, action: str, ctx: UserCtx) -> Response:
        form = await ctx.form()
        if action not in ACTIONS:
            return ctx.render("error.html", 404, title="Niet gevonden", message=action)
        path, fields, _ = ACTIONS[action]
        try:
            await ctx.services.overbrugging.post(
                f"/applications/{application_id}/{path}", ctx.token, command(action, form)
            )
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = errors_for_fields(exc.field_errors(), fields)
            if exc.status != 422 or not exc.field_errors():
                errors.setdefault("_form", []).append(exc.message())
            values = {k: form.get(k) for k in form}
            return await application_page(ctx, application_id, exc.status, action, values, errors)
        ctx.session.say("Vastgelegd bij de overbruggingsprocedure.")
        return RedirectResponse(f"/applications/{application_id}", status_code=303)

    async def budget_page(
        ctx: Ctx, year: int, status_code: int = 200, errors: Errors | None = None
    ) -> Response:
        figures: dict[str, Any] | None = None
        missing: str | None = None
        try:
            figures = await ctx.services.overbrugging.get(f"/budgets/{year}", ctx.token)
        except ServiceError as exc:
            if exc.status != 404:
                raise
            missing = exc.detail
        return ctx.render(
            "budget.html",
            status_code,
            year=year,
            figures=figures,
            missing=missing,
            errors=errors or {},
        )

    @web.get("/budget")
    async def budget(ctx: UserCtx, year: int | None = None) -> Response:
        return await budget_page(ctx, year or datetime.now(UTC).year)

    @web.post("/budget/{year}")
    async def set_budget(year: int, ctx: UserCtx) -> Response:
        form = await ctx.form()
        total = form.get("total")
        body = {"total": _amount(total.strip())} if isinstance(total, str) and total.strip() else {}
        try:
            await ctx.services.overbrugging.put(f"/budgets/{year}", ctx.token, body)
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = errors_for_fields(exc.field_errors(), ("total",))
            if exc.status != 422 or not exc.field_errors():
                errors.setdefault("_form", []).append(exc.message())
            return await budget_page(ctx, year, exc.status, errors)
        ctx.session.say(f"Budget {year} vastgelegd.")
        return RedirectResponse(f"/budget?year={year}", status_code=303)

    return web
