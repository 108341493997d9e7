"""The register's administrator: organisations (create, edit, join, commitment, leave) and
professionals (add, edit, remove), every form sent to the register as it was typed.

The register decides: which organisation may join or leave, which roles fit an
organisation, whether an e-mail address is taken. The console only offers the forms
(``organisation_actions`` is a display hint like ``labels.STEADY_ACTIONS``) and shows the
register's problem details next to the field they name.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from pmm_console.clients import ServiceError
from pmm_console.context import Ctx, UserCtx, errors_for_fields
from pmm_console.problems import Errors

ADMIN = "register_admin"
PAGE_SIZE = 50

ORGANISATION_FORMS: dict[str, tuple[str, ...]] = {
    "create": ("code", "name", "kind", "region", "joined_on"),
    "update": ("name", "kind", "region"),
    "join": ("on",),
    "commitment": (
        "committed_on",
        "signed_by",
        "time",
        "mandate",
        "budget",
        "own_escalation_route",
    ),
    "leave": ("on",),
}
COMMITMENT_FLAGS = ("time", "mandate", "budget", "own_escalation_route")
PROFESSIONAL_FIELDS = (
    "id",
    "organisation",
    "name",
    "function",
    "roles",
    "life_domains",
    "tags",
    "email",
    "phone",
    "urgent_phone",
)
PROFESSIONAL_LISTS = ("roles", "life_domains")
FIELD_LABELS = {
    "code": "Code",
    "name": "Naam",
    "kind": "Soort organisatie",
    "region": "Regio",
    "joined_on": "Aangesloten per",
    "on": "Datum",
    "committed_on": "Getekend op",
    "signed_by": "Getekend door",
    "time": "Tijd",
    "mandate": "Mandaat",
    "budget": "Budget",
    "own_escalation_route": "Eigen escalatieroute",
    "id": "Kenmerk",
    "organisation": "Organisatie",
    "function": "Functie",
    "roles": "Rollen",
    "life_domains": "Leefgebieden",
    "tags": "Trefwoorden",
    "email": "E-mailadres",
    "phone": "Telefoon",
    "urgent_phone": "Spoednummer",
    "reason": "Reden",
}


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def organisation_actions(org: dict[str, Any]) -> list[str]:
    """The forms the page offers (a display hint; the register decides and its 409 shows):
    a member may record its commitment or leave; any other organisation may join."""
    if org.get("is_member"):
        return ["update", "commitment", "leave"]
    return ["update", "join"]


def organisation_command(action: str, form: FormData) -> dict[str, Any]:
    """The register's body for an organisation form, as typed (empty fields left out)."""
    body: dict[str, Any] = {}
    for name in ORGANISATION_FORMS[action]:
        if name in COMMITMENT_FLAGS:
            body[name] = form.get(name) == "yes"
        elif (value := _text(form, name)) is not None:
            body[name] = value
    return body


def professional_command(form: FormData, *, new: bool) -> dict[str, Any]:
    """The register's body for adding (``new``) or editing a professional, as typed.

    Editing sends the lists as they are ticked (no life domain ticked clears them; no role
    ticked is the register's to refuse); empty text fields are left out (unchanged)."""
    body: dict[str, Any] = {}
    for name in PROFESSIONAL_FIELDS:
        if name in ("id", "organisation") and not new:
            continue
        if name in PROFESSIONAL_LISTS:
            values = [str(v) for v in form.getlist(name)]
            if values or not new:
                body[name] = values
        elif name == "tags":
            typed = _text(form, name)
            tags = [t.strip() for t in (typed or "").split(",") if t.strip()]
            if tags or (not new and name in form):
                body[name] = tags
        elif (value := _text(form, name)) is not None:
            body[name] = value
    return body


def form_errors(error: ServiceError, fields: tuple[str, ...]) -> Errors:
    """The register's problem details under the fields they name; the rest above the form."""
    named = error.field_errors()
    placed = errors_for_fields(named, fields)
    if not named or error.status not in (409, 422):
        placed.setdefault("_form", []).append(error.message())
    return placed


def typed(form: FormData) -> dict[str, Any]:
    """What was typed, to show again with the errors (lists as lists)."""
    values: dict[str, Any] = {}
    for key in form:
        items = [str(v) for v in form.getlist(key)]
        values[key] = items if key in PROFESSIONAL_LISTS else items[-1]
    return values


