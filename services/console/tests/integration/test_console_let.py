"""The LET chair runs an escalation from the console: the Loket's real escalation request
opens it at the (real) LET; admissibility, session with the register's executives,
attendance, an agreement and the outcome are recorded from the page, and the Loket's case
shows the LET's answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

import pytest

from pmm_let.app import create_app as create_let
from pmm_let.settings import LetSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, eventually

from .conftest import WAIT_S, World, csrf_of, replayed, sign_in

# cross-service catch-ups: the read models' replay, the LET and the Loket hearing each other
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_the_chair_runs_an_escalation_from_the_page(
    world: World, make_settings: Callable[..., Any], serve: Any, issuer: LocalIssuer
) -> None:
    let_app = create_let(make_settings(LetSettings))
    await serve(let_app)
    known = let_app.state.deps.register
    for pid in (world.chair, *world.executives):
        await replayed(known, partial(known.professional, pid), f"professional {pid}")
    world.with_services(let=let_app)

    # A case in progress at the Loket (set up over its API; the console journey is tested
    # elsewhere), escalated from the console's case page.
    professional = bearer(
        issuer, world.municipality, "maatwerk_professional", subject=world.professional
    )
    regie = bearer(issuer, "pmm", "case_director", subject=world.director)
    r = await world.loket.post(
        "/cases",
        headers=professional,
        json={
            "submitter_kind": "municipality",
            "household": {"reference": f"hh-{world.unique}", "adults": 1, "children": 0},
            "life_domains": ["income"],
            "bottlenecks": [{"type": "cooperation"}],
            "organisations_involved": [world.municipality, world.uwv],
            "tried_locally": "alles lokaal geprobeerd, twee keer overlegd",
            "question": "wie herstart de uitkering?",
            "urgency": "threatened",
            "legal_basis": "consent",
        },
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    for path, body in (
        ("triage", {"accepted": True}),
        ("assign", {"case_director_id": world.director}),
    ):
        r = await world.loket.post(f"/cases/{case_id}/{path}", headers=regie, json=body)
        assert r.status_code == 200, r.text

    director = world.browser()
    await sign_in(director, "pmm", "case_director", world.director)
    page = await director.get(f"/cases/{case_id}")
    r = await director.post(
        f"/cases/{case_id}/actions/escalate",
        content=urlencode(
            {
                "csrf_token": csrf_of(page.text),
                "justification": "beide organisaties twee keer geconsulteerd; "
                "ieder wacht op de ander",
                "question": "spreken de bestuurders af wie de uitkering herstart?",
            }
        ),
        headers=FORM,
    )
    assert r.status_code == 303, r.text

    chair = world.browser()
    await sign_in(chair, "pmm", "let_chair", world.chair)

    async def opened() -> str | None:
        # This case's escalation: the LET replays the Loket's topic from its start, so it
        # also opens escalations of earlier runs, and its list (newest opened first) need
        # not show this one on its first page.
        _, found = await let_app.state.deps.repo.search(case_id=case_id)
        return found[0].id if found else None

    escalation_id = await eventually(opened, timeout_s=WAIT_S)
    listing = await chair.get("/escalations")
    assert listing.status_code == 200, listing.text
    assert 'href="/escalations/' in listing.text
    url = f"/escalations/{escalation_id}"

    def offered(html: str) -> list[str]:
        return re.findall(rf'action="{url}/actions/([a-z]+)"', html)

    async def act(action: str, fields: list[tuple[str, str]]) -> Any:
        current = await chair.get(url)
        body = urlencode([("csrf_token", csrf_of(current.text)), *fields])
        return await chair.post(f"{url}/actions/{action}", content=body, headers=FORM)

    page = await chair.get(url)
    assert page.status_code == 200
    assert "Aangevraagd" in page.text
    assert offered(page.text) == ["admissibility", "withdraw"]

    r = await act("admissibility", [("admitted", "no")])  # refusing needs a reason
    assert r.status_code == 422, r.text
    assert '<details class="action" open id="actie-admissibility">' in r.text
    r = await act("admissibility", [("admitted", "yes")])
    assert r.status_code == 303, r.text

    page = await chair.get(url)
    assert offered(page.text) == ["schedule", "withdraw"]
    for executive in world.executives:  # the register's proposal
        schedule = page.text.split('id="actie-schedule"')[1].split("</details>")[0]
        assert f'name="executive_ids" value="{executive}" checked' in schedule, schedule
    date = re.search(r'name="session_date" value="([0-9-]+)"', page.text)
    assert date
    today = datetime.now(UTC).date().isoformat()  # the services' clock (UTC)
    assert date.group(1) >= today
    r = await act(
        "schedule",
        # The form proposes a date ahead; the session is held today so that attendance can
        # be recorded in this test (the LET refuses attendance before the session date).
        [("session_date", today), *[("executive_ids", x) for x in world.executives]],
    )
    assert r.status_code == 303, r.text

    page = await chair.get(url)
    assert offered(page.text) == ["attendance", "withdraw"]
    r = await act("attendance", [("present", x) for x in world.executives])
    assert r.status_code == 303, r.text

    page = await chair.get(url)
    assert offered(page.text) == ["agreement", "outcome"]
    r = await act(
        "agreement",
        [
            ("organisation", world.uwv),
            ("action", "herstart de uitkering met terugwerkende kracht"),
            ("deadline", date.group(1)),
        ],
    )
    assert r.status_code == 303, r.text
    page = await chair.get(url)
    assert "herstart de uitkering met terugwerkende kracht" in page.text
    done = re.search(rf'action="{url}/actions/(done-[^"]+)"', page.text)
    assert done
    r = await act(done.group(1), [])
    assert r.status_code == 303, r.text
    r = await act(
        "outcome",
        [
            ("outcome", "breakthrough"),
            ("summary", "UWV herstart, gemeente betaalt de achterstand voor"),
        ],
    )
    assert r.status_code == 303, r.text
    page = await chair.get(url)
    assert "Doorbraak" in page.text
    assert "Uitgevoerd" in page.text
    assert offered(page.text) == []

    # The Loket hears the LET's outcome: the case is being handled again.
    async def back_at_the_loket() -> bool:
        case = await director.get(f"/cases/{case_id}")
        let = case.text.split('id="kop-let"')[-1].split("</section>")[0]
        return "In behandeling" in case.text and "Doorbraak" in let  # the LET's outcome, in Dutch

    await eventually(back_at_the_loket, timeout_s=WAIT_S)
    case_page = await director.get(f"/cases/{case_id}")
    let_section = case_page.text.split('id="kop-let"')[1].split("</section>")[0]
    assert "Afgerond" in let_section
    assert "breakthrough" not in let_section  # no code of the LET's vocabulary
    assert "escalation_id" not in let_section
