"""Problem details in Dutch (a text per problem type, the service's own words beneath it)
and the intake's Idempotency-Key (decision loket-0002): the client sends the header and
reads the replay answer; the form carries one key per rendering."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from pmm_console import labels, problems
from pmm_console.app import create_app, templates
from pmm_console.clients import ServiceClient, ServiceError
from pmm_console.problems import Message
from pmm_console.settings import ConsoleSettings
from pmm_contracts.privacy import refuse_bsn
from pmm_runtime.auth import LocalIssuer, generate_key_pair
from pmm_runtime.errors import PROBLEM_TYPE_PREFIX, NotInState, RuleViolation, catalogue

KEYS = generate_key_pair()
VALID_BSN = "111222333"  # passes the eleven-test


def test_every_problem_type_of_the_platform_has_a_dutch_text() -> None:
    assert problems.PROBLEM_TYPE_PREFIX == PROBLEM_TYPE_PREFIX
    for kind in catalogue():
        name = str(kind["type"]).removeprefix(PROBLEM_TYPE_PREFIX)
        assert name in problems.KIND_TEXT, name
        # a problem of that type (or only its status) reads in Dutch
        status = int(kind["status"]) or 400
        error = ServiceError("loket", status, {"type": kind["type"], "detail": "x"})
        assert error.message().text == problems.KIND_TEXT[name]
        assert error.message().detail == "x"


def test_a_domain_error_reads_in_dutch_with_the_status_label() -> None:
    refused = NotInState("case is closed", current_status="closed", allowed=["evaluated"])
    error = ServiceError("loket", 409, refused.problem())
    assert error.message() == Message(
        f"Dit kan niet in de huidige status ({labels.STATUS['closed']}).", "case is closed"
    )
    rule = ServiceError(
        "loket", 422, RuleViolation("decline_reason", "a reason is needed").problem()
    )
    assert rule.field_errors() == {
        "decline_reason": [Message(problems.KIND_TEXT["rule-violation"], "a reason is needed")]
    }


def test_the_bsn_refusal_reads_in_dutch_on_its_field() -> None:
    with pytest.raises(
        ValueError, match="eleven-test"
    ) as guard:  # the platform's own guard, as the Loket uses it
        refuse_bsn(f"BSN {VALID_BSN}")
    message = f"Value error, {guard.value}"
    error = ServiceError(
        "loket",
        422,
        {
            "type": PROBLEM_TYPE_PREFIX + "invalid-input",
            "detail": "invalid input: question",
            "errors": [{"field": "question", "message": message, "type": "value_error"}],
        },
    )
    [refusal] = error.field_errors()["question"]
    assert refusal.text == problems.BSN_TEXT
    assert "elfproef" in refusal.text
    assert refusal.detail == str(guard.value)  # the service's words stay, beneath


def test_a_reused_idempotency_key_reads_in_dutch() -> None:
    reused = RuleViolation(
        "Idempotency-Key", "this idempotency key was used before for another submission"
    )
    error = ServiceError("loket", 422, reused.problem())
    [message] = error.field_errors()[problems.IDEMPOTENCY_FIELD]
    assert message.text == problems.IDEMPOTENCY_TEXT


def test_the_page_shows_the_dutch_text_and_the_service_detail_beneath() -> None:
    page = (
        templates()
        .get_template("macros.html")
        .module.field_errors(  # type: ignore[attr-defined]
            {"question": [Message("Dit is te kort.", "String should have <at least> 3")]},
            "question",
        )
    )
    html = str(page)
    assert "Dit is te kort." in html
    detail = html.split("Dit is te kort.")[1]
    assert 'class="problem-detail"' in detail
    assert "String should have &lt;at least&gt; 3" in detail  # escaped, still visible


async def test_the_client_sends_the_idempotency_key_and_reads_a_replay() -> None:
    """A small HTTP app that answers what it was sent (the client, not the Loket, is tested
    here; the Loket's own answer is tested in tests/integration/test_console_journey.py)."""
    app = FastAPI()

    @app.post("/cases", status_code=201)
    async def echo(request: Request, response: Response) -> dict[str, Any]:
        key = request.headers.get("Idempotency-Key")
        if key == "seen":
            response.headers["Idempotent-Replayed"] = "true"
        return {"key": key, "body": await request.json() if await request.body() else None}

    client = ServiceClient("loket", "http://t", transport=httpx.ASGITransport(app=app))
    try:
        body, headers = await client.send(
            "POST", "/cases", "tok", json={"a": 1}, headers={"Idempotency-Key": "k-1"}
        )
        assert body == {"key": "k-1", "body": {"a": 1}}
        assert "Idempotent-Replayed" not in headers
        _, again = await client.send("POST", "/cases", None, headers={"Idempotency-Key": "seen"})
        assert again["Idempotent-Replayed"] == "true"
        assert (await client.post("/cases", None, {"b": 2}))["key"] is None  # no key, no header
    finally:
        await client.aclose()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    key = tmp_path / "private.pem"
    key.write_text(KEYS[0], encoding="utf-8")
    settings = ConsoleSettings(
        jwt_public_key=KEYS[1],
        session_secret="unit-test-secret-0123456789",
        dev_login=True,
        dev_issuer_key_file=key,
        register_url="http://127.0.0.1:9",  # nothing listens here
        loket_url="http://127.0.0.1:9",
    )
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://console.test"
    ) as client:
        issuer = LocalIssuer(KEYS[0], issuer="urn:pmm:local-issuer", audience="pmm")
        token = issuer.issue(subject="p-1", organisation="gm1", roles=["maatwerk_professional"])
        login = await client.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf
        r = await client.post("/login/token", data={"token": token, "csrf_token": csrf.group(1)})
        assert r.status_code == 303
        yield client


KEY_FIELD = re.compile(r'name="idempotency_key" value="([^"]*)"')


async def test_each_rendered_intake_form_has_its_own_idempotency_key(
    browser: httpx.AsyncClient,
) -> None:
    first, second = (await browser.get("/intake")).text, (await browser.get("/intake")).text
    keys = [KEY_FIELD.search(page) for page in (first, second)]
    assert keys[0]
    assert keys[1]
    assert re.fullmatch(r"[0-9a-f-]{36}", keys[0].group(1))
    assert keys[0].group(1) != keys[1].group(1)
    # the register is not reachable: the page says so in Dutch, with the reason beneath
    assert problems.KIND_TEXT["unavailable"] in first
    assert "not reachable (ConnectError)" in first


async def test_an_unreachable_service_reads_in_dutch(browser: httpx.AsyncClient) -> None:
    form = await browser.get("/intake")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    r = await browser.post("/intake", data={"csrf_token": csrf.group(1), "question": "x"})
    assert r.status_code == 503
    assert problems.KIND_TEXT["unavailable"] in r.text
    assert 'class="problem-detail"' in r.text
