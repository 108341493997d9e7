"""What every page handler needs: the console's parts, the session, the person, rendering."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from starlette.datastructures import FormData

from pmm_console import labels
from pmm_console.clients import Services
from pmm_console.problems import Errors, Message
from pmm_console.session import CSRF_FIELD, CSRF_HEADER, Session, SessionCodec
from pmm_console.settings import ConsoleSettings
from pmm_runtime.auth import Identity, InvalidToken, LocalIssuer, TokenVerifier

try:
    DUTCH_TIME: tzinfo = ZoneInfo("Europe/Amsterdam")
except ZoneInfoNotFoundError:  # pragma: no cover - a system without time zone data
    DUTCH_TIME = UTC
MONTHS = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
]


@dataclass
class Console:
    settings: ConsoleSettings
    services: Services
    verifier: TokenVerifier
    codec: SessionCodec
    templates: Environment
    dev_issuer: LocalIssuer | None


class SignInRequired(Exception):
    """The page needs a signed-in person: the handler answers with the sign-in page."""


class CsrfRefused(Exception):
    """A form came back without the session's CSRF token."""


@dataclass
class Ctx:
    request: Request
    console: Console
    session: Session
    identity: Identity | None

    @property
    def services(self) -> Services:
        return self.console.services

    @property
    def token(self) -> str | None:
        return self.session.token

    @property
    def who(self) -> Identity:
        if self.identity is None:
            raise SignInRequired
        return self.identity

    def has(self, *roles: str) -> bool:
        return self.identity is not None and self.identity.has_any(*roles)

    async def form(self) -> FormData:
        """The posted form, after its CSRF token was checked."""
        form = await self.request.form()
        sent = form.get(CSRF_FIELD) or self.request.headers.get(CSRF_HEADER)
        if not self.session.csrf_ok(sent if isinstance(sent, str) else None):
            raise CsrfRefused
        return form

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        page = self.console.templates.get_template(template)
        html = page.render(
            request=self.request,
            csrf_token=self.session.csrf,
            csrf_field=CSRF_FIELD,
            who=self.identity,
            organisation_name=self.session.organisation_name,
            flash=self.session.take_flash(),
            dev_login=self.console.dev_issuer is not None,
            L=labels,
            htmx=self.request.headers.get("HX-Request") == "true",
            **values,
        )
        return HTMLResponse(html, status_code=status_code)


def current_session(request: Request) -> Session:
    session: Session = request.state.session
    return session


def context(request: Request) -> Ctx:
    console: Console = request.app.state.console
    session = current_session(request)
    identity: Identity | None = None
    if session.token:
        try:
            identity = console.verifier.verify(session.token)
        except InvalidToken:
            session.sign_out()
    return Ctx(request=request, console=console, session=session, identity=identity)


def signed_in(request: Request) -> Ctx:
    ctx = context(request)
    if ctx.identity is None:
        raise SignInRequired
    return ctx


AnyCtx = Annotated[Ctx, Depends(context)]
UserCtx = Annotated[Ctx, Depends(signed_in)]


# Template filters ---------------------------------------------------------------------------


def dutch_date(value: Any) -> str:
    """``2026-12-02`` or a datetime -> ``2 december 2026``; anything else unchanged."""
    if value in (None, ""):
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(DUTCH_TIME)
        return f"{value.day} {MONTHS[value.month - 1]} {value.year}, {value:%H:%M}"
    if isinstance(value, date):
        return f"{value.day} {MONTHS[value.month - 1]} {value.year}"
    return str(value)


def dutch_money(value: Any) -> str:
    """``1234.5`` -> ``€ 1.234,50`` (a no-break space: the sign stays with the amount)."""
    try:
        amount = f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)
    return "€\u00a0" + amount.replace(",", "_").replace(".", ",").replace("_", ".")


def dutch_cents(value: Any) -> str:
    """An amount in cents (as the Loket keeps bridging amounts) the Dutch way."""
    try:
        return dutch_money(int(value) / 100)
    except (TypeError, ValueError):
        return str(value)


def label(value: Any, table: Mapping[str, str]) -> str:
    if value is None:
        return "-"
    return table.get(str(value), str(value))


def labels_of(values: Iterable[Any] | None, table: Mapping[str, str]) -> str:
    return ", ".join(label(v, table) for v in values or ()) or "-"


# Problem details next to their fields ------------------------------------------------------

_INDEX = re.compile(r"\.\d+(?=\.|$)")


def errors_for_fields(field_errors: Mapping[str, list[Message]], known: Iterable[str]) -> Errors:
    """Put each message of a service under the form field it names.

    A service names ``household.reference``, ``life_domains.2`` or ``bottlenecks.0.subtype``;
    the message goes to the longest known field that is a prefix of that path (indexes
    ignored), else to ``_form`` (shown above the form)."""
    names = set(known)
    placed: Errors = {}
    for path, messages in field_errors.items():
        target = "_form"
        plain = _INDEX.sub("", path)
        parts = plain.split(".")
        for size in range(len(parts), 0, -1):
            candidate = ".".join(parts[:size])
            if candidate in names:
                target = candidate
                break
        placed.setdefault(target, []).extend(messages)
    return placed
