"""The register's administrator manages organisations and professionals through the console,
against the real register (in-process, on the real broker and store): what the register
refuses is shown next to the field it names, what it accepts is what the page shows next."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pmm_console.app import create_app as create_console
from pmm_console.settings import ConsoleSettings
from pmm_register.app import create_app as create_register
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer

from .conftest import csrf_of

pytestmark = pytest.mark.integration


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def field_of(page: str, field_id: str) -> str:
    """The field block (label, message, input) that holds the element ``field_id``."""
    before = page.split(f'id="{field_id}"')[0]
    return before.rsplit('class="field"', 1)[1] if 'class="field"' in before else before


async def signed_in(
    console: httpx.AsyncClient, issuer: LocalIssuer, organisation: str, role: str
) -> str:
    token = issuer.issue(subject=f"{role}-tester", organisation=organisation, roles=[role])
    login = await console.get("/login")
    r = await console.post("/login/token", data={"token": token, "csrf_token": csrf_of(login.text)})
    assert r.status_code == 303, r.text
    return csrf_of((await console.get("/")).text)


async def test_the_administrator_runs_organisations_and_professionals(
    make_settings: Callable[..., Any],
    console_settings: Callable[..., ConsoleSettings],
    serve: Any,
    issuer: LocalIssuer,
    unique: str,
) -> None:
    register_app = create_register(make_settings(RegisterSettings))
    register = await serve(register_app)
    pmm = await register.post(
        "/organisations",
        headers=bearer(issuer, "pmm", "register_admin"),
        json={"code": "pmm", "name": "PMM", "kind": "ministry", "joined_on": "2024-01-01"},
    )
    assert pmm.status_code in (201, 409), pmm.text
    console_app = create_console(
        console_settings(), transports={"register": httpx.ASGITransport(app=register_app)}
    )
    code = f"gm{unique[:8]}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=console_app), base_url="http://console.test"
    ) as console:
        csrf = await signed_in(console, issuer, "pmm", "register_admin")

        # A new organisation: a code the register refuses is shown on the code field.
        listing = await console.get("/admin/organisations")
        assert listing.status_code == 200, listing.text
        refused = await console.post(
            "/admin/organisations",
            data={"csrf_token": csrf, "code": "Not A Code!", "name": "X", "kind": "municipality"},
        )
        assert refused.status_code == 422
        assert "fout-org-code" in field_of(refused.text, "org-code")
        assert 'value="Not A Code!"' in refused.text  # what was typed stays
        made = await console.post(
            "/admin/organisations",
            data={
                "csrf_token": csrf,
                "code": code,
                "name": f"Gemeente Beheerstad {unique[:4]}",
                "kind": "municipality",
                "region": "Noord",
            },
        )
        assert made.status_code == 303, made.text
        assert made.headers["location"] == f"/admin/organisations/{code}"
        again = await console.post(
            "/admin/organisations",
            data={"csrf_token": csrf, "code": code, "name": "Dubbel", "kind": "municipality"},
        )
        assert again.status_code == 409
        assert "exists already" in field_of(again.text, "org-code")

        # Not joined yet: the page offers joining, not leaving.
        page = await console.get(f"/admin/organisations/{code}")
        assert page.status_code == 200
        assert 'id="actie-join"' in page.text
        assert 'id="actie-leave"' not in page.text
        assert "niet aangesloten" in page.text
        joined = await console.post(
            f"/admin/organisations/{code}/join", data={"csrf_token": csrf, "on": "2026-03-01"}
        )
        assert joined.status_code == 303
        page = await console.get(f"/admin/organisations/{code}")
        assert "aangesloten bij het register" in page.text  # the flash
        assert "1 maart 2026" in page.text
        assert 'id="actie-leave"' in page.text
        assert 'id="actie-join"' not in page.text

        # The commitment, and a leave date before the join date refused on its field.
        committed = await console.post(
            f"/admin/organisations/{code}/commitment",
            data={
                "csrf_token": csrf,
                "committed_on": "2026-03-15",
                "signed_by": "J. Wethouder",
                "mandate": "yes",
                "budget": "yes",
            },
        )
        assert committed.status_code == 303, committed.text
        shown = text_of((await console.get(f"/admin/organisations/{code}")).text)
        assert "getekend op 15 maart 2026 door J. Wethouder" in shown
        assert "Toegezegd: mandaat, budget" in shown
        early = await console.post(
            f"/admin/organisations/{code}/leave", data={"csrf_token": csrf, "on": "2026-01-01"}
        )
        assert early.status_code == 422
        assert "cannot leave before it joined" in field_of(early.text, "leave-on")

        # A professional: a role that does not fit a municipality is refused on the roles.
        person: dict[str, Any] = {
            "csrf_token": csrf,
            "organisation": code,
            "name": f"Petra Beheer {unique[:4]}",
            "function": "klantmanager",
            "roles": ["case_director"],
            "life_domains": ["debts"],
            "tags": "schulden, wsnp",
            "email": f"petra-{unique}@example.nl",
            "id": f"pb-{unique}",
        }
        wrong = await console.post("/admin/professionals", data=person)
        assert wrong.status_code == 422
        block = wrong.text.split('id="add-roles"')[1].split("</fieldset>")[0]
        assert "do not fit" in block
        bad_mail = await console.post(
            "/admin/professionals",
            data={**person, "roles": ["maatwerk_professional"], "email": "geen-adres"},
        )
        assert bad_mail.status_code == 422
        assert "fout-add-email" in field_of(bad_mail.text, "add-email")
        added = await console.post(
            "/admin/professionals", data={**person, "roles": ["maatwerk_professional"]}
        )
        assert added.status_code == 303, added.text
        page = await console.get(f"/admin/organisations/{code}")
        assert f'href="/admin/professionals/pb-{unique}"' in page.text

        # Edit: what the register keeps is what the page shows.
        edit = await console.get(f"/admin/professionals/pb-{unique}")
        assert edit.status_code == 200
        assert 'value="schulden, wsnp"' in edit.text
        changed = await console.post(
            f"/admin/professionals/pb-{unique}/edit",
            data={
                "csrf_token": csrf,
                "name": f"Petra Beheer {unique[:4]}",
                "function": "teamleider",
                "roles": ["maatwerk_professional", "executive"],
                "life_domains": ["debts", "income"],
                "tags": "schulden",
                "email": f"petra-{unique}@example.nl",
                "phone": "020 123 45 67",
            },
        )
        assert changed.status_code == 303, changed.text
        stored = (
            await register.get(
                f"/professionals/pb-{unique}", headers=bearer(issuer, "pmm", "register_admin")
            )
        ).json()
        assert stored["function"] == "teamleider"
        assert sorted(stored["roles"]) == ["executive", "maatwerk_professional"]
        assert stored["tags"] == ["schulden"]
        no_roles = await console.post(
            f"/admin/professionals/pb-{unique}/edit",
            data={"csrf_token": csrf, "name": "Petra", "email": f"petra-{unique}@example.nl"},
        )
        assert no_roles.status_code == 422
        assert 'aria-describedby="fout-edit-roles"' in no_roles.text

        # Remove: the entry is gone from the register, the organisation page says so.
        removed = await console.post(
            f"/admin/professionals/pb-{unique}/remove",
            data={"csrf_token": csrf, "reason": "vertrokken"},
        )
        assert removed.status_code == 303, removed.text
        assert removed.headers["location"] == f"/admin/organisations/{code}"
        page = await console.get(f"/admin/organisations/{code}")
        assert "uit het register verwijderd" in page.text
        assert f"/admin/professionals/pb-{unique}" not in page.text
        gone = await register.get(
            f"/professionals/pb-{unique}", headers=bearer(issuer, "pmm", "register_admin")
        )
        assert gone.status_code == 404

        # Leaving on a valid date; then the page offers joining again.
        left = await console.post(
            f"/admin/organisations/{code}/leave", data={"csrf_token": csrf, "on": "2026-06-30"}
        )
        assert left.status_code == 303
        page = await console.get(f"/admin/organisations/{code}")
        assert "uitgetreden" in page.text
        assert 'id="actie-join"' in page.text

        # Another role is refused by the console's gate, the register decides the rest.
        await console.post("/logout", data={"csrf_token": csrf_of(page.text)})
        await signed_in(console, issuer, "pmm", "pmm_staff")
        assert (await console.get(f"/admin/organisations/{code}")).status_code == 403
