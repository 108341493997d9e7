"""Swagger UI and ReDoc from local assets, so ``/docs`` and ``/redoc`` work offline.

FastAPI's own pages load their scripts and styles from a CDN, which a government-internal
network does not reach: the page renders blank. ``install_offline_docs(app)`` replaces both
pages with the same ones pointing at the assets the ``fastapi-offline`` package ships, served
by the service itself under ``/docs-assets``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route

ASSETS_URL = "/docs-assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def assets_directory() -> Path:
    """Where the installed ``fastapi-offline`` package keeps the Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def _path_of(route: BaseRoute) -> str | None:
    return route.path if isinstance(route, Route | Mount) else None


def install_offline_docs(
    app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc"
) -> None:
    """Serve ``docs_url`` (Swagger UI) and ``redoc_url`` (ReDoc) from local assets.

    Call it once on an app built with FastAPI's defaults (the CDN pages are replaced) or
    with ``docs_url=None, redoc_url=None`` (the pages are added)."""
    if app.openapi_url is None:
        raise ValueError("offline docs need the OpenAPI document (openapi_url is None)")
    openapi_url = app.openapi_url
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    replaced = {docs_url, redoc_url, oauth2_redirect, ASSETS_URL}
    app.router.routes[:] = [r for r in app.router.routes if _path_of(r) not in replaced]
    app.docs_url, app.redoc_url = docs_url, redoc_url
    app.mount(ASSETS_URL, StaticFiles(directory=assets_directory()), name="docs-assets")

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    async def swagger(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=base + oauth2_redirect,
            swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route(docs_url, swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route(oauth2_redirect, redirect, methods=["GET"], include_in_schema=False)
    app.add_api_route(redoc_url, redoc, methods=["GET"], include_in_schema=False)
