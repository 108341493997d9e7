"""Pages as people read them: no code of the vocabulary, no status and no organisation code
in the visible text of the signals list, a signal, the yearly report and the LET and
bridging state of a case file; organisations are named from every page of the register."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request

from pmm_console import labels
from pmm_console import report as layout
from pmm_console.app import templates
from pmm_console.clients import PageResult, ServiceClient
from pmm_contracts.vocabulary import BottleneckSubtype, BottleneckType, LifeDomain, SubmitterKind
from pmm_runtime.auth import Identity
from pmm_runtime.http import Page, PageQuery, page_query
from pmm_signalen.domain.model import AssignmentStatus, SignalStatus
from pmm_signalen.service.report import build
from pmm_signalen.service.views import CaseSignalView

ORGS = {"uwv01": "UWV", "gm0363": "Gemeente Amsterdam", "svb01": "Sociale Verzekeringsbank"}
CODES = {
    *ORGS,
    *(v.value for v in LifeDomain),
    *(v.value for v in BottleneckType),
    *(v.value for v in BottleneckSubtype),
    *(v.value for v in SubmitterKind),
    *(v.value for v in AssignmentStatus),
    *(v.value for v in SignalStatus),
    "solved",
    "partly_solved",
    "not_solved",
    # the LET's and the overbruggingsprocedure's state in a case file, and its keys
    *labels.CASE_ESCALATION_STATUS,
    *labels.CASE_BRIDGING_STATUS,
    *labels.LEDGER_KIND,
    *labels.BRIDGING_FORM,
    "breakthrough",
    "request_id",
    "escalation_id",
    "application_id",
    "estimated_amount_cents",
    "approved_amount_cents",
    "booked_cents",
    "candidate_payers",
    "responsible_party",
}


def visible(page: str) -> str:
    """The text a reader sees: no tags, no attribute values."""
    body = page.split('<main id="inhoud"', 1)[-1]  # the header names the signed-in person
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def raw_codes(page: str) -> set[str]:
    text = visible(page)
    return {code for code in CODES if re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text)}


def a_signal(**changes: Any) -> dict[str, Any]:
    """A signal as signalen answers it (its own view model checks the shape)."""
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    data: dict[str, Any] = {
        "id": "sig-1",
        "learning_point_id": "lp-1",
        "order": "3",
        "bottleneck": {"type": "laws_and_regulations", "subtype": "interpretation_unclear"},
        "life_domains": ["income", "housing", "residence_status"],
        "regulation_reference": "Participatiewet art. 18",
        "description": "de kostendelersnorm wordt per gemeente anders uitgelegd",
        "year": 2026,
        "created_at": at,
        "status": "open",
        "assignments": [
            {
                "organisation": "uwv01",
                "status": "forwarded",
                "assigned_at": at,
                "respond_by": date(2026, 12, 18),
                "answers": [
                    {"status": "received", "at": at, "via": "kafka"},
                    {"status": "forwarded", "forward_to": "svb01", "at": at, "via": "http"},
                ],
                "assigned_by": "evaluation",
            },
            {
                "organisation": "svb01",
                "status": "assigned",
                "assigned_at": at,
                "respond_by": date(2026, 12, 22),
                "assigned_by": "uwv01",
            },
            {
                "organisation": "gm0363",
                "status": "measure_taken",
                "assigned_at": at,
                "respond_by": date(2026, 12, 18),
                "answers": [
                    {
                        "status": "measure_taken",
                        "explanation": "werkinstructie aangepast",
                        "at": at,
                        "via": "http",
                    }
                ],
                "assigned_by": "evaluation",
            },
        ],
        "merged_from": ["sig-0"],
        "case_id": "case-1",
        "case_number": "LMM-2026-0001",
        "organisations": ["uwv01", "svb01", "gm0363"],
        **changes,
    }
    view: dict[str, Any] = CaseSignalView.model_validate(data).model_dump(mode="json")
    return view


def render(template: str, who: Identity, **values: Any) -> str:
    return (
        templates()
        .get_template(template)
        .render(who=who, L=labels, values={}, errors={}, flash=None, **values)
    )


STAFF = Identity("staff-1", "pmm", frozenset({"pmm_staff"}))
CONTACT = Identity("amb-1", "gm0363", frozenset({"ambassador"}))


def test_the_signals_list_names_organisations_and_speaks_dutch() -> None:
    signal = a_signal()
    for who in (STAFF, CONTACT):
        page = render(
            "signals.html",
            who,
            result=PageResult(items=[signal], page=1, page_size=25, total=1),
            status="",
            org_names=ORGS,
        )
        assert raw_codes(page) == set(), who
        text = visible(page)
        assert "Sociale Verzekeringsbank (Belegd, nog geen antwoord)" in text
        assert "Wet- en regelgeving" in text
    # staff see the nearest term still waiting for an answer (the SVB's)
    staff_page = render(
        "signals.html",
        STAFF,
        result=PageResult(items=[signal], page=1, page_size=25, total=1),
        status="",
        org_names=ORGS,
    )
    assert "22 december 2026" in visible(staff_page)


def test_a_signal_names_organisations_and_speaks_dutch() -> None:
    organisations = [{"code": c, "name": n} for c, n in ORGS.items()]
    for signal in (a_signal(), a_signal(status="merged", merged_into="sig-9", merged_from=[])):
        page = render(
            "signal.html",
            CONTACT,
            signal=signal,
            mine=[a for a in signal["assignments"] if a["organisation"] == "gm0363"],
            organisations=organisations,
            org_names=ORGS,
        )
        assert raw_codes(page) == set()
        text = visible(page)
        assert "→ Sociale Verzekeringsbank" in text  # forwarded to, by name
        assert labels.LEARNING_ORDERS["3"] in text
    assert 'href="/signals/sig-9"' in page  # a merged signal leads to the one it went into


def test_every_table_of_the_report_names_organisations_and_speaks_dutch() -> None:
    raw = {
        "submitter_kind": {k.value: 1 for k in SubmitterKind},
        "life_domains": {d.value: 2 for d in LifeDomain},
        "bottleneck_types": {b.value: 1 for b in BottleneckType},
        "point_bottleneck_types": {b.value: 1 for b in BottleneckType},
        "point_bottleneck_subtypes": {s.value: 1 for s in BottleneckSubtype},
        "outcome": {"solved": 2, "partly_solved": 1, "not_solved": 1},
        "duration_days": {30: 1, 40: 1},
        "closed_month": {"2026-03": 2},
        "order": {"1": 1, "2": 1, "3": 1},
        "follow_up": [(org, status.value, 1) for org in ORGS for status in AssignmentStatus],
        "examples": [
            {
                "signal_id": "s-1",
                "organisation": org,
                "order": "3",
                "bottleneck_type": "laws_and_regulations",
                "regulation_reference": "Participatiewet art. 18",
                "measure": "werkinstructie aangepast",
            }
            for org in ORGS
        ],
    }
    report = build(2026, raw, generated_at=datetime(2026, 12, 2, 9, 30, tzinfo=UTC))
    page = render(
        "report.html",
        STAFF,
        year=2026,
        years=[2026, 2025],
        report=report,
        summary=layout.figures(layout.summary(report)),
        tables=layout.tables(report, ORGS),
    )
    assert raw_codes(page) == set()
    for name in ORGS.values():
        assert name in visible(page)


async def test_organisations_are_named_from_every_page_of_the_register() -> None:
    """More organisations than one page holds (the platform's own paging model answers)."""
    app = FastAPI()
    everyone = [{"code": f"gm{n:04d}", "name": f"Gemeente {n}"} for n in range(450)]

    @app.get("/organisations")
    async def listing(
        request: Request, paging: Annotated[PageQuery, Depends(page_query)]
    ) -> Page[dict[str, Any]]:
        found = everyone[paging.skip : paging.skip + paging.page_size]
        return Page.of(request, paging, len(everyone), found)

    client = ServiceClient("register", "http://t", transport=httpx.ASGITransport(app=app))
    try:
        found = await client.every("/organisations", None)
    finally:
        await client.aclose()
    assert [o["code"] for o in found] == [o["code"] for o in everyone]


def test_the_let_and_bridging_state_of_a_case_file_speak_dutch() -> None:
    """As the Loket keeps them (services/loket: Case.escalation_update, bridging_update)."""
    case = {
        "id": "case-1",
        "number": "LMM-2026-0001",
        "status": "in_progress",
        "urgency": "acute",
        "submitting_organisation": "gm0363",
        "submitter_kind": "municipality",
        "household": {"reference": "hh-1", "adults": 1, "children": 2},
        "life_domains": ["income"],
        "bottlenecks": [{"type": "cooperation"}],
        "organisations_involved": ["uwv01"],
        "legal_basis": "consent",
        "timeliness": {"intake": "on_time", "case": "on_time"},
        "notes": [{"at": "2026-11-03T09:00:00+00:00", "by": "pmm:regie-1", "text": "gebeld"}],
        "escalation": {
            "request_id": "r-1",
            "status": "concluded",
            "organisations": ["uwv01", "svb01"],
            "justification": "twee keer geconsulteerd",
            "escalation_id": "e-1",
            "outcome": "breakthrough",
            "summary": "UWV betaalt met terugwerkende kracht",
        },
        "bridging": [
            {
                "request_id": "r-2",
                "status": "recovering",
                "requested_on": "2026-11-02",
                "provision": "huurbetaling",
                "provider": "woningcorporatie",
                "candidate_payers": ["gm0363", "uwv01"],
                "estimated_amount_cents": 125050,
                "application_id": "a-1",
                "form": "advance",
                "approved_amount_cents": 125050,
                "decision_reason": None,
                "responsible_party": "uwv01",
                "recovery_requested_cents": 125050,
                "booked_cents": {"commitment": 125050, "payment": 125050, "recovery": 0},
            }
        ],
    }
    page = render(
        "case.html",
        STAFF,
        case=case,
        audit=[{"at": "2026-11-03T09:00:00+00:00", "actor": "pmm:regie-1", "action": "case.note"}],
        timeline=[{"at": "2026-11-03T09:00:00+00:00", "what": "Notitie", "who": "pmm:regie-1"}],
        actions=[],
        org_names=ORGS,
        director_names={},
        actor_names={"pmm:regie-1": "Rita Regie (PMM)"},
        organisations=[],
        slots=range(2),
    )
    assert raw_codes(page) == set()
    text = visible(page)
    assert "Doorbraak" in text
    assert "€ 1.250,50" in text  # (visible() reads the no-break space as a space)
    assert "Terugvordering loopt" in text
    assert 'href="/applications/a-1"' in page
    assert text.count("Rita Regie (PMM)") == 3  # the note, the timeline, the audit trail
    assert "pmm:regie-1" not in text


def test_an_escalation_names_its_people_from_the_register() -> None:
    escalation = {
        "id": "e-1",
        "case_number": "LMM-2026-0001",
        "status": "scheduled",
        "opened_at": "2026-11-02T10:00:00+00:00",
        "requested_by": "regie-1",
        "organisations_involved": ["uwv01", "gm0363"],
        "justification": "twee keer geconsulteerd",
        "question": "wie betaalt?",
        "session": {
            "session_date": "2026-12-20",
            "chair_id": "chair-1",
            "invited": [
                {"executive_id": "x-uwv", "organisation": "uwv01"},
                {"executive_id": "x-gm2", "organisation": "gm0363", "deputy_for": "x-gm1"},
            ],
            "present": None,
        },
        "agreements": [],
    }
    people = {
        "regie-1": "Rita Regie",
        "chair-1": "Carla Voorzitter",
        "x-uwv": "Bert Bestuurder",
        "x-gm2": "Wim Wethouder",
        "x-gm1": "Anna Burgemeester",
    }
    page = render(
        "escalation.html",
        STAFF,
        e=escalation,
        actions=["attendance"],
        proposal=None,
        session_date="2026-12-20",
        open_action=None,
        org_names=ORGS,
        person_names=people,
    )
    text = visible(page)
    for person_id, name in people.items():
        assert name in text
        assert not re.search(rf"(?<![\w-]){person_id}(?![\w-])", text), person_id
    assert raw_codes(page) == set()
