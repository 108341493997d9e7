"""An organisation's contact reads the signal assigned to it and answers from the page;
staff download the yearly report through the console. Signalen runs for real, fed with the
Loket's case events on a topic of this test (as the Loket would produce them)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode

import pytest
from openpyxl import load_workbook

from pmm_contracts import new_event
from pmm_contracts.cli import provision
from pmm_contracts.events.cases import (
    Bottleneck,
    CaseClosed,
    CaseEvaluated,
    CaseOutcome,
    LearningPoint,
)
from pmm_contracts.topics import LOKET_CASES, org_topics
from pmm_contracts.vocabulary import BottleneckType, LearningOrder, LifeDomain, SubmitterKind
from pmm_runtime.testing import create_topics, eventually
from pmm_runtime.testing import publish_events as publish
from pmm_signalen.app import create_app as create_signalen
from pmm_signalen.domain.model import signal_id_for
from pmm_signalen.settings import SignalenSettings

from .conftest import WAIT_S, World, csrf_of, replayed, sign_in

# cross-service catch-ups: the read models' replay, signalen's projector
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_uwv_answers_its_signal_from_the_page_and_staff_get_the_report(
    world: World, make_settings: Callable[..., Any], serve: Any, infra: Any
) -> None:
    unique = world.unique
    await provision(infra.kafka_bootstrap, list(org_topics(world.uwv)))
    cases_topic = f"{LOKET_CASES}.t{unique}"
    await create_topics(infra.kafka_bootstrap, [cases_topic])
    signalen_app = create_signalen(
        make_settings(
            SignalenSettings,
            reminder_scan_interval_s=3600,
            figures_interval_s=0.5,
            cases_topic=cases_topic,
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
    case_id, number = f"case-{unique}", "LMM-2026-0042"
    closing = CaseClosed(
        case_id=case_id,
        case_number=number,
        outcome=CaseOutcome.SOLVED,
        submitted_at=closed - timedelta(days=40),
        closed_at=closed,
        duration_days=40,
    )
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
    await publish(
        infra.kafka_bootstrap,
        cases_topic,
        new_event(closing, subject=case_id, source=LOKET),
        event,
    )
    signal_id = signal_id_for(event.id, point.id)

    contact = world.browser()
    await sign_in(contact, world.uwv, "maatwerk_professional", world.ambassador)

    async def listed() -> str | None:
        page = await contact.get("/signals")
        assert page.status_code == 200, page.text  # a refusal is a failure, not a wait
        return page.text if signal_id in page.text else None

    listing = await eventually(listed, timeout_s=WAIT_S)
    assert "een vaste contactpersoon" in listing
    page = await contact.get(f"/signals/{signal_id}")
    assert page.status_code == 200
    assert "Belegd, nog geen antwoord" in page.text
    assert number not in page.text  # an organisation sees the lesson, never the case

    async def respond(**fields: str) -> Any:
        current = await contact.get(f"/signals/{signal_id}")
        body = urlencode({"csrf_token": csrf_of(current.text), **fields})
        return await contact.post(f"/signals/{signal_id}/respond", content=body, headers=FORM)

    r = await respond(status="measure_taken", explanation="zie BSN 111222333")
    assert r.status_code == 422
    field = r.text.split('id="veld-explanation"')[0].rsplit('<div class="field">', 1)[1]
    assert "eleven-test" in field
    r = await respond(status="measure_taken", explanation="vaste contactpersoon per regio")
    assert r.status_code == 303, r.text
    page = await contact.get(f"/signals/{signal_id}")
    assert "Maatregel genomen" in page.text
    assert "vaste contactpersoon per regio" in page.text
    staff = world.browser()
    await sign_in(staff, "pmm", "pmm_staff", world.director)
    year = closed.year
    uwv_name = f"UWV test {unique[:4]}"

    async def reported() -> str | None:
        # signalen's projector adds the answer to the year's figures within its interval
        page = await staff.get("/report", params={"year": year})
        assert page.status_code == 200, page.text
        return page.text if "vaste contactpersoon per regio" in page.text else None

    report = await eventually(reported, timeout_s=WAIT_S)
    assert uwv_name in report  # the organisation's name from the register, not its code
    assert "Maatregel genomen" in report
    csv = await staff.get(f"/report/{year}.csv")
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    assert csv.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Dutch Excel
    rows = csv.content.decode("utf-8-sig").splitlines()
    assert any(row.startswith(f"{uwv_name};") for row in rows), rows
    xlsx = await staff.get(f"/report/{year}.xlsx")
    assert xlsx.status_code == 200
    assert "spreadsheetml" in xlsx.headers["content-type"]
    book = load_workbook(io.BytesIO(xlsx.content))
    cells = {c for sheet in book for row in sheet.iter_rows(values_only=True) for c in row}
    assert uwv_name in cells
    assert "vaste contactpersoon per regio" in cells
    html = await staff.get(f"/report/{year}.html")
    assert html.status_code == 200
    assert "sandbox" in html.headers["content-security-policy"]
    assert re.search(r"<html", html.text, re.IGNORECASE)
    # An organisation's contact may not read the report: the service's 403, shown as a page.
    refused = await contact.get(f"/report/{year}.csv")
    assert refused.status_code == 403
    assert "Geen toegang" in refused.text
