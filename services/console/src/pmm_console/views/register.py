"""The register: who to call where, with the urgent line first."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from pmm_console.clients import PageResult, ServiceError
from pmm_console.context import UserCtx
from pmm_console.views.cases import names, organisations

PAGE_SIZE = 20


def router() -> Any:
    web = APIRouter()

    @web.get("/register")
    async def search(
        ctx: UserCtx,
        q: str = "",
        organisation: str = "",
        role: str = "",
        life_domain: str = "",
        page: int = 1,
    ) -> Response:
        params = {"q": q, "organisation": organisation, "role": role, "life_domain": life_domain}
        register = ctx.services.register

        async def found() -> PageResult | ServiceError:
            try:
                return await register.page(
                    "/professionals", ctx.token, params, page=max(page, 1), page_size=PAGE_SIZE
                )
            except ServiceError as exc:
                if exc.status == 503:
                    raise
                return exc

        async def urgent() -> list[dict[str, Any]]:
            if not organisation:
                return []
            try:
                answer = await register.get(
                    "/contact",
                    ctx.token,
                    {"organisation": organisation, "urgent": "true", "life_domain": life_domain},
                )
            except ServiceError:
                return []
            items: list[dict[str, Any]] = (
                answer.get("items", []) if isinstance(answer, dict) else answer
            )
            return items

        (orgs, orgs_problem), result, urgent_line = await asyncio.gather(
            organisations(ctx), found(), urgent()
        )
        problem = result.message() if isinstance(result, ServiceError) else orgs_problem
        values = {**params, "page": page}
        template = (
            "_register_results.html" if ctx.request.headers.get("HX-Request") else ("register.html")
        )
        return ctx.render(
            template,
            values=values,
            organisations=orgs,
            org_names=names(orgs),
            result=None if isinstance(result, ServiceError) else result,
            urgent=urgent_line,
            problem=problem,
        )

    return web
