"""Systeemleren: the signals assigned to my organisation, answered from the page (the same
answer as on the organisation's response topic), and the yearly report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from pmm_console import report as layout
from pmm_console.clients import ServiceError
from pmm_console.context import UserCtx, errors_for_fields
from pmm_console.problems import Errors
from pmm_console.views.cases import names, organisations

PAGE_SIZE = 25
REPORT_FORMATS = {"html": "text/html", "csv": "text/csv", "json": "application/json"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# The report's own page comes from signalen; shown in the console's origin it may style
# itself but run nothing and load nothing.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def router() -> Any:
    web = APIRouter()

    @web.get("/signals")
    async def signals(ctx: UserCtx, status: str = "", page: int = 1) -> Response:
        who = ctx.who
        params = {"status": status}
        if not who.has_any("pmm_staff", "case_director"):
            params["organisation"] = who.organisation
        result = await ctx.services.signalen.page(
            "/signals", ctx.token, params, page=max(page, 1), page_size=PAGE_SIZE
        )
        orgs, _ = await organisations(ctx)
        return ctx.render("signals.html", result=result, status=status, org_names=names(orgs))

    async def signal_page(
        ctx: UserCtx,
        signal_id: str,
        status_code: int = 200,
        values: dict[str, Any] | None = None,
        errors: Errors | None = None,
    ) -> Response:
        signal = await ctx.services.signalen.get(f"/signals/{signal_id}", ctx.token)
        orgs, _ = await organisations(ctx)
        mine = [
            a
            for a in signal.get("assignments", [])
            if a.get("organisation") == ctx.who.organisation
        ]
        return ctx.render(
            "signal.html",
            status_code,
            signal=signal,
            mine=mine,
            organisations=orgs,
            org_names=names(orgs),
            values=values or {},
            errors=errors or {},
        )

    @web.get("/signals/{signal_id}")
    async def signal(signal_id: str, ctx: UserCtx) -> Response:
        return await signal_page(ctx, signal_id)

    @web.post("/signals/{signal_id}/respond")
    async def respond(signal_id: str, ctx: UserCtx) -> Response:
        form = await ctx.form()
        body = {
            k: v.strip()
            for k in ("status", "explanation", "forward_to")
            if isinstance(v := form.get(k), str) and v.strip()
        }
        try:
            await ctx.services.signalen.post(f"/signals/{signal_id}/responses", ctx.token, body)
        except ServiceError as exc:
            if exc.status not in (403, 409, 422):
                raise
            errors = errors_for_fields(exc.field_errors(), ("status", "explanation", "forward_to"))
            if exc.status != 422 or not exc.field_errors():
                errors.setdefault("_form", []).append(exc.message())
            return await signal_page(ctx, signal_id, exc.status, dict(form), errors)
        ctx.session.say("Uw opvolging is vastgelegd bij Systeemleren.")
        return RedirectResponse(f"/signals/{signal_id}", status_code=303)

    @web.get("/report")
    async def report(ctx: UserCtx, year: int | None = None) -> Response:
        current = datetime.now(UTC).year
        chosen = year or current
        answer, (orgs, _) = await asyncio.gather(
            ctx.services.signalen.get(f"/reports/{chosen}", ctx.token, {"format": "json"}),
            organisations(ctx),
        )
        return ctx.render(
            "report.html",
            year=chosen,
            years=list(range(current, current - 6, -1)),
            report=answer,
            summary=layout.figures(layout.summary(answer)),
            tables=layout.tables(answer, names(orgs)),
        )

    @web.get("/report/{year}.{fmt}")
    async def report_file(year: int, fmt: str, ctx: UserCtx) -> Response:
        if fmt not in (*REPORT_FORMATS, "xlsx"):
            return ctx.render("error.html", 404, title="Niet gevonden", message=fmt)
        name = f"jaarrapportage-systeemleren-{year}.{fmt}"
        download = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt in ("csv", "xlsx"):
            # signalen's figures, laid out by the console: names, Dutch labels, Excel's way
            answer, (orgs, _) = await asyncio.gather(
                ctx.services.signalen.get(f"/reports/{year}", ctx.token, {"format": "json"}),
                organisations(ctx),
            )
            if fmt == "csv":
                body = layout.to_csv(answer, names(orgs))
                return Response(body, media_type="text/csv; charset=utf-8", headers=download)
            return Response(layout.to_xlsx(answer, names(orgs)), media_type=XLSX, headers=download)
        answer_file = await ctx.services.signalen.download(
            f"/reports/{year}", ctx.token, {"format": fmt}
        )
        headers = {"Content-Security-Policy": REPORT_CSP}
        if fmt != "html":
            headers.update(download)
        return Response(
            answer_file.content,
            media_type=answer_file.headers.get("content-type", REPORT_FORMATS[fmt]),
            headers=headers,
        )

    return web
