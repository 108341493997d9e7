"""In a real browser (Debian's headless chromium, driven by Playwright): a professional signs
in, submits an intake (first with a BSN, which the Loket refuses on the field), sees the
case; a regievoerder takes it from the work queue; the register shows the urgent line.

Screenshots of every page go to ``.local/screenshots/console/`` (git-ignored)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from pmm_console.app import create_app as create_console
from pmm_console.settings import ConsoleSettings
from pmm_contracts import new_event
from pmm_contracts.cli import provision
from pmm_contracts.events.cases import (
    Bottleneck,
    BridgingRequested,
    CaseEvaluated,
    CaseOutcome,
    EscalationRequested,
    LearningPoint,
    LegalFramework,
    Urgency,
)
from pmm_contracts.topics import LOKET_CASES, org_topics
from pmm_contracts.vocabulary import BottleneckType, LearningOrder, LifeDomain, SubmitterKind
from pmm_let.app import create_app as create_let
from pmm_let.settings import LetSettings
from pmm_overbrugging.app import create_app as create_overbrugging
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_register.app import create_app as create_register
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, create_topics, eventually
from pmm_runtime.testing import publish_events as publish
from pmm_signalen.app import create_app as create_signalen
from pmm_signalen.domain.model import signal_id_for
from pmm_signalen.settings import SignalenSettings

from .conftest import WAIT_S, World, replayed

# cross-service catch-ups (the read models' replay) and a browser on a shared machine
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SHOTS = Path(__file__).resolve().parents[4] / ".local" / "screenshots" / "console"
VALID_BSN = "111222333"
LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("the browser tests need Debian's chromium: run `make chromium`")
    return found


async def serve_tcp(app: FastAPI) -> AsyncIterator[str]:
    """The app on a free port of 127.0.0.1 in this event loop; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def console_url(world: World) -> AsyncIterator[str]:
    async for url in serve_tcp(world.console_app):
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=chromium(), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, url: str, organisation: str, role: str, person: str) -> None:
    await page.goto(f"{url}/login")
    await expect(page.get_by_text("alleen voor ontwikkeling")).to_be_visible()
    # Choosing the organisation reloads its people (htmx, served by the console itself).
    await page.get_by_label("Organisatie").select_option(organisation)
    await expect(page.locator(f'#veld-person option[value="{person}"]')).to_have_count(1)
    await page.get_by_label("Rol").select_option(role)
    await page.get_by_label("Persoon uit het register").select_option(person)
    await page.get_by_role("button", name="Aanmelden (ontwikkeling)").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Welkom")


