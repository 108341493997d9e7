"""The console against the real register and Loket (in-process apps on the real broker and
store), driven over HTTP as a browser would: cookies, CSRF tokens, form posts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pmm_console.app import create_app as create_console
from pmm_console.settings import ConsoleSettings
from pmm_loket.app import create_app as create_loket
from pmm_loket.settings import LoketSettings
from pmm_register.app import create_app as create_register
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.readmodel import RegisterReadModel
from pmm_runtime.testing import bearer

WAIT_S = 200.0  # a service consuming one event of this test (its own topic or the Loket's)
STALL_S = 60.0  # a register read model that takes in nothing for this long is stuck
REPLAY_LIMIT_S = 600.0  # and one that replays for longer than this is too slow to test
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def replayed(
    model: RegisterReadModel,
    check: Callable[[], Awaitable[Any]],
    what: str,
    *,
    stall_s: float = STALL_S,
    limit_s: float = REPLAY_LIMIT_S,
) -> Any:
    """Wait until ``check()`` finds this test's record in a service's register read model.

    A fresh read model replays the register's shared compacted topics from the start (every
    organisation and professional earlier tests published), which takes from seconds to
    minutes on a shared machine. So the wait is not a fixed time: it lasts while the read
    model keeps taking in entries, and fails as soon as it takes in nothing for ``stall_s``
    (a consumer that stopped, or a record never published), saying how far it got."""
    loop = asyncio.get_running_loop()
    started = last_change = loop.time()
    seen = (-1, -1)
    while True:
        found = await check()
        if found:
            return found
        now = loop.time()
        counts = (
            await model.organisations.count_documents({}),
            await model.professionals.count_documents({}),
        )
        if counts != seen:
            seen, last_change = counts, now
        elif now - last_change > stall_s:
            raise AssertionError(
                f"{what} not in the read model; it took in nothing for {stall_s:.0f} s "
                f"(at {counts[0]} organisations, {counts[1]} professionals)"
            )
        if now - started > limit_s:
            raise AssertionError(
                f"{what} not in the read model after {limit_s:.0f} s of replay "
                f"(at {counts[0]} organisations, {counts[1]} professionals)"
            )
        await asyncio.sleep(0.5)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class World:
    """The register, the Loket and the console, with this test's organisations and people."""

    register: httpx.AsyncClient
    loket: httpx.AsyncClient
    register_app: FastAPI
    loket_app: FastAPI
    console_app: FastAPI
    municipality: str
    uwv: str
    director: str
    professional: str
    ambassador: str  # UWV's maatwerk professional, who answers consultations
    unique: str
    chair: str = ""
    executives: tuple[str, ...] = ()

    def with_services(self, **apps: FastAPI) -> None:
        """Rebuild the console so that it also reaches these in-process services."""
        transports = {
            "register": httpx.ASGITransport(app=self.register_app),
            "loket": httpx.ASGITransport(app=self.loket_app),
            **{name: httpx.ASGITransport(app=app) for name, app in apps.items()},
        }
        self.console_app = create_console(
            self.console_app.state.console.settings, transports=transports
        )

    def browser(self) -> httpx.AsyncClient:
        """A fresh 'browser': its own cookie jar, talking to the console."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.console_app),
            base_url="http://console.test",
            follow_redirects=False,
        )


async def sign_in(browser: httpx.AsyncClient, organisation: str, role: str, person: str) -> None:
    """The development sign-in, as a person fills it in."""
    page = await browser.get("/login", params={"organisation": organisation})
    assert page.status_code == 200, page.text
    r = await browser.post(
        "/login/dev",
        data={
            "csrf_token": csrf_of(page.text),
            "organisation": organisation,
            "role": role,
            "person": person,
            "next": "/",
        },
    )
    assert r.status_code == 303, r.text
    home = await browser.get("/")
    assert home.status_code == 200, home.text


@pytest.fixture
def console_settings(
    make_settings: Callable[..., Any], key_pair: tuple[str, str], tmp_path: Path
) -> Callable[..., ConsoleSettings]:
    key_file = tmp_path / "issuer.pem"
    key_file.write_text(key_pair[0], encoding="utf-8")

    def build(**overrides: Any) -> ConsoleSettings:
        values: dict[str, Any] = {
            "dev_login": True,
            "dev_issuer_key_file": key_file,
            "cookie_secure": False,
            "session_secret": "integration-test-secret-0123456789",
            **overrides,
        }
        settings: ConsoleSettings = make_settings(ConsoleSettings, **values)
        return settings

    return build


@pytest.fixture
async def world(
    make_settings: Callable[..., Any],
    console_settings: Callable[..., ConsoleSettings],
    serve: Any,
    issuer: LocalIssuer,
    unique: str,
) -> World:
    municipality, uwv = f"gm{unique[:8]}", f"uwv{unique[:8]}"
    director, professional = f"regie-{unique}", f"mp-{unique}"
    ambassador = f"amb-{unique}"
    chair, exec_gm, exec_uwv = f"chair-{unique}", f"xgm-{unique}", f"xuwv-{unique}"
    register_app = create_register(make_settings(RegisterSettings))
    register: httpx.AsyncClient = await serve(register_app)
    admin = bearer(issuer, "pmm", "register_admin")
    for code, name, kind in (
        ("pmm", "PMM", "ministry"),
        (municipality, f"Gemeente Teststad {unique[:4]}", "municipality"),
        (uwv, f"UWV test {unique[:4]}", "executing_organisation"),
    ):
        r = await register.post(
            "/organisations",
            headers=admin,
            json={"code": code, "name": name, "kind": kind, "joined_on": "2024-01-01"},
        )
        assert r.status_code in (201, 409), r.text
    for pid, org, role, extra in (
        (director, "pmm", "case_director", {}),
        (chair, "pmm", "let_chair", {}),
        (exec_gm, municipality, "executive", {}),
        (exec_uwv, uwv, "executive", {}),
        (professional, municipality, "maatwerk_professional", {}),
        (
            ambassador,
            uwv,
            "maatwerk_professional",
            {"urgent_phone": "088 123 45 67", "phone": "088 765 43 21", "life_domains": ["income"]},
        ),
    ):
        r = await register.post(
            "/professionals",
            headers=admin,
            json={
                "id": pid,
                "organisation": org,
                "name": f"Test {role} {unique[:4]}",
                "roles": [role],
                "email": f"{pid}@example.nl",
                **extra,
            },
        )
        assert r.status_code == 201, r.text
    loket_app = create_loket(make_settings(LoketSettings))
    loket: httpx.AsyncClient = await serve(loket_app)
    known = loket_app.state.deps.register
    await replayed(known, partial(known.is_member, municipality), f"organisation {municipality}")
    await replayed(known, partial(known.is_member, uwv), f"organisation {uwv}")
    # every person the Loket is asked about: the professionals topic has several partitions,
    # so one person being there says nothing about the others
    for pid in (director, professional, ambassador):
        await replayed(known, partial(known.professional, pid), f"professional {pid}")
    console_app = create_console(
        console_settings(),
        transports={
            "register": httpx.ASGITransport(app=register_app),
            "loket": httpx.ASGITransport(app=loket_app),
        },
    )
    return World(
        register=register,
        loket=loket,
        register_app=register_app,
        loket_app=loket_app,
        console_app=console_app,
        municipality=municipality,
        uwv=uwv,
        director=director,
        professional=professional,
        ambassador=ambassador,
        unique=unique,
        chair=chair,
        executives=(exec_gm, exec_uwv),
    )
