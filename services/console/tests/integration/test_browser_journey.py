"""In a real browser (Debian's headless chromium, driven by Playwright): a professional signs
in, submits an intake (first with a BSN, which the Loket refuses on the field), sees the
case; a regievoerder takes it from the work queue; the register shows the urgent line.

Screenshots of every page go to ``.local/screenshots/console/`` (git-ignored)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, Page, async_playwright, expect

from .conftest import World

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[4] / ".local" / "screenshots" / "console"
VALID_BSN = "111222333"


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
    await expect(page.locator("#fout-question")).to_contain_text("eleven-test")
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