async def test_intake_to_work_queue_in_a_real_browser(
    world: World, console_url: str, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    page = await context.new_page()
    external: list[str] = []
    page.on(
        "request",
        lambda r: external.append(r.url) if not r.url.startswith(console_url) else None,
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    await page.goto(f"{console_url}/login")
    await shot(page, "01-aanmelden")
    await sign_in(
        page, console_url, world.municipality, "maatwerk_professional", world.professional
    )
    await shot(page, "02-start-professional")

    await page.get_by_role("link", name="Casus indienen").first.click()
    await page.get_by_label("Soort organisatie van de indiener").select_option("municipality")
    await page.get_by_label("Kenmerk van het huishouden (pseudoniem)").fill(f"hh-{world.unique}")
    await page.get_by_label("Volwassenen").fill("1")
    await page.get_by_label("Kinderen").fill("2")
    await page.get_by_label("Schulden").check()
    await page.get_by_label("Huisvesting").check()
    await page.get_by_label("Wet- en regelgeving: Interpretatie onduidelijk").check()
    await page.locator(f'input[name="organisations_involved"][value="{world.uwv}"]').check()
    await page.get_by_label("Wat is lokaal en regionaal al geprobeerd?").fill(
        "wijkteam, schuldhulpverlening en de woningcorporatie"
    )
    await page.get_by_label("Uw vraag aan het Maatwerkloket").fill(
        f"uitkering van BSN {VALID_BSN} gestopt; wie betaalt de huur?"
    )
    await page.get_by_label("Acuut: bestaanszekerheid nu in gevaar").check()
    await page.get_by_label("Toestemming van het huishouden").check()
    await page.get_by_role("button", name="Casus indienen").click()

    # The Loket's refusal stands next to the question, and the question is marked invalid.
    question = page.get_by_label("Uw vraag aan het Maatwerkloket")
    await expect(question).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#fout-question")).to_contain_text("elfproef")  # in Dutch
    await expect(page.locator("#fout-question")).to_contain_text("eleven-test")  # the Loket's
    await expect(page.get_by_label("Schulden")).to_be_checked()  # what was typed stays
    await shot(page, "03-intake-bsn-geweigerd")

    await question.fill("de uitkering is gestopt; wie betaalt de huur in de tussentijd?")
    await page.get_by_role("button", name="Casus indienen").click()
    await expect(page.get_by_role("status")).to_contain_text("is ingediend")
    heading = await page.get_by_role("heading", level=1).inner_text()
    number = re.search(r"LMM-\d{4}-\d+", heading)
    assert number, heading
    await shot(page, "04-casus-professional")

    await (
        page.get_by_role("navigation", name="Hoofdmenu")
        .get_by_role("link", name="Mijn casussen")
        .click()
    )
    await expect(page.get_by_role("link", name=number.group(0))).to_be_visible()
    await shot(page, "05-mijn-casussen")

    await page.get_by_role("button", name="Afmelden").click()
    await expect(page.get_by_role("status")).to_contain_text("afgemeld")

    # The regievoerder: the case waits in the work queue; triage and assign from the file.
    await sign_in(page, console_url, "pmm", "case_director", world.director)
    await (
        page.get_by_role("navigation", name="Hoofdmenu")
        .get_by_role("link", name="Werkvoorraad")
        .click()
    )
    await expect(page.locator("#nieuw").get_by_role("link", name=number.group(0))).to_be_visible()
    await shot(page, "06-werkvoorraad")
    await page.locator("#nieuw").get_by_role("link", name=number.group(0)).click()
    case_url = page.url
    await page.get_by_text("Beoordelen", exact=True).click()
    await page.get_by_label("In behandeling nemen", exact=True).check()
    await page.locator("#actie-triage").get_by_role("button", name="Uitvoeren").click()
    await expect(page.get_by_role("status")).to_contain_text("beoordeeld")
    await page.get_by_text("Toewijzen aan regievoerder", exact=True).click()
    await page.locator("#actie-assign").get_by_role("button", name="Uitvoeren").click()
    await expect(page.locator(".badges")).to_contain_text("In behandeling")
    await page.get_by_text("Notitie toevoegen", exact=True).click()
    await page.locator("#actie-note").get_by_role("button", name="Uitvoeren").click()
    await expect(page.locator("#actie-note .field-error")).to_be_visible()  # empty note
    await shot(page, "07-casus-regievoerder")

    phone = await browser.new_context(viewport={"width": 390, "height": 844}, locale="nl-NL")
    await phone.add_cookies(await context.cookies())
    small = await phone.new_page()
    await small.goto(case_url)
    await expect(small.get_by_role("heading", level=1)).to_contain_text(number.group(0))
    await shot(small, "08-casus-telefoon")
    await phone.close()

    await (
        page.get_by_role("navigation", name="Hoofdmenu")
        .get_by_role("link", name="Register")
        .click()
    )
    await page.get_by_label("Organisatie").select_option(world.uwv)
    await expect(page.locator(".urgent")).to_contain_text("088 123 45 67")  # via htmx
    await page.reload()  # the address bar holds the search (hx-push-url)
    await expect(page.locator(".urgent")).to_contain_text("088 123 45 67")
    await shot(page, "09-register-spoedlijn")

    await context.close()
    assert not external, f"the console loaded something from elsewhere: {external}"
    assert not errors, f"script errors: {errors}"


# The other roles in the browser ----------------------------------------------------------
# Each service runs for real; the Loket's case events it consumes are published on a topic
# of this test, as the Loket produces them (the console's own escalation and bridging
# forms on the case page are tested in test_console_journey and test_console_let).

PHONE = {"width": 390, "height": 844}
served = contextlib.asynccontextmanager(serve_tcp)


async def phone_shot(browser: Browser, desktop: BrowserContext, url: str, name: str) -> None:
    """The same page at a phone's width (the signed-in person's cookies), saved too."""
    phone = await browser.new_context(viewport=PHONE, locale="nl-NL")
    try:
        await phone.add_cookies(await desktop.cookies())
        small = await phone.new_page()
        await small.goto(url)
        await expect(small.get_by_role("heading", level=1)).to_be_visible()
        await shot(small, name)
        width = await small.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name} is {width} px wide on a phone"
    finally:
        await phone.close()


async def desktop(browser: Browser, console_url: str) -> tuple[BrowserContext, Page, list[str]]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    page = await context.new_page()
    problems: list[str] = []
    page.on(
        "request",
        lambda r: (
            problems.append(f"external: {r.url}") if not r.url.startswith(console_url) else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    return context, page, problems


def case_number(unique: str) -> str:
    """A case number of this test (the Loket's pattern: LMM-year-digits)."""
    return f"LMM-2026-{int(unique[:8], 16) % 1_000_000:06d}"


async def case_topic(infra: Any, unique: str) -> str:
    topic = f"{LOKET_CASES}.b{unique}"
    await create_topics(infra.kafka_bootstrap, [topic])
    return topic


async def test_the_let_chair_in_a_real_browser(
    world: World,
    browser: Browser,
    make_settings: Callable[..., Any],
    serve: Any,
    infra: Any,
) -> None:
    topic = await case_topic(infra, world.unique)
    let_app = create_let(make_settings(LetSettings, cases_topic=topic))
    await serve(let_app)
    known = let_app.state.deps.register
    for pid in (world.chair, *world.executives):
        await replayed(known, partial(known.professional, pid), f"professional {pid}")
    world.with_services(let=let_app)
    number = case_number(world.unique)
    request = EscalationRequested(
        case_id=f"case-{world.unique}",
        case_number=number,
        request_id=f"esc-{world.unique}",
        organisations_involved=(world.municipality, world.uwv),
        justification="beide organisaties twee keer geconsulteerd; ieder wacht op de ander",
        question="spreken de bestuurders af wie de uitkering herstart?",
        requested_by=world.director,
    )
    await publish(
        infra.kafka_bootstrap,
        topic,
        new_event(request, subject=request.case_id, source=LOKET),
    )

    async with contextlib.AsyncExitStack() as stack:
        # served after with_services: this console reaches the service started above
        console_url = await stack.enter_async_context(served(world.console_app))
        context, page, problems = await desktop(browser, console_url)
        stack.push_async_callback(context.close)
        await sign_in(page, console_url, "pmm", "let_chair", world.chair)
        nav = page.get_by_role("navigation", name="Hoofdmenu")

        async def listed() -> bool:
            await nav.get_by_role("link", name="LET").click()
            return await page.get_by_role("link", name=number).count() == 1

        await eventually(listed, timeout_s=WAIT_S, interval_s=1.0)
        await shot(page, "10-let-escalaties")
        await phone_shot(browser, context, page.url, "10-let-escalaties-telefoon")
        await page.get_by_role("link", name=number).click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(number)
        url = page.url

        # Admissibility: refusing without a reason is the LET's 422, shown in the open form.
        await page.get_by_text("Ontvankelijkheid", exact=True).click()
        form = page.locator("#actie-admissibility")
        await form.get_by_label("Niet ontvankelijk", exact=True).check()
        await form.get_by_role("button", name="Vastleggen").click()
        await expect(page.locator("#actie-admissibility")).to_have_attribute("open", "")
        await expect(page.locator("#actie-admissibility .error-summary")).to_be_visible()
        await shot(page, "11-let-ontvankelijkheid-geweigerd")
        await page.locator("#actie-admissibility").get_by_label("Ontvankelijk", exact=True).check()
        await page.locator("#actie-admissibility").get_by_role("button", name="Vastleggen").click()
        await expect(page.get_by_role("status")).to_contain_text("Vastgelegd bij het LET")

        # The session with the executives the register proposes, held today (the LET
        # records attendance from the session date on).
        await page.get_by_text("Sessie plannen", exact=True).click()
        schedule = page.locator("#actie-schedule")
        for executive in world.executives:
            await expect(schedule.locator(f'input[value="{executive}"]')).to_be_checked()
        await schedule.get_by_label("Datum van de sessie").fill(
            datetime.now(UTC).date().isoformat()
        )
        await shot(page, "12-let-sessie-plannen")
        await schedule.get_by_role("button", name="Vastleggen").click()
        await expect(page.get_by_role("status")).to_contain_text("Vastgelegd")

        await page.get_by_text("Aanwezigheid vastleggen", exact=True).click()
        attendance = page.locator("#actie-attendance")
        for executive in world.executives:
            await attendance.locator(f'input[value="{executive}"]').check()
        await attendance.get_by_role("button", name="Vastleggen").click()
        await expect(page.get_by_role("status")).to_contain_text("Vastgelegd")

        await page.get_by_text("Afspraak vastleggen", exact=True).click()
        agreement = page.locator("#actie-agreement")
        await agreement.get_by_label("Organisatie").select_option(world.uwv)
        await agreement.get_by_label("Afspraak").fill(
            "herstart de uitkering met terugwerkende kracht"
        )
        await agreement.get_by_label("Uiterlijk").fill(
            (datetime.now(UTC).date() + timedelta(days=14)).isoformat()
        )
        await agreement.get_by_role("button", name="Vastleggen").click()
        await expect(page.locator("table")).to_contain_text("herstart de uitkering")
        await page.get_by_role("button", name="Uitgevoerd").click()
        await expect(page.locator("table")).to_contain_text("Uitgevoerd")

        await page.get_by_text("Uitkomst vastleggen", exact=True).click()
        outcome = page.locator("#actie-outcome")
        await outcome.get_by_label("Uitkomst").select_option("breakthrough")
        await outcome.get_by_label("Samenvatting").fill(
            "UWV herstart, de gemeente betaalt de achterstand voor"
        )
        await outcome.get_by_role("button", name="Vastleggen").click()
        await expect(page.locator("dl.facts").first).to_contain_text("Doorbraak")
        await expect(page.locator("#kop-acties")).to_have_count(0)  # nothing left to do
        await shot(page, "13-let-escalatie-afgerond")
        await phone_shot(browser, context, url, "13-let-escalatie-telefoon")
        assert not problems, problems


async def test_the_budget_holder_in_a_real_browser(
    world: World,
    browser: Browser,
    make_settings: Callable[..., Any],
    serve: Any,
    infra: Any,
    issuer: LocalIssuer,
) -> None:
    holder = f"bh-{world.unique}"
    r = await world.register.post(
        "/professionals",
        headers=bearer(issuer, "pmm", "register_admin"),
        json={
            "id": holder,
            "organisation": "pmm",
            "name": f"Budgethouder {world.unique[:4]}",
            "roles": ["budget_holder"],
            "email": f"{holder}@example.nl",
        },
    )
    assert r.status_code == 201, r.text
    topic = await case_topic(infra, world.unique)
    overbrugging_app = create_overbrugging(make_settings(OverbruggingSettings, cases_topic=topic))
    await serve(overbrugging_app)
    world.with_services(overbrugging=overbrugging_app)
    number = case_number(world.unique)
    request = BridgingRequested(
        case_id=f"case-{world.unique}",
        case_number=number,
        request_id=f"br-{world.unique}",
        provision="beschermd wonen, 3 maanden",
        provider="Stichting Onderdak",
        estimated_amount=Decimal("1250.00"),
        candidate_payers=(world.municipality, world.uwv),
        legal_frameworks=(LegalFramework.WMO_2015,),
        dispute="gemeente en UWV wijzen naar elkaar",
        urgency=Urgency.ACUTE,
        settle_attempt="twee overleggen, geen akkoord over wie betaalt",
        requested_by=world.director,
    )
    await publish(
        infra.kafka_bootstrap, topic, new_event(request, subject=request.case_id, source=LOKET)
    )
    year = datetime.now(UTC).year

    async with contextlib.AsyncExitStack() as stack:
        # served after with_services: this console reaches the service started above
        console_url = await stack.enter_async_context(served(world.console_app))
        context, page, problems = await desktop(browser, console_url)
        stack.push_async_callback(context.close)
        await sign_in(page, console_url, "pmm", "budget_holder", holder)
        nav = page.get_by_role("navigation", name="Hoofdmenu")

        # The year's budget first: without it an approval cannot be committed.
        await nav.get_by_role("link", name="Budget").click()
        await expect(page.get_by_text(f"Voor {year} is nog geen budget")).to_be_visible()
        await page.get_by_label(f"Totaal voor {year} (euro)").fill("50.000,00")
        await page.get_by_role("button", name="Vastleggen").click()
        await expect(page.get_by_role("status")).to_contain_text(f"Budget {year} vastgelegd")
        await expect(page.locator("dl.facts")).to_contain_text("€ 50.000,00")

        async def listed() -> bool:
            await nav.get_by_role("link", name="Overbrugging").click()
            return await page.get_by_role("link", name=number).count() == 1

        await eventually(listed, timeout_s=WAIT_S, interval_s=1.0)
        await shot(page, "20-overbrugging-aanvragen")
        await phone_shot(browser, context, page.url, "20-overbrugging-aanvragen-telefoon")
        await page.get_by_role("link", name=number).click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(number)
        url = page.url

        # Approving before the checklist is complete: the service refuses, the page says so.
        await page.get_by_text("Besluiten", exact=True).click()
        decision = page.locator("#actie-decision")
        await decision.get_by_label("Toekennen").check()
        await decision.get_by_label("Vorm").select_option("advance")
        await decision.get_by_label("Bedrag (euro)").fill("1.250,00")
        await decision.get_by_role("button", name="Vastleggen").click()
        await expect(page.locator("#actie-decision .error-summary")).to_be_visible()
        await shot(page, "21-overbrugging-besluit-geweigerd")

        await page.get_by_text("Voorwaarden beoordelen", exact=True).click()
        checklist = page.locator("#actie-conditions")
        for fieldset in await checklist.locator("fieldset").all():
            await fieldset.get_by_label("Voldaan", exact=True).check()
        await checklist.locator("#veld-urgency_note").fill("huisuitzetting over twee weken")
        await shot(page, "22-overbrugging-voorwaarden")
        await checklist.get_by_role("button", name="Vastleggen").click()
        await expect(page.locator("ul.checklist")).not_to_contain_text("nog niet beoordeeld")

        await page.get_by_text("Besluiten", exact=True).click()
        decision = page.locator("#actie-decision")
        await decision.get_by_label("Toekennen").check()
        await decision.get_by_label("Vorm").select_option("advance")
        await decision.get_by_label("Bedrag (euro)").fill("1.250,00")
        await decision.get_by_role("button", name="Vastleggen").click()
        await expect(page.locator(".badges")).to_contain_text("Toegekend")

        await page.get_by_text("Voorschot betalen", exact=True).click()
        await page.locator("#actie-payment").get_by_label("Bedrag (euro)").fill("1.250,00")
        await page.locator("#actie-payment").get_by_role("button", name="Vastleggen").click()
        await expect(page.locator("dl.facts")).to_contain_text("€ 1.250,00")

        await page.get_by_text("Verantwoordelijke partij bepalen", exact=True).click()
        determine = page.locator("#actie-determine")
        await determine.get_by_label("Verantwoordelijke partij").select_option(world.municipality)
        await determine.get_by_label("Grondslag").fill("Wmo 2015, art. 2.3.1")
        await determine.get_by_role("button", name="Vastleggen").click()
        await page.get_by_text("Terugvordering vragen", exact=True).click()
        await page.locator("#actie-recovery").get_by_role("button", name="Vastleggen").click()
        await page.get_by_text("Terugbetaling boeken", exact=True).click()
        await page.locator("#actie-repayment").get_by_label("Bedrag (euro)").fill("1.250,00")
        await page.locator("#actie-repayment").get_by_role("button", name="Vastleggen").click()
        await expect(page.locator(".badges")).to_contain_text("Terugbetaald")
        await expect(page.locator("#kop-acties")).to_have_count(0)
        await expect(page.get_by_role("heading", name="Grootboek")).to_be_visible()
        await shot(page, "23-overbrugging-aanvraag-teruggevorderd")
        await phone_shot(browser, context, url, "23-overbrugging-aanvraag-telefoon")

        # The budget's ledger figures: paid and recovered, the ledger closes.
        await nav.get_by_role("link", name="Budget").click()
        figures = page.locator("dl.facts")
        await expect(figures).to_contain_text("€ 50.000,00")
        await expect(figures.locator("dd").nth(3)).to_have_text("€ 1.250,00")  # paid
        await expect(figures.locator("dd").nth(4)).to_have_text("€ 1.250,00")  # recovered
        await expect(figures).to_contain_text("ja")  # the ledger closes
        await shot(page, "24-budget")
        await phone_shot(browser, context, page.url, "24-budget-telefoon")
        assert not problems, problems


async def test_an_organisation_contact_answers_its_signal_in_a_real_browser(
    world: World,
    browser: Browser,
    make_settings: Callable[..., Any],
    serve: Any,
    infra: Any,
) -> None:
    await provision(infra.kafka_bootstrap, list(org_topics(world.uwv)))
    topic = await case_topic(infra, world.unique)
    signalen_app = create_signalen(
        make_settings(
            SignalenSettings,
            reminder_scan_interval_s=3600,
            figures_interval_s=0.5,
            cases_topic=topic,
            responses_pattern=rf"^pmm\.signalen\.responses\.{world.uwv}$",
        )
    )
    await serve(signalen_app)
    known = signalen_app.state.deps.register
    await replayed(known, partial(known.organisation, world.uwv), f"organisation {world.uwv}")
    world.with_services(signalen=signalen_app)
    closed = datetime.now(UTC)
    point = LearningPoint(
        id="lp-1",
        order=LearningOrder.SECOND,
        bottleneck=Bottleneck(type=BottleneckType.COOPERATION),
        organisations=(world.uwv,),
        description="een vaste contactpersoon bij de uitkering voorkomt maanden vertraging",
    )
    case_id, number = f"case-{world.unique}", case_number(world.unique)
    evaluated = CaseEvaluated(
        case_id=case_id,
        case_number=number,
        submitter_kind=SubmitterKind.MUNICIPALITY,
        submitting_organisation=world.municipality,
        life_domains=(LifeDomain.INCOME,),
        bottlenecks=(point.bottleneck,),
        outcome=CaseOutcome.SOLVED,
        submitted_at=closed - timedelta(days=40),
        closed_at=closed,
        duration_days=40,
        learning_points=(point,),
    )
    event = new_event(evaluated, subject=case_id, source=LOKET)
    await publish(infra.kafka_bootstrap, topic, event)
    signal_id = signal_id_for(event.id, point.id)

    async with contextlib.AsyncExitStack() as stack:
        # served after with_services: this console reaches the service started above
        console_url = await stack.enter_async_context(served(world.console_app))
        context, page, problems = await desktop(browser, console_url)
        stack.push_async_callback(context.close)
        await sign_in(page, console_url, world.uwv, "maatwerk_professional", world.ambassador)
        nav = page.get_by_role("navigation", name="Hoofdmenu")
        link = page.locator(f'a[href="/signals/{signal_id}"]')

        async def listed() -> bool:
            await nav.get_by_role("link", name="Signalen").click()
            return await link.count() == 1

        await eventually(listed, timeout_s=WAIT_S, interval_s=1.0)
        await shot(page, "30-signalen")
        await phone_shot(browser, context, page.url, "30-signalen-telefoon")
        await link.click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Signaal")
        await expect(page.locator("main")).not_to_contain_text(number)  # never the case
        url = page.url

        # A BSN in the explanation: signalen refuses it on the field.
        await page.get_by_label("Maatregel genomen").check()
        explanation = page.get_by_label("Toelichting: de maatregel, of waarom geen")
        await explanation.fill("zie BSN 111222333")
        await page.get_by_role("button", name="Opvolging versturen").click()
        await expect(page.locator("#fout-explanation")).to_contain_text("elfproef")
        await expect(page.locator("#fout-explanation")).to_contain_text("eleven-test")
        await shot(page, "31-signaal-bsn-geweigerd")
        await page.get_by_label("Maatregel genomen").check()
        await page.get_by_label("Toelichting: de maatregel, of waarom geen").fill(
            "vaste contactpersoon per regio"
        )
        await page.get_by_role("button", name="Opvolging versturen").click()
        await expect(page.get_by_role("status")).to_contain_text("Uw opvolging is vastgelegd")
        await expect(page.locator("ol.timeline")).to_contain_text("vaste contactpersoon per regio")
        await shot(page, "32-signaal-beantwoord")
        await phone_shot(browser, context, url, "32-signaal-telefoon")

        # Staff read the yearly report: organisation names, Dutch labels, the downloads.
        await page.get_by_role("button", name="Afmelden").click()
        await sign_in(page, console_url, "pmm", "case_director", world.director)
        report = page.locator("main")

        async def reported() -> bool:
            await nav.get_by_role("link", name="Jaarrapportage").click()
            return "vaste contactpersoon per regio" in await report.inner_text()

        await eventually(reported, timeout_s=WAIT_S, interval_s=1.0)
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Jaarrapportage")
        await expect(report).to_contain_text(f"UWV test {world.unique[:4]}")
        await expect(report).to_contain_text("Tweede orde")
        await expect(page.get_by_role("link", name="Excel (XLSX) downloaden")).to_be_visible()
        await shot(page, "33-jaarrapportage")
        await phone_shot(browser, context, page.url, "33-jaarrapportage-telefoon")
        assert not problems, problems


async def test_the_register_administrator_in_a_real_browser(
    make_settings: Callable[..., Any],
    console_settings: Callable[..., ConsoleSettings],
    serve: Any,
    issuer: LocalIssuer,
    unique: str,
    browser: Browser,
) -> None:
    register_app = create_register(make_settings(RegisterSettings))
    register = await serve(register_app)
    admin_headers = bearer(issuer, "pmm", "register_admin")
    r = await register.post(
        "/organisations",
        headers=admin_headers,
        json={"code": "pmm", "name": "PMM", "kind": "ministry", "joined_on": "2024-01-01"},
    )
    assert r.status_code in (201, 409), r.text
    admin_id = f"adm-{unique}"
    r = await register.post(
        "/professionals",
        headers=admin_headers,
        json={
            "id": admin_id,
            "organisation": "pmm",
            "name": f"Beheerder {unique[:4]}",
            "roles": ["register_admin"],
            "email": f"{admin_id}@example.nl",
        },
    )
    assert r.status_code == 201, r.text
    console_app = create_console(
        console_settings(), transports={"register": httpx.ASGITransport(app=register_app)}
    )
    code = f"gm{unique[:8]}"
    async with contextlib.AsyncExitStack() as stack:
        console_url = await stack.enter_async_context(served(console_app))
        context, page, problems = await desktop(browser, console_url)
        stack.push_async_callback(context.close)
        await sign_in(page, console_url, "pmm", "register_admin", admin_id)
        await (
            page.get_by_role("navigation", name="Hoofdmenu")
            .get_by_role("link", name="Beheer register")
            .click()
        )
        await expect(page.get_by_role("heading", level=1)).to_contain_text("organisaties")
        await page.get_by_label("Code").fill(code)
        await page.get_by_label("Naam").fill(f"Gemeente Beheerstad {unique[:4]}")
        await page.get_by_label("Soort organisatie").select_option("municipality")
        await page.get_by_role("button", name="Opnemen in het register").click()
        await expect(page.get_by_role("status")).to_contain_text("opgenomen in het register")
        await shot(page, "40-beheer-organisatie")

        await page.locator("#actie-join summary").click()
        await page.locator("#actie-join").get_by_label("Aangesloten per").fill("2026-03-01")
        await page.locator("#actie-join").get_by_role("button", name="Aansluiten").click()
        await expect(page.get_by_role("status")).to_contain_text("aangesloten bij het register")
        await expect(page.locator("#actie-leave")).to_have_count(1)

        # A role that does not fit a municipality: the register's refusal on the roles.
        add = page.locator("#professional-toevoegen")
        await add.get_by_label("Naam").fill(f"Petra Beheer {unique[:4]}")
        await add.get_by_label("Regievoerder").check()
        await add.get_by_label("E-mailadres (werk)").fill(f"petra-{unique}@example.nl")
        await add.get_by_role("button", name="Toevoegen aan het register").click()
        await expect(page.locator("#fout-add-roles")).to_contain_text("do not fit")
        await expect(page.locator("#professional-toevoegen").get_by_label("Naam")).to_have_value(
            f"Petra Beheer {unique[:4]}"
        )
        await shot(page, "41-beheer-professional-geweigerd")
        add = page.locator("#professional-toevoegen")
        await add.get_by_label("Regievoerder").uncheck()
        await add.get_by_label("Maatwerkprofessional").check()
        await add.get_by_role("button", name="Toevoegen aan het register").click()
        await expect(page.get_by_role("status")).to_contain_text("staat in het register")
        url = page.url
        await phone_shot(browser, context, url, "40-beheer-organisatie-telefoon")
        await page.get_by_role("link", name=f"Petra Beheer {unique[:4]}").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Petra Beheer")
        await shot(page, "42-beheer-professional")
        await phone_shot(browser, context, page.url, "42-beheer-professional-telefoon")
        assert not problems, problems
