"""The HTTP API of systeemleren: translate requests into use-case calls, results into JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pmm_contracts.vocabulary import Role
from pmm_runtime.auth import CurrentIdentity, Identity, require_roles
from pmm_runtime.http import Page
from pmm_signalen.domain.model import Signal
from pmm_signalen.service import commands as c
from pmm_signalen.service import render
from pmm_signalen.service import report as rep
from pmm_signalen.service import usecases as uc


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]
Staff = Annotated[Identity, Depends(require_roles(Role.PMM_STAFF))]


def view(signal: Signal) -> dict[str, Any]:
    return signal.model_dump(mode="json") | {"organisations": signal.organisations}


def router() -> APIRouter:
    api = APIRouter(tags=["signals"])

    @api.get("/signals", response_model=Page, summary="Signals you may read")
    async def list_signals(
        d: Deps, who: CurrentIdentity, query: Annotated[c.ListQuery, Query()]
    ) -> Page:
        total, found = await uc.search(d, who, query)
        return Page(
            total=total, page=query.page, page_size=query.page_size, items=[view(s) for s in found]
        )

    @api.get("/signals/export", summary="Anonymised signals for other initiatives (PMM staff)")
    async def export(
        d: Deps,
        who: Staff,
        format: c.ExportFormat = "json",
        year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    ) -> Response:
        rows = await uc.export(d, who, year)
        if format == "csv":
            return Response(
                render.export_csv(rows, uc.EXPORT_FIELDS),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="signalen.csv"'},
            )
        return JSONResponse(rows)

    @api.get("/signals/{signal_id}")
    async def get_signal(signal_id: str, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return view(await uc.get(d, who, signal_id))

    @api.get("/signals/{signal_id}/audit", summary="Audit trail of a signal (PMM staff)")
    async def audit(signal_id: str, d: Deps, who: CurrentIdentity) -> list[dict[str, Any]]:
        trail = await uc.audit_trail(d, who, signal_id)
        return [{**entry, "at": entry["at"].isoformat()} for entry in trail]

    @api.post(
        "/signals/{signal_id}/responses",
        summary="The assigned organisation answers: received, in progress, measure taken, "
        "no action, forwarded",
    )
    async def respond(
        signal_id: str, body: c.Respond, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.respond_http(d, who, signal_id, body))

    @api.post("/signals/{signal_id}/assignees", summary="Assign to one more organisation (PMM)")
    async def add_assignee(
        signal_id: str, body: c.AddAssignee, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.add_assignee(d, who, signal_id, body))

    @api.post("/signals/{signal_id}/reassign", summary="Move an assignment elsewhere (PMM)")
    async def reassign(
        signal_id: str, body: c.Reassign, d: Deps, who: CurrentIdentity
    ) -> dict[str, Any]:
        return view(await uc.reassign(d, who, signal_id, body))

    @api.post("/signals/{signal_id}/merge", summary="Merge this duplicate into another (PMM)")
    async def merge(signal_id: str, body: c.Merge, d: Deps, who: CurrentIdentity) -> dict[str, Any]:
        return view(await uc.merge(d, who, signal_id, body))

    @api.get("/monitor", summary="Recurring bottlenecks: order-3 candidates (PMM staff)")
    async def monitor(
        d: Deps,
        who: CurrentIdentity,
        window_days: Annotated[int | None, Query(ge=1, le=3660)] = None,
        threshold: Annotated[int | None, Query(ge=2)] = None,
    ) -> dict[str, Any]:
        return await uc.monitor(d, who, window_days=window_days, threshold=threshold)

    @api.get(
        "/reports/{year}",
        summary="Jaarrapportage systeemleren as JSON, CSV or an HTML page with charts",
        responses={200: {"content": {"text/html": {}, "text/csv": {}}}},
    )
    async def yearly_report(
        year: Annotated[int, Path(ge=2000, le=2100)],
        d: Deps,
        who: Staff,
        format: c.ReportFormat = "json",
    ) -> Response:
        report = await rep.yearly_report(d.figures, year)
        if format == "html":
            return HTMLResponse(render.to_html(report))
        if format == "csv":
            return Response(render.to_csv(report), media_type="text/csv; charset=utf-8")
        return Response(render.to_json(report), media_type="application/json")

    return api
