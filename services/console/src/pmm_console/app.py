"""create_app(settings): the one place that wires the console.

The console keeps no data: every page is what the five services answer to the signed-in
person's token. It has no broker and no store, so it is ready when it can reach the Loket
and the register.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape
from prometheus_client import Counter, generate_latest

from pmm_console import context as ctx_module
from pmm_console.clients import SERVICES, ServiceClient, ServiceError, Services
from pmm_console.context import Console, CsrfRefused, SignInRequired, context
from pmm_console.session import COOKIE, Session, SessionCodec
from pmm_console.settings import ConsoleSettings
from pmm_console.views import admin, auth, cases, let, overbrugging, register, signals
from pmm_runtime.auth import LocalIssuer, TokenVerifier
from pmm_runtime.http import install_health_routes
from pmm_runtime.logging import configure_logging, get_logger
from pmm_runtime.metrics import Metrics
from pmm_runtime.telemetry import RequestObserver

log = get_logger(__name__)

SECURITY_HEADERS = {
    # Everything comes from the console itself: no CDN, no external fonts or scripts.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def htmx_script() -> Path:
    """htmx as the ``django-js-lib-htmx`` package ships it (found without importing it)."""
    spec = find_spec("js_lib_htmx")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the django-js-lib-htmx package (htmx) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "htmx" / "htmx.min.js"


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("pmm_console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["datum"] = ctx_module.dutch_date
    env.filters["cents"] = ctx_module.dutch_cents
    env.filters["euro"] = ctx_module.dutch_money
    env.filters["label"] = ctx_module.label
    env.filters["labels"] = ctx_module.labels_of
    return env


def create_app(
    settings: ConsoleSettings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The console. ``transports`` lets a test reach an in-process service app."""
    settings = settings or ConsoleSettings()
    configure_logging(settings.log_level, settings.log_json)
    chosen = transports or {}
    services = Services(
        **{
            name: ServiceClient(
                name,
                getattr(settings, f"{name}_url"),
                timeout_s=settings.service_timeout_s,
                transport=chosen.get(name),
            )
            for name in SERVICES
        }
    )
    dev_issuer = None
    if settings.dev_login:
        dev_issuer = LocalIssuer(
            settings.dev_issuer_key_file.read_text(encoding="utf-8"),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    console = Console(
        settings=settings,
        services=services,
        verifier=TokenVerifier(
            settings.public_key_pem(), issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
        codec=SessionCodec(settings.session_secret),
        templates=templates(),
        dev_issuer=dev_issuer,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("console started", dev_login=settings.dev_login)
        try:
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="PMM console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.console = console
    # The platform's metrics (process, HTTP per route and status, as the services have them)
    # with the console's own beside them; the access log line per request.
    observed = Metrics("console")
    metrics = observed.registry
    pages = Counter("pmm_console_pages", "pages answered", ["status"], registry=metrics)
    app.add_middleware(RequestObserver, metrics=observed)

    @app.middleware("http")
    async def session_cookie(request: Request, call_next: object) -> Response:
        session = console.codec.open(request.cookies.get(COOKIE)) or Session()
        request.state.session = session
        response: Response = await call_next(request)  # type: ignore[operator]
        if session.changed:
            response.set_cookie(
                COOKIE,
                console.codec.seal(session),
                max_age=int(settings.session_hours * 3600),
                httponly=True,
                secure=settings.cookie_secure,
                samesite="lax",
                path="/",
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)  # a view may set a stricter one
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"
            pages.labels(str(response.status_code)).inc()
        return response

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: SignInRequired) -> Response:
        target = "/login?next=" + request.url.path if request.method == "GET" else "/login"
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return context(request).render(
            "error.html",
            403,
            title="Formulier verlopen",
            message="Dit formulier is verlopen of niet vanuit de console verstuurd. "
            "Laad de pagina opnieuw en probeer het nog eens.",
        )

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        ctx = context(request)
        if exc.status == 401:
            ctx.session.sign_out()
            ctx.session.say("Uw sessie is verlopen. Meld u opnieuw aan.")
            return RedirectResponse("/login", status_code=303)
        return ctx.render(
            "error.html",
            exc.status if exc.status in (403, 404, 409, 503) else 502,
            title={
                403: "Geen toegang",
                404: "Niet gevonden",
                409: "Niet mogelijk",
                503: "Dienst niet bereikbaar",
            }.get(exc.status, "Fout bij een dienst"),
            message=exc.message(),
            service=exc.service,
        )

    static = Path(str(files("pmm_console") / "static"))
    htmx = htmx_script()
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/vendor/htmx.min.js", include_in_schema=False)
    async def htmx_js() -> FileResponse:
        return FileResponse(htmx, media_type="text/javascript")

    async def reachable(client: ServiceClient) -> bool:
        try:
            await client.get("/healthz", None)
        except ServiceError:
            return False
        return True

    install_health_routes(
        app,
        {
            "loket": lambda: reachable(services.loket),
            "register": lambda: reachable(services.register),
        },
        lambda: generate_latest(metrics),
    )
    routers = (auth, cases, register, admin, signals, let, overbrugging)
    for router in (module.router() for module in routers):
        app.include_router(router)
    return app
