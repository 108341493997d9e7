"""Views without the services: templates escape, forms need their CSRF token, the cookie
is HttpOnly and SameSite, problem details land on their fields, and the action hints agree
with the Loket's workflow table."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.datastructures import FormData

from pmm_console import labels
from pmm_console.app import create_app, templates
from pmm_console.clients import ServiceClient, ServiceError
from pmm_console.context import dutch_date, dutch_money, errors_for_fields
from pmm_console.problems import BSN_REFERENCE_TEXT, Message
from pmm_console.settings import ConsoleSettings
from pmm_console.views.cases import command, submission
from pmm_loket.domain.model import ALLOWED_TRANSITIONS, Status
from pmm_runtime.auth import LocalIssuer, generate_key_pair

KEYS = generate_key_pair()


def settings(tmp_path: Path, **overrides: Any) -> ConsoleSettings:
    key = tmp_path / "private.pem"
    key.write_text(KEYS[0], encoding="utf-8")
    values: dict[str, Any] = {
        "jwt_public_key": KEYS[1],
        "session_secret": "unit-test-secret-0123456789",
        "dev_login": True,
        "dev_issuer_key_file": key,
        # nothing listens here: the views below must not need a service
        "register_url": "http://127.0.0.1:9",
        "loket_url": "http://127.0.0.1:9",
        **overrides,
    }
    return ConsoleSettings(**values)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://console.test"
    ) as client:
        yield client


def test_templates_escape_what_the_services_answer() -> None:
    env = templates()
    page = env.get_template("_register_results.html").render(
        problem="<script>alert(1)</script>",
        values={"organisation": "", "q": "", "role": "", "life_domain": ""},
        result=None,
        urgent=[],
        org_names={},
        L=labels,
    )
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


async def test_the_cookie_is_httponly_samesite_lax_and_secure(
    browser: httpx.AsyncClient,
) -> None:
    r = await browser.get("/login")  # the register is not reachable: the page says so
    assert r.status_code == 200
    assert "alleen voor ontwikkeling" in r.text
    assert "Het register antwoordt niet" in r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" in cookie
    assert "default-src 'self'" in r.headers["content-security-policy"]


async def test_no_page_loads_anything_from_elsewhere(browser: httpx.AsyncClient) -> None:
    page = (await browser.get("/login")).text
    for url in re.findall(r"""(?:src|href)=["']([^"'#][^"']*)["']""", page):
        assert re.match(r"/(?!/)", url), url  # a path of the console itself
        if url.startswith(("/static/", "/vendor/")):
            assert (await browser.get(url)).status_code == 200, url
    htmx = await browser.get("/vendor/htmx.min.js")
    assert "htmx" in htmx.text[:200]


async def test_a_form_without_its_csrf_token_is_refused(
    browser: httpx.AsyncClient, tmp_path: Path
) -> None:
    issuer = LocalIssuer(KEYS[0], issuer="urn:pmm:local-issuer", audience="pmm")
    token = issuer.issue(subject="p", organisation="uwv", roles=["maatwerk_professional"])
    login = await browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf
    refused = await browser.post("/login/token", data={"token": token, "csrf_token": "x"})
    assert refused.status_code == 403
    assert "verlopen" in refused.text
    r = await browser.post("/login/token", data={"token": token, "csrf_token": csrf.group(1)})
    assert r.status_code == 303
    # signed in now: the old token no longer counts (renewed at sign-in)
    out = await browser.post("/logout", data={"csrf_token": csrf.group(1)})
    assert out.status_code == 403


async def test_a_foreign_token_is_not_accepted(browser: httpx.AsyncClient) -> None:
    other = LocalIssuer(generate_key_pair()[0], issuer="urn:pmm:local-issuer", audience="pmm")
    token = other.issue(subject="p", organisation="uwv", roles=["pmm_staff"])
    login = await browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf
    r = await browser.post("/login/token", data={"token": token, "csrf_token": csrf.group(1)})
    assert r.status_code == 422
    assert "niet geaccepteerd" in r.text
    assert (await browser.get("/")).status_code == 303


async def test_an_unreachable_service_is_a_page_that_says_so(
    browser: httpx.AsyncClient,
) -> None:
    issuer = LocalIssuer(KEYS[0], issuer="urn:pmm:local-issuer", audience="pmm")
    token = issuer.issue(subject="p", organisation="pmm", roles=["case_director"])
    login = await browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf
    await browser.post("/login/token", data={"token": token, "csrf_token": csrf.group(1)})
    r = await browser.get("/queue")
    assert r.status_code == 503
    assert "Dienst niet bereikbaar" in r.text
    assert (await browser.get("/readyz")).status_code == 503
    assert (await browser.get("/healthz")).status_code == 200


