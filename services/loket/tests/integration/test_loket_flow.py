"""The Loket against the real broker and store: a case from submission to evaluation,
numbering under concurrency, access, and the LET's and bridging answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pmm_contracts import new_event
from pmm_contracts.events.bridging import (
    ApplicationDecided,
    ApplicationReceived,
    BridgingForm,
    LedgerBooked,
    LedgerEntryKind,
)
from pmm_contracts.events.escalations import EscalationAdmissibility, EscalationOpened
from pmm_contracts.events.register import OrganisationState, ProfessionalState
from pmm_contracts.topics import (
    LET_ESCALATIONS,
    LOKET_CASES,
    OVERBRUGGING_APPLICATIONS,
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
)
from pmm_contracts.vocabulary import OrganisationKind, Role
from pmm_loket.app import create_app
from pmm_loket.service import usecases as uc
from pmm_loket.settings import LoketSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, eventually, read_topic
from pmm_runtime.testing import publish_events as publish

pytestmark = pytest.mark.integration
SOURCE = "urn:nld:oin:00000001234567890000:systeem:register"
LET_SOURCE = "urn:nld:oin:00000001234567890000:systeem:let"
BRIDGING_SOURCE = "urn:nld:oin:00000001234567890000:systeem:overbrugging"

# A fresh consumer group first reads the shared topics' history (the 1,000-approval and fault
# tests fill them); a loaded machine needs more than a few seconds for that.
CATCH_UP_S = 120.0


@dataclass
class Loket:
    client: httpx.AsyncClient
    org: str
    director: str
    uwv: str  # an executing organisation with an ambassador, unique to the test
    app: FastAPI


@pytest.fixture
async def loket(
    make_settings: Callable[..., LoketSettings], serve: Any, infra: Any, unique: str
) -> Loket:
    """A running Loket whose register read model knows a municipality, UWV and a
    regievoerder (fed through the register's topics, as in production)."""
    org, director, uwv = f"gm{unique[:6]}", f"pmm-regie-{unique}", f"uwv{unique[:6]}"
    orgs = [
        OrganisationState(code=code, name=code, kind=kind, is_member=True, version=1)
        for code, kind in (
            (org, OrganisationKind.MUNICIPALITY),
            (uwv, OrganisationKind.EXECUTING_ORGANISATION),
        )
    ]
    await publish(
        infra.kafka_bootstrap,
        REGISTER_ORGANISATIONS,
        *[new_event(o, subject=o.code, source=SOURCE) for o in orgs],
    )
    people = [
        ProfessionalState(
            id=pid,
            organisation=organisation,
            name=pid,
            email=f"{pid}@example.nl",
            roles=(role,),
            last_verified_on=date(2026, 1, 1),
            version=1,
        )
        for pid, organisation, role in (
            (director, "pmm", Role.CASE_DIRECTOR),
            (f"uwv-amb-{unique}", uwv, Role.AMBASSADOR),
        )
    ]
    await publish(
        infra.kafka_bootstrap,
        REGISTER_PROFESSIONALS,
        *[new_event(p, subject=p.id, source=SOURCE) for p in people],
    )
    app = create_app(make_settings(LoketSettings))
    client = await serve(app)
    register = app.state.deps.register
    await eventually(lambda: register.is_member(org), timeout_s=60)
    await eventually(lambda: register.professional(director), timeout_s=60)
    await eventually(lambda: register.organisation(uwv), timeout_s=60)
    await eventually(lambda: register.with_role("ambassador", uwv), timeout_s=60)
    return Loket(client, org, director, uwv, app)


def point(organisation: str) -> dict[str, Any]:
    return {
        "order": "3",
        "organisations": [organisation],
        "bottleneck": {"type": "laws_and_regulations", "subtype": "interpretation_unclear"},
        "regulation_reference": "Participatiewet art. 18",
        "description": "restart of a benefit after detention takes too long",
    }


def submission(involved: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submitter_kind": "municipality",
        "household": {"reference": "hh-7f3a9c21", "adults": 1, "children": 3},
        "life_domains": ["debts", "housing", "income"],
        "bottlenecks": [{"type": "laws_and_regulations", "subtype": "interpretation_unclear"}],
        "organisations_involved": [involved],
        "tried_locally": "wijkteam, schuldhulp and the regional table tried for months",
        "question": "who can pay the rent arrears while the benefit is restored?",
        "urgency": "acute",
        "legal_basis": "consent",
    }
    body.update(extra)
    return body


async def test_a_case_from_submission_to_evaluation_end_to_end(
    loket: Loket, issuer: LocalIssuer, infra: Any, unique: str
) -> None:
    client, org, director = loket.client, loket.org, loket.director
    professional = bearer(issuer, org, "maatwerk_professional", subject=f"{org}-p1")
    regie = bearer(issuer, "pmm", "case_director", subject=director)

    submitted = await client.post("/cases", headers=professional, json=submission(loket.uwv))
    assert submitted.status_code == 201, submitted.text
    case = submitted.json()
    case_id = case["id"]
    assert case["number"].startswith("LMM-")
    steps = [
        ("triage", {"accepted": True}),
        ("assign", {"case_director_id": director}),
        ("consultations", {"organisation": loket.uwv, "question": "can the benefit restart?"}),
    ]
    for step, body in steps:
        response = await client.post(f"/cases/{case_id}/{step}", headers=regie, json=body)
        assert response.status_code == 200, (step, response.text)
    (consultation,) = response.json()["consultations"]
    assert consultation["professional_id"] == f"uwv-amb-{unique}"  # the register's ambassador
    # the consulted ambassador sees the question (not the case file) and answers it
    ambassador = bearer(issuer, loket.uwv, "ambassador", subject=f"uwv-amb-{unique}")
    (asked,) = (await client.get("/consultations", headers=ambassador)).json()
    assert asked["question"] == "can the benefit restart?"
    # enough to call the regievoerder back: the case number, the due date, who asked
    assert asked["case_number"].startswith("LMM-")
    assert asked["due"]
    assert asked["asked_by"]
    assert "household" not in asked
    assert (await client.get(f"/cases/{case_id}", headers=ambassador)).status_code == 404
    answered = await client.post(
        f"/cases/{asked['case_id']}/consultations/{asked['consultation_id']}/answer",
        headers=ambassador,
        json={"answer": "yes, from next month"},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["answered_on"] is not None
    assert "household" not in answered.json()
    mine = await client.get(f"/case-directors/{director}/cases", headers=regie)
    assert [c["id"] for c in mine.json()["items"]] == [case_id]
    closed = await client.post(
        f"/cases/{case_id}/close",
        headers=regie,
        json={"outcome": "solved", "reason": "benefit restored"},
    )
    assert closed.status_code == 200
    assert closed.json()["duration_days"] in (0, 1)  # submitted and closed just now
    assert closed.json()["timeliness"]["case"] == "on_time"
    evaluated = await client.post(
        f"/cases/{case_id}/evaluation", headers=regie, json={"learning_points": [point(loket.uwv)]}
    )
    assert evaluated.status_code == 200, evaluated.text
    assert evaluated.json()["status"] == "evaluated"
    left = await client.get(f"/v1/case-directors/{director}/cases", headers=regie)
    assert left.json()["items"] == []

    async def all_published() -> list[Any]:
        records = await read_topic(infra.kafka_bootstrap, LOKET_CASES, count=10**6, timeout_s=2)
        mine = [r for r in records if r.key == case_id.encode()]
        return mine if len(mine) >= 9 else []

    records = await eventually(all_published, timeout_s=30)
    events = [json.loads(r.value) for r in records]
    assert [e["type"].rsplit(".", 1)[-1] for e in events] == [
        "submitted",
        "triaged",
        "assigned",
        "consultation_requested",
        "consultation_answered",
        "status_changed",
        "closed",
        "status_changed",
        "evaluated",
    ]
    assert all(e["subject"] == case_id for e in events)
    assert all(e["source"].endswith(":systeem:loket") for e in events)
    (learning_point,) = events[-1]["data"]["learning_points"]
    assert learning_point["order"] == "3"
    assert learning_point["bottleneck"]["subtype"] == "interpretation_unclear"
    assert events[-1]["data"]["outcome"] == "solved"
    raw = b" ".join(r.value for r in records)
    assert b"hh-7f3a9c21" not in raw  # the household reference stays in the Loket
    assert b"rent arrears" not in raw  # and so do the case file's free texts
    assert b"wijkteam" not in raw

    trail = (await client.get(f"/cases/{case_id}/audit", headers=regie)).json()
    assert [entry["action"] for entry in trail] == [
        "case.submitted",
        "case.triaged",
        "case.assigned",
        "consultation.requested",
        "consultation.answered",
        "case.closed",
        "case.evaluated",
        "case.read",  # reading the trail
    ]
    assert trail[2]["new"] == {"case_director_id": director, "status": "in_progress"}


async def test_numbering_under_concurrency_access_bad_input_and_forbidden_transitions(
    loket: Loket, issuer: LocalIssuer
) -> None:
    client, org, director = loket.client, loket.org, loket.director
    professional = bearer(issuer, org, "maatwerk_professional")
    other = bearer(issuer, "uwv", "maatwerk_professional")
    regie = bearer(issuer, "pmm", "case_director", subject=director)
    # 50 submissions at once: 50 distinct numbers, none skipped or reused
    responses = await asyncio.gather(
        *[
            client.post("/cases", headers=professional, json=submission(loket.uwv))
            for _ in range(50)
        ]
    )
    assert [r.text for r in responses if r.status_code != 201] == []
    numbers = [r.json()["number"] for r in responses]
    assert len(set(numbers)) == 50
    sequence = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert sequence == list(range(1, 51))  # a fresh database: no gaps, nothing reused

    # a retry with the submission's idempotency key answers the case it created, once
    keyed = {**professional, "Idempotency-Key": "9f1c2e7a-retry"}
    sent = [await client.post("/cases", headers=keyed, json=submission(loket.uwv)) for _ in "12"]
    assert [r.status_code for r in sent] == [201, 201]
    assert sent[0].json()["id"] == sent[1].json()["id"]
    assert [r.headers.get("Idempotent-Replayed") for r in sent] == [None, "true"]
    reused = await client.post(
        "/cases", headers=keyed, json=submission(loket.uwv, question="another question")
    )
    assert reused.status_code == 422
    assert reused.json()["errors"][0]["field"] == "Idempotency-Key"
    spaced = await client.post(
        "/cases", headers={**professional, "Idempotency-Key": "a b"}, json=submission(loket.uwv)
    )
    assert spaced.status_code == 422, spaced.text
    assert spaced.json()["errors"][0]["field"] == "Idempotency-Key", spaced.text

    bad = await client.post(
        "/cases",
        headers=professional,
        json=submission(loket.uwv, tried_locally="see 111222333 for details"),
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "tried_locally"
    missing = await client.post(
        "/cases",
        headers=professional,
        json={k: v for k, v in submission(loket.uwv).items() if k != "legal_basis"},
    )
    assert missing.json()["errors"][0]["field"] == "legal_basis"
    case_id = (
        await client.post("/cases", headers=professional, json=submission(loket.uwv))
    ).json()["id"]
    assert (await client.get(f"/cases/{case_id}", headers=other)).status_code == 404
    assert (await client.get(f"/cases/{case_id}", headers=professional)).status_code == 200
    forbidden = await client.post(
        f"/cases/{case_id}/close", headers=regie, json={"outcome": "solved"}
    )
    assert forbidden.status_code == 409
    assert forbidden.json()["allowed"] == ["accepted", "declined"]
    assert forbidden.json()["current_status"] == "submitted"
    # a forbidden move answers 409 naming the allowed next states, whatever the route
    for route, body, allowed in (
        (
            "escalate",
            {"justification": "everything tried already", "question": "who pays?"},
            ["accepted", "declined"],
        ),
        ("evaluation", {"learning_points": [point(loket.uwv)]}, ["accepted", "declined"]),
        ("reopen", {"reason": "new facts"}, ["accepted", "declined"]),
        ("suspend", {"reason": "court", "expected_resume": "2099-01-01"}, ["accepted", "declined"]),
    ):
        answer = await client.post(f"/cases/{case_id}/{route}", headers=regie, json=body)
        assert answer.status_code == 409, (route, answer.text)
        assert answer.json()["allowed"] == allowed
    assert (
        await client.post(f"/cases/{case_id}/triage", headers=professional, json={"accepted": True})
    ).status_code == 403
    declined = await client.post(
        f"/cases/{case_id}/triage",
        headers=regie,
        json={"accepted": False, "decline_reason": "not_tried_locally"},
    )
    assert declined.json()["status"] == "declined"
    final = await client.post(f"/cases/{case_id}/triage", headers=regie, json={"accepted": True})
    assert final.status_code == 409
    assert final.json()["allowed"] == []
    unknown_reason = await client.post(
        f"/cases/{case_id}/triage",
        headers=regie,
        json={"accepted": False, "decline_reason": "bored"},
    )
    assert unknown_reason.status_code == 422
    assert unknown_reason.json()["errors"][0]["field"] == "decline_reason"
    asyncapi = (await client.get("/asyncapi.json")).text
    for topic in ("pmm.loket.cases", "pmm.let.escalations", "pmm.overbrugging.applications"):
        assert topic in asyncapi
    nobody = bearer(issuer, org, "ambassador")
    assert (await client.get(f"/cases/{case_id}", headers=nobody)).status_code == 404
    assert (await client.get("/cases", headers=nobody)).status_code == 403


async def test_the_lets_and_the_bridging_procedures_events_update_the_case(
    loket: Loket, issuer: LocalIssuer, infra: Any
) -> None:
    """LET and overbrugging are simulated by a plain producer of their contract events."""
    client, org, director = loket.client, loket.org, loket.director
    professional = bearer(issuer, org, "maatwerk_professional")
    regie = bearer(issuer, "pmm", "case_director", subject=director)
    created = (await client.post("/cases", headers=professional, json=submission(loket.uwv))).json()
    case_id, number = created["id"], created["number"]
    for step, body in (
        ("triage", {"accepted": True}),
        ("assign", {"case_director_id": director}),
        (
            "escalate",
            {
                "justification": "all organisations were consulted",
                "question": "break the deadlock on payment",
            },
        ),
    ):
        answer = await client.post(f"/cases/{case_id}/{step}", headers=regie, json=body)
        assert answer.status_code == 200, answer.text
    request_id = answer.json()["escalation"]["request_id"]
    escalation_id = f"esc-{case_id}"
    opened = new_event(
        EscalationOpened(
            escalation_id=escalation_id,
            case_id=case_id,
            case_number=number,
            request_id=request_id,
            organisations_involved=(loket.uwv,),
        ),
        subject=escalation_id,
        source=LET_SOURCE,
    )
    refusal = new_event(
        EscalationAdmissibility(
            escalation_id=escalation_id,
            case_id=case_id,
            admitted=False,
            reason="not all options tried",
        ),
        subject=escalation_id,
        source=LET_SOURCE,
    )
    await publish(infra.kafka_bootstrap, LET_ESCALATIONS, opened, refusal, refusal)  # redelivered

    async def back_in_progress() -> bool:
        case = (await client.get(f"/cases/{case_id}", headers=regie)).json()
        return case["status"] == "in_progress" and case["escalation"]["status"] == "refused"

    await eventually(back_in_progress, timeout_s=CATCH_UP_S)
    trail = (await client.get(f"/cases/{case_id}/audit", headers=regie)).json()
    actions = [e["action"] for e in trail]
    assert actions.count("let.refused") == 1
    assert actions.count("let.opened") == 1

    bridging = await client.post(
        f"/cases/{case_id}/bridging",
        headers=regie,
        json={
            "provision": "supported housing",
            "provider": "Zorg BV",
            "estimated_amount": "2500.00",
            "candidate_payers": [org, loket.uwv],
            "dispute": "Wmo or Participatiewet: each points at the other",
            "settle_attempt": "two meetings with both payers",
        },
    )
    assert bridging.status_code == 200, bridging.text
    (item,) = bridging.json()["bridging"]
    assert item["estimated_amount_cents"] == 250_000
    application_id = f"app-{case_id}"
    answers = [
        ApplicationReceived(
            application_id=application_id,
            case_id=case_id,
            case_number=number,
            request_id=item["request_id"],
            estimated_amount=Decimal("2500.00"),
        ),
        ApplicationDecided(
            application_id=application_id,
            case_id=case_id,
            approved=True,
            form=BridgingForm.ADVANCE,
            amount=Decimal("2400.00"),
        ),
        LedgerBooked(
            application_id=application_id,
            case_id=case_id,
            entry_id="l1",
            kind=LedgerEntryKind.PAYMENT,
            amount=Decimal("2400.00"),
            budget_year=2026,
        ),
    ]
    await publish(
        infra.kafka_bootstrap,
        OVERBRUGGING_APPLICATIONS,
        *[new_event(a, subject=application_id, source=BRIDGING_SOURCE) for a in answers],
    )

    async def paid() -> dict[str, Any] | None:
        (found,) = (await client.get(f"/cases/{case_id}", headers=regie)).json()["bridging"]
        return found if found.get("booked_cents") == {"payment": 240_000} else None

    item = await eventually(paid, timeout_s=CATCH_UP_S)
    assert item["status"] == "paid"
    assert item["application_id"] == application_id

    # deadlines: a scan five weeks on warns once that the consultation-free case is late
    deps = loket.app.state.deps
    later = replace(deps, now=lambda: datetime.now(UTC) + timedelta(weeks=9))
    assert await uc.scan_deadlines(later) >= 1
    assert await uc.scan_deadlines(later) == 0

    async def warned() -> list[Any]:
        records = await read_topic(infra.kafka_bootstrap, LOKET_CASES, count=10**6, timeout_s=2)
        return [
            json.loads(r.value)
            for r in records
            if r.key == case_id.encode() and b"deadline_warning" in r.value
        ]

    (warning,) = await eventually(warned, timeout_s=CATCH_UP_S)
    assert warning["data"]["deadline"] == "case"
    assert warning["data"]["overdue"] is True
