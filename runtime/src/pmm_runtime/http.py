"""HTTP base: RFC 9457 problem details, ``/healthz``, ``/readyz``, ``/metrics``.

Errors always answer ``application/problem+json``. A 422 names each bad field in
``errors[].field`` and in ``detail``; a domain error class maps to its status through the
``error_statuses`` table each service passes in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

ReadinessCheck = Callable[[], Awaitable[bool]]


class Page(BaseModel):
    """One page of a list answer: ``total`` matches, the ``page`` asked for, its items."""

    total: int
    page: int
    page_size: int
    items: list[dict[str, Any]]


class ProblemError(Exception):
    """Raise in a route to answer with a problem document and extra members."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_problem_handlers(
    app: FastAPI, error_statuses: Mapping[type[Exception], int] | None = None
) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        names = ", ".join(dict.fromkeys(e["field"] for e in errors))
        return problem(422, f"invalid input: {names}", instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            exc.status_code, str(exc.detail), instance=request.url.path, headers=exc.headers
        )

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.detail, instance=request.url.path, **exc.extra)

    for error_class, status in (error_statuses or {}).items():

        def make(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
            async def _domain(request: Request, exc: Exception) -> JSONResponse:
                reserved = {"type", "title", "status", "detail", "instance", "error"}
                extra = {
                    k: v
                    for k, v in (getattr(exc, "problem_extra", None) or {}).items()
                    if k not in reserved
                }
                return problem(
                    status, str(exc), instance=request.url.path, error=type(exc).__name__, **extra
                )

            return _domain

        app.add_exception_handler(error_class, make(status))


def install_health_routes(
    app: FastAPI, checks: Mapping[str, ReadinessCheck], render_metrics: Callable[[], bytes]
) -> None:
    @app.get("/healthz", tags=["operations"], summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Broker and database reachable",
        responses={503: {"description": "a dependency is not reachable"}},
    )
    async def readyz() -> Response:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        body = {
            "status": "ready" if ready else "not ready",
            "checks": {k: "ok" if v else "failing" for k, v in results.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(render_metrics(), media_type="text/plain; version=0.0.4")
