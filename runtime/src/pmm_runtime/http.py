"""HTTP base: RFC 9457 problem details, one paging style, ``/healthz``, ``/readyz``, ``/metrics``.

Errors always answer ``application/problem+json`` with a ``type`` URI per kind
(``pmm_runtime.errors``): a ``PlatformError`` raised anywhere renders with its own status and
field; a request that does not match its schema is 422 ``invalid-input`` naming each field in
``errors[].field``; a store that is away is 503 ``unavailable``; anything else is a 500
problem document (never a plain-text page).

Every list route takes ``page`` (from 1) and ``page_size`` (1..``MAX_PAGE_SIZE``) and answers
a ``Page``: ``total``, ``page``, ``page_size``, ``items`` and a ``next`` link (``None`` on
the last page). Numbers beyond the bounds answer 422, never 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Annotated, Any, Generic, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pmm_runtime.errors import PROBLEM_TYPE_PREFIX, PlatformError, Unavailable
from pmm_runtime.logging import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
MAX_PAGE_SIZE = 200
MAX_PAGE = 100_000

ReadinessCheck = Callable[[], Awaitable[bool]]
T = TypeVar("T")


class PageQuery(BaseModel):
    """Which page of a list: ``page`` from 1, ``page_size`` items per page."""

    page: int = 1
    page_size: int = 50

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.page_size


def page_query(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page number, from 1")] = 1,
    page_size: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"items per page, at most {MAX_PAGE_SIZE}")
    ] = 50,
) -> PageQuery:
    """The paging query of every list route (``Depends(page_query)``)."""
    return PageQuery(page=page, page_size=page_size)


class Page(BaseModel, Generic[T]):
    """One page of a list answer: ``total`` matches, the ``page`` asked for, its items and
    the link to the next page (``None`` on the last one)."""

    total: int
    page: int
    page_size: int
    items: list[T]
    next: str | None = None

    @classmethod
    def of(cls, request: Request, query: PageQuery, total: int, items: Sequence[T]) -> Page[T]:
        more = query.page * query.page_size < total and query.page < MAX_PAGE
        link = str(request.url.include_query_params(page=query.page + 1)) if more else None
        return cls(
            total=total, page=query.page, page_size=query.page_size, items=list(items), next=link
        )


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
    kind: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + (kind or _kind_of(status)),
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


def _kind_of(status: int) -> str:
    return {401: "unauthorized", 422: "invalid-input", 500: "internal", 503: "unavailable"}.get(
        status, "http"
    )


def render(error: PlatformError, instance: str | None = None) -> JSONResponse:
    """The one renderer of the platform's errors."""
    body = error.problem()
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


# Declared on every route so OpenAPI lists the problem answers (NL API Design Rules).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": text,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, text in {
        401: "no valid bearer token",
        403: "not allowed for this role or organisation",
        404: "not found, or not for you",
        409: "changed meanwhile, exists already, or not possible in the current status",
        422: "invalid input or a business rule; `errors[].field` names the field",
        503: "a dependency is not reachable",
    }.items()
}


class Problem(BaseModel):
    """RFC 9457 problem details as every service answers them."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    error: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


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
        field = errors[0]["field"] if errors else None
        return problem(
            422,
            f"invalid input: {names}",
            instance=request.url.path,
            kind="invalid-input",
            field=field,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            exc.status_code, str(exc.detail), instance=request.url.path, headers=exc.headers
        )

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.detail, instance=request.url.path, **exc.extra)

    @app.exception_handler(PlatformError)
    async def _platform(request: Request, exc: PlatformError) -> JSONResponse:
        return render(exc, request.url.path)

    @app.exception_handler(PyMongoError)
    async def _store(request: Request, exc: PyMongoError) -> JSONResponse:
        log.warning("store unavailable", error=repr(exc), path=request.url.path)
        response = render(
            Unavailable("the store is not reachable; try again shortly"), request.url.path
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", error=repr(exc), path=request.url.path)
        return problem(500, "an unexpected error; it was logged", instance=request.url.path)

    for error_class, status in (error_statuses or {}).items():  # pragma: no cover - legacy

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