def test_problem_details_go_to_the_field_they_name() -> None:
    problem = ServiceError(
        "loket",
        422,
        {
            "type": "urn:nl:pmm:problem:invalid-input",
            "detail": "invalid input",
            "errors": [
                {
                    "field": "household.reference",
                    "message": "Value error, the household reference holds a number that "
                    "passes the BSN eleven-test; use a pseudonymous reference",
                    "type": "value_error",
                },
                {"field": "life_domains.2", "message": "not a life domain", "type": "enum"},
                {"field": "bottlenecks.0.subtype", "message": "unknown subtype"},
                {"field": "something_else", "message": "?", "type": "missing"},
            ],
        },
    )
    placed = errors_for_fields(
        problem.field_errors(), ["household.reference", "life_domains", "bottlenecks"]
    )
    assert {k: [m.detail for m in v] for k, v in placed.items()} == {
        "household.reference": [
            "the household reference holds a number that passes the BSN eleven-test; "
            "use a pseudonymous reference"
        ],
        "life_domains": ["not a life domain"],
        "bottlenecks": ["unknown subtype"],
        "_form": ["?"],
    }
    assert {k: [m.text for m in v] for k, v in placed.items()} == {
        "household.reference": [BSN_REFERENCE_TEXT],
        "life_domains": ["Kies een van de mogelijkheden."],
        "bottlenecks": ["Deze invoer klopt niet."],  # no type: the problem's kind
        "_form": ["Dit is verplicht."],
    }
    # A domain error that names its field (pmm_runtime.errors) lands there too.
    rule = ServiceError(
        "loket",
        422,
        {"type": "urn:nl:pmm:problem:rule-violation", "detail": "no reason", "field": "x"},
    )
    assert rule.field_errors() == {
        "x": [Message("Dit voldoet niet aan een regel van de dienst.", "no reason")]
    }


def test_the_intake_form_becomes_the_loket_submit_command_as_typed() -> None:
    form = FormData(
        [
            ("submitter_kind", "municipality"),
            ("household.reference", "hh-123456"),
            ("household.adults", "2"),
            ("household.children", "twee"),
            ("life_domains", "debts"),
            ("life_domains", "housing"),
            ("bottlenecks", "ict"),
            ("bottlenecks", "laws_and_regulations:not_foreseen"),
            ("organisations_involved", "uwv"),
            ("tried_locally", "  veel  "),
            ("question", ""),
            ("urgency", "none"),
            ("legal_basis", "consent"),
        ]
    )
    assert submission(form) == {
        "submitter_kind": "municipality",
        "household": {"reference": "hh-123456", "adults": 2, "children": "twee"},
        "life_domains": ["debts", "housing"],
        "bottlenecks": [
            {"type": "ict"},
            {"type": "laws_and_regulations", "subtype": "not_foreseen"},
        ],
        "organisations_involved": ["uwv"],
        "tried_locally": "veel",
        "urgency": "none",
        "legal_basis": "consent",
    }
    assert command("triage", FormData([("accepted", "yes")])) == {"accepted": True}
    bridging = command(
        "bridging",
        FormData([("estimated_amount", "1.250,50"), ("candidate_payers", "a")]),
    )
    assert bridging == {"estimated_amount": "1250.50", "candidate_payers": ["a"]}


def test_the_action_hints_agree_with_the_loket_workflow_table() -> None:
    """Every status move the console offers is one the Loket's table allows, and every
    move out of the table a person makes has a form (the LET's outcome is not a form)."""
    for status in Status:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[status])
        offered = labels.case_actions(status.value, allowed)
        for action, target, sources in labels.MOVES:
            if action in offered:
                assert status.value in sources
                assert Status(target) in ALLOWED_TRANSITIONS[status], (status, action)
        made_by_people = {
            t for t in allowed if not (status == Status.ESCALATED and t == "in_progress")
        }
        if status == Status.SUBMITTED:
            made_by_people.discard("declined")  # the triage form decides both ways
        moved_to = {t for a, t, _ in labels.MOVES if a in offered}
        assert made_by_people <= moved_to, (status, made_by_people - moved_to)
    assert labels.case_actions("evaluated", []) == ["note"]


async def test_the_list_helper_reads_both_paging_styles() -> None:
    app = FastAPI()

    @app.get("/new")
    async def new(page: int = 1, page_size: int = 50) -> dict[str, Any]:
        items = [{"n": i} for i in range(7)][(page - 1) * page_size : page * page_size]
        more = page * page_size < 7
        return {
            "total": 7,
            "page": page,
            "page_size": page_size,
            "items": items,
            "next": "x" if more else None,
        }

    @app.get("/old")
    async def old(limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return [{"n": i} for i in range(7)][offset : offset + limit]

    client = ServiceClient("t", "http://t", transport=httpx.ASGITransport(app=app))
    try:
        first = await client.page("/new", None, page=1, page_size=5)
        assert (len(first.items), first.total, first.has_next) == (5, 7, True)
        last = await client.page("/new", None, page=2, page_size=5)
        assert ([i["n"] for i in last.items], last.has_next) == ([5, 6], False)
        old_first = await client.page("/old", None, page=1, page_size=5)
        assert ([i["n"] for i in old_first.items], old_first.has_next) == ([0, 1, 2, 3, 4], True)
        old_last = await client.page("/old", None, page=2, page_size=5)
        assert [i["n"] for i in old_last.items] == [5, 6]
    finally:
        await client.aclose()


def test_dates_and_amounts_read_the_dutch_way() -> None:
    assert dutch_date("2026-12-02") == "2 december 2026"
    assert dutch_date("2026-07-01T10:30:00+00:00") == "1 juli 2026, 12:30"  # CEST
    assert dutch_date(None) == "-"
    assert dutch_money("1234.5") == "€\u00a01.234,50"  # a no-break space
