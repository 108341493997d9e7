"""The register administrator's screens without the register: the commands they send, the
forms offered against the register's membership table, the register_admin gate, and the
register's problem details next to the field they name."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.datastructures import FormData

from pmm_console import labels
from pmm_console.app import create_app, templates
from pmm_console.clients import PageResult, ServiceError
from pmm_console.problems import Message
from pmm_console.settings import ConsoleSettings
from pmm_console.views import admin
from pmm_register.domain.model import MEMBERSHIP_TRANSITIONS, Membership
from pmm_runtime.auth import LocalIssuer, generate_key_pair

KEYS = generate_key_pair()


def settings(tmp_path: Path) -> ConsoleSettings:
    key = tmp_path / "private.pem"
    key.write_text(KEYS[0], encoding="utf-8")
    return ConsoleSettings(
        jwt_public_key=KEYS[1],
        session_secret="unit-test-secret-0123456789",
        dev_login=True,
        dev_issuer_key_file=key,
        register_url="http://127.0.0.1:9",  # nothing listens here
        loket_url="http://127.0.0.1:9",
    )


def test_organisation_forms_send_what_was_typed() -> None:
    create = admin.organisation_command(
        "create",
        FormData(
            [
                ("code", " gm0363 "),
                ("name", "Gemeente Amsterdam"),
                ("kind", "municipality"),
                ("region", ""),
                ("joined_on", "2026-01-01"),
            ]
        ),
    )
    assert create == {
        "code": "gm0363",
        "name": "Gemeente Amsterdam",
        "kind": "municipality",
        "joined_on": "2026-01-01",
    }
    commitment = admin.organisation_command(
        "commitment",
        FormData(
            [("committed_on", "2026-02-01"), ("signed_by", "J. Bestuurder"), ("mandate", "yes")]
        ),
    )
    assert commitment == {
        "committed_on": "2026-02-01",
        "signed_by": "J. Bestuurder",
        "time": False,
        "mandate": True,
        "budget": False,
        "own_escalation_route": False,
    }
    assert admin.organisation_command("leave", FormData([("on", "")])) == {}


def test_professional_forms_send_what_was_typed() -> None:
    form = FormData(
        [
            ("organisation", "uwv"),
            ("name", "A. de Vries"),
            ("function", ""),
            ("roles", "maatwerk_professional"),
            ("roles", "executive"),
            ("tags", "schulden, , Participatiewet "),
            ("email", "a.devries@uwv.example"),
            ("phone", ""),
        ]
    )
    assert admin.professional_command(form, new=True) == {
        "organisation": "uwv",
        "name": "A. de Vries",
        "roles": ["maatwerk_professional", "executive"],
        "tags": ["schulden", "Participatiewet"],
        "email": "a.devries@uwv.example",
    }
    # Editing: the organisation and id are not the form's to change; lists as ticked
    # (no life domain ticked clears them, no role ticked is the register's to refuse).
    edited = admin.professional_command(
        FormData([("organisation", "other"), ("name", "A. de Vries"), ("tags", "")]),
        new=False,
    )
    assert edited == {"name": "A. de Vries", "roles": [], "life_domains": [], "tags": []}


def test_the_organisation_forms_follow_the_register_membership_table() -> None:
    """Join is offered where the register allows a move to member, commitment and leave
    only to a member (the register's table decides; the console only offers)."""
    for membership, moves in MEMBERSHIP_TRANSITIONS.items():
        org = {"is_member": membership is Membership.MEMBER}
        offered = admin.organisation_actions(org)
        assert ("join" in offered) == (Membership.MEMBER in moves), membership
        assert ("leave" in offered) == (Membership.LEFT in moves), membership
        assert ("commitment" in offered) == (membership is Membership.MEMBER)


def test_problem_details_of_the_register_land_on_their_field() -> None:
    conflict = ServiceError(
        "register",
        409,
        {"detail": "a@b.example is registered already", "field": "email"},
    )
    assert admin.form_errors(conflict, admin.PROFESSIONAL_FIELDS) == {
        "email": [
            Message("Dit bestaat al of is al in gebruik.", "a@b.example is registered already")
        ]
    }
    not_in_state = ServiceError(
        "register",
        409,
        {
            "type": "urn:nl:pmm:problem:not-in-state",
            "detail": "gm1 cannot join: it is member",
            "current_status": "member",
        },
    )
    assert admin.form_errors(not_in_state, ("on",)) == {
        "_form": [
            Message(
                "Dit kan niet in de huidige status (Aangesloten).", "gm1 cannot join: it is member"
            )
        ]
    }
    schema = ServiceError(
        "register",
        422,
        {
            "detail": "invalid input",
            "errors": [{"field": "roles.1", "message": "Input should be 'ambassador', ..."}],
        },
    )
    assert admin.form_errors(schema, admin.PROFESSIONAL_FIELDS) == {
        "roles": [Message("Deze invoer klopt niet.", "Input should be 'ambassador', ...")]
    }


def _field_block(page: str, field_id: str) -> str:
    """The ``<div class="field">`` (or fieldset) that holds the element with ``field_id``."""
    before = page.split(f'id="{field_id}"')[0]
    return before.rsplit('class="field"', 1)[1]


def test_the_message_is_shown_next_to_its_field_in_the_open_form() -> None:
    org = {
        "code": "gm1",
        "name": "Gemeente Een",
        "kind": "municipality",
        "is_member": True,
        "joined_on": "2025-01-01",
        "history": [{"event": "joined", "on": "2025-01-01"}],
    }
    page = (
        templates()
        .get_template("admin_organisation.html")
        .render(
            org=org,
            people=PageResult(items=[], page=1, page_size=200),
            actions=admin.organisation_actions(org),
            open_form="leave",
            values={"on": "2024-01-01"},
            errors={"on": ["an organisation cannot leave before it joined"]},
            field_labels=admin.FIELD_LABELS,
            L=labels,
            who=None,
        )
    )
    assert "an organisation cannot leave before it joined" in _field_block(page, "leave-on")
    assert 'id="leave-on" name="on" type="date" value="2024-01-01"' in page  # as typed
    assert 'aria-describedby="fout-leave-on"' in page
    assert '<a href="#leave-on">Datum</a>' in page  # the summary links to the field
    assert "<details" in page
    assert 'id="actie-leave"' in page
    leave = page.split('id="actie-leave"')[1].split("</details>")[0]
    assert " open" in page.split('id="actie-leave"')[0].rsplit("<details", 1)[1]
    assert "cannot leave" in leave
    commitment = page.split('id="actie-commitment"')[1].split("</details>")[0]
    assert "cannot leave" not in commitment  # only the form that was sent shows its errors


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(tmp_path))  # the register is not reachable
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://console.test"
    ) as client:
        yield client


