"""The Landelijk Escalatie Team: the chair's escalations, from admissibility to outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from pmm_console import labels
from pmm_console.clients import ServiceError
from pmm_console.context import Ctx, UserCtx, errors_for_fields
from pmm_console.problems import Errors
from pmm_console.views.cases import names, organisations, people

PAGE_SIZE = 25

# form -> (the LET's path under /escalations/{id}/, the fields)
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admissibility": ("admissibility", ("admitted", "reason")),
    "withdraw": ("withdrawal", ("solved_under_pressure", "reason")),
    "schedule": ("session", ("session_date", "executive_ids")),
    "attendance": ("session/attendance", ("present",)),
    "agreement": ("agreements", ("organisation", "action", "deadline")),
    "outcome": ("outcome", ("outcome", "summary")),
}
BOOLEAN = {"admitted", "solved_under_pressure"}
LISTS = {"executive_ids", "present"}


def command(action: str, form: FormData) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ACTIONS[action][1]:
        if name in LISTS:
            values = [str(v) for v in form.getlist(name)]
            if values or name == "present":
                body[name] = values
            continue
        value = form.get(name)
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            continue
        body[name] = {"yes": True, "no": False}.get(text, text) if name in BOOLEAN else text
    return body


def router() -> Any:
    web = APIRouter()

    @web.get("/escalations")
    async def escalations(ctx: UserCtx, status: str = "", page: int = 1) -> Response:
        result = await ctx.services.let.page(
            "/escalations", ctx.token, {"status": status}, page=max(page, 1), page_size=PAGE_SIZE
        )
        orgs, _ = await organisations(ctx)
        return ctx.render("escalations.html", result=result, status=status, org_names=names(orgs))

    async def escalation_page(
        ctx: Ctx,
        escalation_id: str,
        status_code: int = 200,
        open_action: str | None = None,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        escalation = await ctx.services.let.get(f"/escalations/{escalation_id}", ctx.token)
        actions = (
            labels.ESCALATION_ACTIONS.get(escalation["status"], [])
            if ctx.has("let_chair", "pmm_staff")
            else []
        )
        proposal = None
        session_date = (values or {}).get("session_date") or str(
            datetime.now(UTC).date() + timedelta(days=14)
        )
        if "schedule" in actions:
            try:
                proposal = await ctx.services.let.get(
                    f"/escalations/{escalation_id}/session/proposal",
                    ctx.token,
                    {"session_date": session_date},
                )
            except ServiceError as exc:
                if exc.status not in (403, 409, 422):
                    raise
        session = escalation.get("session") or {}
        invited = [*(session.get("invited") or []), *((proposal or {}).get("invited") or [])]
        orgs, _ = await organisations(ctx)
        person_names = await people(
            ctx,
            [
                escalation.get("requested_by"),
                session.get("chair_id"),
                *(i.get("executive_id") for i in invited),
                *(i.get("deputy_for") for i in invited),
            ],
        )
        return ctx.render(
            "escalation.html",
            status_code,
            e=escalation,
            actions=actions,
            proposal=proposal,
            session_date=session_date,
            open_action=open_action,
            values=values or {},
            errors=errors or {},
            org_names=names(orgs),
            person_names=person_names,
        )

    @web.get("/escalations/{escalation_id}")
    async def escalation(escalation_id: str, ctx: UserCtx) -> Response:
        return await escalation_page(ctx, escalation_id)

    @web.post("/escalations/{escalation_id}/actions/{action}")
    async def act(escalation_id: str, action: str, ctx: UserCtx) -> Response:
        form = await ctx.form()
        if action not in ACTIONS and not action.startswith("done-"):
            return ctx.render("error.html", 404, title="Niet gevonden", message=action)
        if action.startswith("done-"):
            path, body = f"agreements/{action.removeprefix('done-')}/done", None
        else:
            path, body = ACTIONS[action][0], command(action, form)
        try:
            await ctx.services.let.post(f"/escalations/{escalation_id}/{path}", ctx.token, body)
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            fields = ACTIONS.get(action, ("", ()))[1]
            errors = errors_for_fields(exc.field_errors(), fields)
            if exc.status != 422 or not exc.field_errors():
                errors.setdefault("_form", []).append(exc.message())
            values = {k: form.get(k) for k in form}
            return await escalation_page(ctx, escalation_id, exc.status, action, values, errors)
        ctx.session.say("Vastgelegd bij het LET.")
        return RedirectResponse(f"/escalations/{escalation_id}", status_code=303)

    return web
