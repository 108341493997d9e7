"""The HTTP API of systeemleren: translate requests into use-case calls, results into JSON.

Mounted under ``/v1`` by the runtime (the unversioned paths keep working); every list is
paged with ``page``/``page_size`` and answers a ``Page``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from pmm_runtime.auth import CurrentIdentity
from pmm_runtime.http import PROBLEM_RESPONSES, Page, PageQuery, page_query
from pmm_signalen.service import commands as c
from pmm_signalen.service import render
from pmm_signalen.service import usecases as uc
from pmm_signalen.service.views import (
    EXPORT_FIELDS,
    AnySignalView,
    AuditEntry,
    ExportRow,
    Monitor,
)


def deps(request: Request) -> uc.Deps:
    result: uc.Deps = request.app.state.deps
    return result


Deps = Annotated[uc.Deps, Depends(deps)]
Paging = Annotated[PageQuery, Depends(page_query)]


def router() -> APIRouter:
    api = APIRouter(tags=["signals"], responses=PROBLEM_RESPONSES)

    @api.get("/signals", summary="Signals you may read, newest first")
    async def list_signals(
        request: Request,
        d: Deps,
        who: CurrentIdentity,
        query: Annotated[c.ListQuery, Query()],
        paging: Paging,
    ) -> Page[AnySignalView]:
        total, found = await uc.search(d, who, query, skip=paging.skip, limit=paging.page_size)
        return Page[AnySignalView].of(request, paging, total, found)

    @api.get(
        "/signals/export",
        summary="Anonymised signals for other initiatives (PMM staff)",
        response_model=list[ExportRow],
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def export(
        d: Deps,
        who: CurrentIdentity,
        format: c.ExportFormat = "json",
        year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    ) -> Response | list[ExportRow]:
        rows = await uc.export(d, who, year)
        if format == "csv":
            return Response(
                render.export_csv([r.model_dump() for r in rows], EXPORT_FIELDS),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="signalen.csv"'},
            )
        return rows

    @api.get("/signals/{signal_id}", summary="One signal with its assignments and answers")
    async def get_signal(signal_id: str, d: Deps, who: CurrentIdentity) -> AnySignalView:
        return await uc.get(d, who, signal_id)

    @api.get("/signals/{signal_id}/audit", summary="Audit trail of a signal (PMM staff)")
    async def audit(signal_id: str, d: Deps, who: CurrentIdentity) -> list[AuditEntry]:
        return [AuditEntry.model_validate(e) for e in await uc.audit_trail(d, who, signal_id)]

    @api.post(
        "/signals/{signal_id}/responses",
        summary="The assigned organisation answers: received, in progress, measure taken, "
        "no action, forwarded",
    )
    async def respond(
        signal_id: str, body: c.Respond, d: Deps, who: CurrentIdentity
    ) -> AnySignalView:
        return await uc.respond_http(d, who, signal_id, body)

    @api.post("/signals/{signal_id}/assignees", summary="Assign to one more organisation (PMM)")
    async def add_assignee(
        signal_id: str, body: c.AddAssignee, d: Deps, who: CurrentIdentity
    ) -> AnySignalView:
        return await uc.add_assignee(d, who, signal_id, body)

    @api.post("/signals/{signal_id}/reassign", summary="Move an assignment elsewhere (PMM)")
    async def reassign(
        signal_id: str, body: c.Reassign, d: Deps, who: CurrentIdentity
    ) -> AnySignalView:
        return await uc.reassign(d, who, signal_id, body)

    @api.post("/signals/{signal_id}/merge", summary="Merge this duplicate into another (PMM)")
    async def merge(signal_id: str, body: c.Merge, d: Deps, who: CurrentIdentity) -> AnySignalView:
        return await uc.merge(d, who, signal_id, body)

    @api.get("/monitor", summary="Recurring bottlenecks: order-3 candidates (PMM staff)")
    async def monitor(
        d: Deps,
        who: CurrentIdentity,
        window_days: Annotated[int | None, Query(ge=1, le=3660)] = None,
        threshold: Annotated[int | None, Query(ge=2, le=100_000)] = None,
    ) -> Monitor:
        return await uc.monitor(d, who, window_days=window_days, threshold=threshold)

    @api.get(
        "/reports/{year}",
        summary="Jaarrapportage systeemleren as JSON, CSV or an HTML page with charts "
        "(PMM staff and regievoerders)",
        response_class=Response,
        responses={200: {"content": {"application/json": {}, "text/html": {}, "text/csv": {}}}},
    )
    async def yearly_report(
        year: Annotated[int, Path(ge=2000, le=2100)],
        d: Deps,
        who: CurrentIdentity,
        format: c.ReportFormat = "json",
    ) -> Response:
        report = await uc.yearly_report(d, who, year)
        if format == "html":
            return HTMLResponse(render.to_html(report))
        if format == "csv":
            return Response(render.to_csv(report), media_type="text/csv; charset=utf-8")
        return Response(render.to_json(report), media_type="application/json")

    return api