async def _sign_in(browser: httpx.AsyncClient, roles: list[str]) -> str:
    issuer = LocalIssuer(KEYS[0], issuer="urn:pmm:local-issuer", audience="pmm")
    token = issuer.issue(subject="p-1", organisation="pmm", roles=roles)
    login = await browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf
    r = await browser.post("/login/token", data={"token": token, "csrf_token": csrf.group(1)})
    assert r.status_code == 303
    home = await browser.get("/")
    found = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert found
    return found.group(1)


async def test_only_the_register_admin_gets_the_screens(browser: httpx.AsyncClient) -> None:
    csrf = await _sign_in(browser, ["pmm_staff", "case_director"])
    home = await browser.get("/")
    assert "/admin/organisations" not in home.text
    for path in ("/admin/organisations", "/admin/organisations/gm1", "/admin/professionals/p"):
        r = await browser.get(path)
        # refused by the console before the (unreachable) register is asked: not a 503
        assert r.status_code == 403, path
        assert "beheerder van het register" in r.text
    posted: dict[str, Any] = {"csrf_token": csrf, "on": "2026-01-01"}
    assert (await browser.post("/admin/organisations/gm1/join", data=posted)).status_code == 403


async def test_the_register_admin_sees_the_screens_in_the_menu(
    browser: httpx.AsyncClient,
) -> None:
    await _sign_in(browser, ["register_admin"])
    home = await browser.get("/")
    assert 'href="/admin/organisations"' in home.text
    assert "Beheer register" in home.text
    # past the gate, the register is asked (and not reachable here)
    assert (await browser.get("/admin/organisations")).status_code == 503
