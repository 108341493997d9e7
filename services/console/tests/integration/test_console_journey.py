"""A professional submits a case through the console, a regievoerder runs it from the work
queue, an organisation answers its consultation: every page is what the real services answer."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from .conftest import World, csrf_of, sign_in

# the world fixture waits for the read models to replay the shared register topics
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

VALID_BSN = "111222333"  # passes the eleven-test
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def intake_form(world: World, csrf: str, **changes: Any) -> list[tuple[str, str]]:
    fields: dict[str, Any] = {
        "csrf_token": csrf,
        "submitter_kind": "municipality",
        "household.reference": f"hh-{world.unique}",
        "household.adults": "2",
        "household.children": "3",
        "life_domains": ["debts", "housing"],
        "bottlenecks": ["cooperation", "laws_and_regulations:interpretation_unclear"],
        "organisations_involved": [world.municipality, world.uwv],
        "tried_locally": "wijkteam en schuldhulp hebben maanden geholpen",
        "question": "wie betaalt de huurachterstand terwijl de uitkering herstart?",
        "urgency": "acute",
        "legal_basis": "consent",
        **changes,
    }
    return [
        (k, str(item)) for k, v in fields.items() for item in (v if isinstance(v, list) else [v])
    ]


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


async def test_a_case_from_intake_through_the_work_queue_to_a_consultation(world: World) -> None:
    professional = world.browser()
    await sign_in(professional, world.municipality, "maatwerk_professional", world.professional)
    header = (await professional.get("/")).text.split('<div class="user">')[1].split("</div>")[0]
    assert f"Gemeente Teststad {world.unique[:4]}" in header  # the name, not the code

    # The intake form lists the organisations of the register.
    form_page = await professional.get("/intake")
    assert form_page.status_code == 200
    assert f'value="{world.uwv}"' in form_page.text
    csrf = csrf_of(form_page.text)
    key = KEY.search(form_page.text)
    assert key, "the intake form has no idempotency key"
    idempotency_key = key.group(1)

    # A BSN in the question: the Loket refuses it, the message stands next to the field,
    # in Dutch, with the Loket's own words beneath it.
    refused = await professional.post(
        "/intake",
        content=_encode(
            intake_form(
                world,
                csrf,
                question=f"uitkering van BSN {VALID_BSN} gestopt",
                idempotency_key=idempotency_key,
            )
        ),
        headers=_FORM,
    )
    assert refused.status_code == 422
    field = refused.text.split('id="veld-question"')[0].rsplit('<div class="field">', 1)[1]
    assert "elfproef" in field, "the BSN refusal is not shown in Dutch on the question field"
    assert "eleven-test" in field, "the Loket's own words are not shown on the question field"
    assert f"uitkering van BSN {VALID_BSN}" in refused.text  # what was typed stays
    kept = KEY.search(refused.text)
    assert kept, "the re-rendered form lost its idempotency key"
    assert kept.group(1) == idempotency_key  # no case was made: the same submission goes on
    # A household reference that is a BSN: shown on that field.
    refused = await professional.post(
        "/intake",
        content=_encode(
            intake_form(
                world, csrf, idempotency_key=idempotency_key, **{"household.reference": VALID_BSN}
            )
        ),
        headers=_FORM,
    )
    assert refused.status_code == 422
    field = refused.text.split('id="veld-household-reference"')[0].rsplit('<div class="field">', 1)[
        1
    ]
    assert "pseudoniem kenmerk" in field
    assert "eleven-test" in field

    # Without the CSRF token the console refuses the form before any service sees it.
    forged = await professional.post(
        "/intake", content=_encode(intake_form(world, "forged")), headers=_FORM
    )
    assert forged.status_code == 403

    submitted = await professional.post(
        "/intake",
        content=_encode(intake_form(world, csrf, idempotency_key=idempotency_key)),
        headers=_FORM,
    )
    assert submitted.status_code == 303, submitted.text
    case_url = submitted.headers["location"]
    case_id = case_url.rsplit("/", 1)[1]
    case_page = await professional.get(case_url)
    assert case_page.status_code == 200
    number = re.search(r"Casus (LMM-\d{4}-\d+)", case_page.text)
    assert number, text_of(case_page.text)[:500]
    assert "is ingediend" in case_page.text
    assert "Ingediend" in case_page.text
    assert "Handelingen" not in case_page.text  # a professional gets no workflow actions

    # The same form sent again (a double click, a retry after a timeout): the Loket answers
    # the case the key made (decision loket-0002), so there is still one case.
    again = await professional.post(
        "/intake",
        content=_encode(intake_form(world, csrf, idempotency_key=idempotency_key)),
        headers=_FORM,
    )
    assert again.status_code == 303, again.text
    assert again.headers["location"] == case_url
    assert "was al ingediend" in (await professional.get(case_url)).text
    listed = await professional.get("/cases")
    assert set(re.findall(r'<a href="/cases/([^"/]+)">', listed.text)) == {case_id}
    # The same key with another body is the Loket's 422 on Idempotency-Key: said in Dutch,
    # and the form gets a new key (sending it again is a new submission).
    reused = await professional.post(
        "/intake",
        content=_encode(
            intake_form(world, csrf, idempotency_key=idempotency_key, urgency="threatened")
        ),
        headers=_FORM,
    )
    assert reused.status_code == 422
    assert "al eerder ingediend" in text_of(reused.text)
    assert "Idempotency-Key" in reused.text or "idempotency key" in reused.text
    fresh = KEY.search(reused.text)
    assert fresh
    assert fresh.group(1) != idempotency_key

    mine = await professional.get("/cases")
    assert number.group(1) in mine.text
    assert "Acuut" in mine.text

    # The regievoerder: the new case is in the work queue, triage is the only move offered.
    director = world.browser()
    await sign_in(director, "pmm", "case_director", world.director)
    queue = await director.get("/queue")
    assert queue.status_code == 200
    new_section = queue.text.split('id="nieuw"')[1].split("</section>")[0]
    assert number.group(1) in new_section
    page = await director.get(case_url)
    actions = re.findall(r'action="/cases/[^/]+/actions/([a-z]+)"', page.text)
    assert actions == ["triage", "note"]
    assert "Audittrail" in page.text
    assert "Dossier ingezien" in page.text

    async def act(action: str, data: list[tuple[str, str]]) -> Any:
        current = await director.get(case_url)
        body = [("csrf_token", csrf_of(current.text)), *data]
        return await director.post(
            f"/cases/{case_id}/actions/{action}", content=_encode(body), headers=_FORM
        )

    # Declining without a reason: the Loket's rule, shown in the triage form.
    r = await act("triage", [("accepted", "no")])
    assert r.status_code == 422
    assert '<details class="action" open id="actie-triage">' in r.text
    assert "decline_reason" in text_of(r.text)

    r = await act("triage", [("accepted", "yes")])
    assert r.status_code == 303, r.text
    page = await director.get(case_url)
    assert "Geaccepteerd" in page.text
    assert re.findall(r'action="/cases/[^/]+/actions/([a-z]+)"', page.text) == ["assign", "note"]

    r = await act("assign", [("case_director_id", world.director)])
    assert r.status_code == 303, r.text
    page = await director.get(case_url)
    assert "In behandeling" in page.text
    offered = re.findall(r'action="/cases/[^/]+/actions/([a-z]+)"', page.text)
    assert offered == ["reassign", "consult", "note", "suspend", "escalate", "bridging", "close"]

    queue = await director.get("/queue")
    mine_section = queue.text.split('id="mijn"')[1].split("</section>")[0]
    assert number.group(1) in mine_section

    r = await act("note", [("text", f"gesprek gevoerd; BSN {VALID_BSN} genoemd")])
    assert r.status_code == 422  # the Loket refuses a BSN in a note too
    r = await act("note", [("text", "gesprek met het huishouden gevoerd")])
    assert r.status_code == 303
    r = await act(
        "consult",
        [("organisation", world.uwv), ("question", "kan de uitkering met terugwerkende kracht?")],
    )
    assert r.status_code == 303, text_of(r.text)[:1500]
    page = await director.get(case_url)
    assert "kan de uitkering met terugwerkende kracht?" in page.text
    assert "nog geen antwoord" in page.text

    # A bridging request from the case file: the Loket's 422 in Dutch on the field, then
    # the request as the case file shows it (Dutch labels, names, the amount in euros).
    bridging = [
        ("provision", "huurbetaling tijdens de herstart van de uitkering"),
        ("provider", "woningcorporatie"),
        ("estimated_amount", "1.250,50"),
        ("candidate_payers", world.municipality),
        ("legal_frameworks", "participatiewet"),
        ("dispute", "gemeente en UWV wijzen naar elkaar voor de huur"),
        ("settle_attempt", "twee overleggen tussen gemeente en UWV zonder uitkomst"),
    ]
    r = await act("bridging", bridging)
    assert r.status_code == 422
    field = r.text.split('id="fout-candidate_payers"')[1].split("</p>")[0]
    assert "Dit zijn er te weinig." in field  # in Dutch, the Loket's words beneath
    r = await act("bridging", [*bridging, ("candidate_payers", world.uwv)])
    assert r.status_code == 303, text_of(r.text)[:1500]
    page = text_of((await director.get(case_url)).text)
    section = page.split("Overbruggingsprocedure")[1]
    assert "Gevraagd" in section
    assert "€ 1.250,50" in section
    assert f"UWV test {world.unique[:4]}" in section
    assert "estimated_amount_cents" not in page

    # A state the workflow does not allow: the Loket's 409 is shown, not hidden.
    r = await act("resume", [])
    assert r.status_code == 409
    assert "in_progress" in r.text

    # UWV's maatwerk professional answers the question from the consultations page.
    ambassador = world.browser()
    await sign_in(ambassador, world.uwv, "maatwerk_professional", world.ambassador)
    listing = await ambassador.get("/consultations")
    assert listing.status_code == 200
    assert "kan de uitkering met terugwerkende kracht?" in listing.text
    answer_url = re.search(r'action="(/consultations/[^"]+/answer)"', listing.text)
    assert answer_url
    r = await ambassador.post(
        answer_url.group(1),
        content=_encode(
            [("csrf_token", csrf_of(listing.text)), ("answer", "ja, binnen twee weken")]
        ),
        headers=_FORM,
    )
    assert r.status_code == 303
    page = await director.get(case_url)
    assert "ja, binnen twee weken" in page.text

    r = await act("close", [("outcome", "solved"), ("reason", "uitkering hersteld")])
    assert r.status_code == 303
    page = await director.get(case_url)
    assert "Afgesloten" in page.text
    assert re.findall(r'action="/cases/[^/]+/actions/([a-z]+)"', page.text) == [
        "note",
        "reopen",
        "evaluate",
    ]
    r = await act(
        "evaluate",
        [
            ("lp0_order", "2"),
            ("lp0_bottleneck", "cooperation"),
            ("lp0_organisations", world.uwv),
            ("lp0_description", "vroeg contact met de ambassadeur versnelt het herstel"),
        ],
    )
    assert r.status_code == 303, text_of(r.text)[:1500]
    page = await director.get(case_url)
    assert "Geëvalueerd" in page.text
    assert "vroeg contact met de ambassadeur" in page.text


async def test_register_search_shows_the_urgent_line_first(world: World) -> None:
    browser = world.browser()
    await sign_in(browser, world.municipality, "maatwerk_professional", world.professional)
    page = await browser.get("/register", params={"organisation": world.uwv})
    assert page.status_code == 200
    urgent = page.text.split('class="urgent"')[1].split("</section>")[0]
    assert "088 123 45 67" in urgent
    results = page.text.split('class="urgent"')[1].split("</section>")[1]
    assert f"Test maatwerk_professional {world.unique[:4]}" in results
    # htmx asks for the results only.
    partial = await browser.get(
        "/register",
        params={"q": "Test", "organisation": world.uwv},
        headers={"HX-Request": "true"},
    )
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert "088 123 45 67" in partial.text


async def test_signed_out_pages_lead_to_the_sign_in_and_a_forged_cookie_counts_for_nothing(
    world: World,
) -> None:
    browser = world.browser()
    r = await browser.get("/queue")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/queue"
    login = await browser.get("/login")
    assert "alleen voor ontwikkeling" in login.text
    assert world.uwv in login.text  # organisations from the register
    browser.cookies.set("pmm_console_session", "eyJjIjoieCIsInQiOiJ4In0.forged")
    assert (await browser.get("/queue")).status_code == 303


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _encode(pairs: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return urlencode(pairs)
