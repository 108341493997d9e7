"""Sign-in and sign-out, and the start page.

Two ways in: a token of the platform's issuer (any RS256 token the services accept), or,
in development only, a token the console signs with the local issuer's key for an
organisation, role and person picked from the register.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from pmm_console.clients import ServiceError
from pmm_console.context import AnyCtx, Ctx, UserCtx
from pmm_console.labels import ROLES
from pmm_console.problems import Message
from pmm_runtime.auth import InvalidToken

DEV_READER = ("pmm", "register_admin", "console-dev-login")
"""Who the development sign-in reads the register as (organisation, role, subject)."""


def _safe_next(target: str | None) -> str:
    """Only a path of the console itself (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


async def _register_choices(ctx: Ctx, organisation: str | None) -> dict[str, Any]:
    """Organisations and people from the register, read with a development token."""
    issuer = ctx.console.dev_issuer
    assert issuer is not None
    org, role, sub = DEV_READER
    token = issuer.issue(subject=sub, organisation=org, roles=[role], name="Console (dev)")
    organisations: list[dict[str, Any]] = []
    people: list[dict[str, Any]] = []
    problem: Message | None = None
    try:
        every = await ctx.services.register.every("/organisations", token)
        organisations = sorted(
            (o for o in every if o.get("is_member")), key=lambda o: str(o.get("name"))
        )
        chosen = organisation or (organisations[0]["code"] if organisations else None)
        if chosen:
            page = await ctx.services.register.page(
                "/professionals", token, {"organisation": chosen}, page_size=100
            )
            people = sorted(page.items, key=lambda p: str(p.get("name")))
        organisation = chosen
    except ServiceError as exc:
        dutch = exc.message()
        problem = Message(f"Het register antwoordt niet zoals verwacht. {dutch.text}", dutch.detail)
    return {
        "organisations": organisations,
        "people": people,
        "organisation": organisation,
        "problem": problem,
    }


async def _organisation_name(ctx: Ctx, token: str, code: str) -> str | None:
    """The register's name of the person's organisation, for the header (if readable)."""
    try:
        org = await ctx.services.register.get(f"/organisations/{code}", token)
    except ServiceError:
        return None
    name = org.get("name") if isinstance(org, dict) else None
    return str(name) if name else None


def router() -> Any:
    web = APIRouter()

    @web.get("/login")
    async def login_page(
        ctx: AnyCtx, next: str | None = None, organisation: str | None = None
    ) -> Response:
        choices = await _register_choices(ctx, organisation) if ctx.console.dev_issuer else {}
        if ctx.request.headers.get("HX-Request") == "true" and organisation:
            return ctx.render("_login_people.html", **choices)
        return ctx.render(
            "login.html", next=_safe_next(next), roles=ROLES, errors={}, values={}, **choices
        )

    @web.post("/login/dev")
    async def login_dev(ctx: AnyCtx) -> Response:
        form = await ctx.form()
        issuer = ctx.console.dev_issuer
        if issuer is None:
            return ctx.render("error.html", 404, title="Niet gevonden", message="")
        organisation = str(form.get("organisation") or "")
        role = str(form.get("role") or "")
        person = str(form.get("person") or "")
        choices = await _register_choices(ctx, organisation or None)
        errors: dict[str, list[str]] = {}
        if organisation not in {o["code"] for o in choices["organisations"]}:
            errors["organisation"] = ["Kies een aangesloten organisatie."]
        if role not in ROLES:
            errors["role"] = ["Kies een rol."]
        chosen = next((p for p in choices["people"] if p.get("id") == person), None)
        if person and chosen is None:
            errors["person"] = ["Deze persoon hoort niet bij de gekozen organisatie."]
        if errors:
            return ctx.render(
                "login.html",
                422,
                next=_safe_next(str(form.get("next") or "")),
                roles=ROLES,
                errors=errors,
                values=dict(form),
                **choices,
            )
        token = issuer.issue(
            subject=chosen["id"] if chosen else f"{organisation}-dev",
            organisation=organisation,
            roles=[role],
            name=str(chosen["name"]) if chosen else None,
        )
        named = {str(o.get("code")): o.get("name") for o in choices["organisations"]}
        ctx.session.sign_in(
            token,
            hours=ctx.console.settings.session_hours,
            organisation_name=str(named.get(organisation) or "") or None,
        )
        return RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)

    @web.post("/login/token")
    async def login_token(ctx: AnyCtx) -> Response:
        form = await ctx.form()
        token = str(form.get("token") or "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            identity = ctx.console.verifier.verify(token)
        except InvalidToken as exc:
            choices = await _register_choices(ctx, None) if ctx.console.dev_issuer else {}
            return ctx.render(
                "login.html",
                422,
                next=_safe_next(str(form.get("next") or "")),
                roles=ROLES,
                errors={"token": [f"Dit token wordt niet geaccepteerd ({exc})."]},
                values={},
                **choices,
            )
        ctx.session.sign_in(
            token,
            hours=ctx.console.settings.session_hours,
            organisation_name=await _organisation_name(ctx, token, identity.organisation),
        )
        return RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)

    @web.post("/logout")
    async def logout(ctx: AnyCtx) -> Response:
        await ctx.form()
        ctx.session.sign_out()
        ctx.session.say("U bent afgemeld.")
        return RedirectResponse("/login", status_code=303)

    @web.get("/")
    async def home(ctx: UserCtx) -> Response:
        return ctx.render("home.html")

    return web