def router() -> Any:
    web = APIRouter(prefix="/admin")

    def refused(ctx: Ctx) -> Response | None:
        """The administrator's screens are only for the register_admin role."""
        if ctx.has(ADMIN):
            return None
        return ctx.render(
            "error.html",
            403,
            title="Geen toegang",
            message="Alleen de beheerder van het register beheert organisaties en professionals.",
        )

    # Organisations -------------------------------------------------------------------------

    async def organisations_page(
        ctx: Ctx,
        page: int = 1,
        status_code: int = 200,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        result = await ctx.services.register.page(
            "/organisations", ctx.token, page=max(page, 1), page_size=PAGE_SIZE
        )
        return ctx.render(
            "admin_organisations.html",
            status_code,
            result=result,
            values=values or {},
            errors=errors or {},
            field_labels=FIELD_LABELS,
        )

    @web.get("/organisations")
    async def list_organisations(ctx: UserCtx, page: int = 1) -> Response:
        return refused(ctx) or await organisations_page(ctx, page)

    @web.post("/organisations")
    async def create_organisation(ctx: UserCtx) -> Response:
        if no := refused(ctx):
            return no
        form = await ctx.form()
        body = organisation_command("create", form)
        try:
            org = await ctx.services.register.post("/organisations", ctx.token, body)
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = form_errors(exc, ORGANISATION_FORMS["create"])
            return await organisations_page(ctx, 1, exc.status, typed(form), errors)
        ctx.session.say(f"Organisatie {org['name']} is opgenomen in het register.")
        return RedirectResponse(f"/admin/organisations/{org['code']}", status_code=303)

    async def organisation_page(
        ctx: Ctx,
        code: str,
        status_code: int = 200,
        open_form: str | None = None,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        register = ctx.services.register
        org, people = await asyncio.gather(
            register.get(f"/organisations/{code}", ctx.token),
            register.page("/professionals", ctx.token, {"organisation": code}, page_size=200),
        )
        return ctx.render(
            "admin_organisation.html",
            status_code,
            org=org,
            people=people,
            actions=organisation_actions(org),
            open_form=open_form,
            values=values or {},
            errors=errors or {},
            field_labels=FIELD_LABELS,
        )

    @web.get("/organisations/{code}")
    async def organisation(code: str, ctx: UserCtx) -> Response:
        return refused(ctx) or await organisation_page(ctx, code)

    @web.post("/organisations/{code}/{action}")
    async def organisation_action(code: str, action: str, ctx: UserCtx) -> Response:
        if no := refused(ctx):
            return no
        form = await ctx.form()
        if action not in ORGANISATION_FORMS or action == "create":
            return ctx.render("error.html", 404, title="Niet gevonden", message=action)
        body = organisation_command(action, form)
        register = ctx.services.register
        try:
            if action == "update":
                await register.call("PATCH", f"/organisations/{code}", ctx.token, json=body)
            else:
                await register.post(f"/organisations/{code}/{action}", ctx.token, body)
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = form_errors(exc, ORGANISATION_FORMS[action])
            return await organisation_page(ctx, code, exc.status, action, typed(form), errors)
        ctx.session.say(
            {
                "update": "De gegevens van de organisatie zijn bijgewerkt.",
                "join": "De organisatie is aangesloten bij het register.",
                "commitment": "De bestuurlijke afspraken zijn vastgelegd.",
                "leave": "De organisatie is uitgetreden.",
            }[action]
        )
        return RedirectResponse(f"/admin/organisations/{code}", status_code=303)

    # Professionals -------------------------------------------------------------------------

    @web.post("/professionals")
    async def add_professional(ctx: UserCtx) -> Response:
        if no := refused(ctx):
            return no
        form = await ctx.form()
        code = _text(form, "organisation") or ""
        body = professional_command(form, new=True)
        try:
            await ctx.services.register.post("/professionals", ctx.token, body)
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = form_errors(exc, PROFESSIONAL_FIELDS)
            return await organisation_page(ctx, code, exc.status, "add", typed(form), errors)
        ctx.session.say(f"{body.get('name', 'De professional')} staat in het register.")
        return RedirectResponse(f"/admin/organisations/{code}", status_code=303)

    async def professional_page(
        ctx: Ctx,
        professional_id: str,
        status_code: int = 200,
        open_form: str | None = None,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        person = await ctx.services.register.get(f"/professionals/{professional_id}", ctx.token)
        org = await ctx.services.register.get(f"/organisations/{person['organisation']}", ctx.token)
        shown = (
            values
            if open_form == "edit" and values
            else {
                **person,
                "tags": ", ".join(person.get("tags") or ()),
            }
        )
        return ctx.render(
            "admin_professional.html",
            status_code,
            p=person,
            org=org,
            open_form=open_form,
            values=shown,
            reason=(values or {}).get("reason", "") if open_form == "remove" else "",
            errors=errors or {},
            field_labels=FIELD_LABELS,
        )

    @web.get("/professionals/{professional_id}")
    async def professional(professional_id: str, ctx: UserCtx) -> Response:
        return refused(ctx) or await professional_page(ctx, professional_id)

    @web.post("/professionals/{professional_id}/edit")
    async def edit_professional(professional_id: str, ctx: UserCtx) -> Response:
        if no := refused(ctx):
            return no
        form = await ctx.form()
        body = professional_command(form, new=False)
        try:
            await ctx.services.register.call(
                "PATCH", f"/professionals/{professional_id}", ctx.token, json=body
            )
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = form_errors(exc, PROFESSIONAL_FIELDS)
            return await professional_page(
                ctx, professional_id, exc.status, "edit", typed(form), errors
            )
        ctx.session.say("De gegevens in het register zijn bijgewerkt.")
        return RedirectResponse(f"/admin/professionals/{professional_id}", status_code=303)

    @web.post("/professionals/{professional_id}/remove")
    async def remove_professional(professional_id: str, ctx: UserCtx) -> Response:
        if no := refused(ctx):
            return no
        form = await ctx.form()
        register = ctx.services.register
        person = await register.get(f"/professionals/{professional_id}", ctx.token)
        try:
            await register.call(
                "DELETE",
                f"/professionals/{professional_id}",
                ctx.token,
                params={"reason": _text(form, "reason")},
            )
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = form_errors(exc, ("reason",))
            return await professional_page(
                ctx, professional_id, exc.status, "remove", typed(form), errors
            )
        ctx.session.say(f"{person['name']} is uit het register verwijderd.")
        return RedirectResponse(f"/admin/organisations/{person['organisation']}", status_code=303)

    return web
