"""The Loket against the real broker and store: a case from submission to evaluation,
numbering under concurrency, access, and the LET's and bridging answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from pmm_contracts import encode_event, new_event
from pmm_contracts.events.escalations import EscalationAdmissibility
from pmm_contracts.events.register import OrganisationState, ProfessionalState
from pmm_contracts.topics import (
    LET_ESCALATIONS,
    LOKET_CASES,
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
)
from pmm_contracts.vocabulary import OrganisationKind, Role
from pmm_loket.app import create_app
from pmm_loket.settings import LoketSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, eventually, read_topic

pytestmark = pytest.mark.integration
SOURCE = "urn:nld:oin:00000001234567890000:systeem:register"


async def publish(bootstrap: str, topic: str, *events: Any) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topic, encode_event(event), key=event.key)
    finally:
        await producer.stop()


@pytest.fixture
async def loket(
    make_settings: Callable[..., LoketSettings], serve: Any, infra: Any, unique: str
) -> tuple[httpx.AsyncClient, str, str]:
    """A running Loket whose register read model knows a municipality, UWV and a
    regievoerder (fed through the register's topics, as in production)."""
    org, director = f"gm{unique[:6]}", f"pmm-regie-{unique}"
    orgs = [
        OrganisationState(code=code, name=code, kind=kind, is_member=True, version=1)
        for code, kind in (
            (org, OrganisationKind.MUNICIPALITY),
            ("uwv", OrganisationKind.EXECUTING_ORGANISATION),
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
            (f"uwv-amb-{unique}", "uwv", Role.AMBASSADOR),
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
    await eventually(lambda: register.with_role("ambassador", "uwv"), timeout_s=60)
    return client, org, director


def submission(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "submitter_kind": "municipality",
        "household": {"reference": "hh-7f3a9c21", "adults": 1, "children": 3},
        "life_domains": ["debts", "housing", "income"],
        "bottlenecks": [{"type": "laws_and_regulations", "subtype": "interpretation_unclear"}],
        "organisations_involved": ["uwv"],
        "tried_locally": "wijkteam, schuldhulp and the regional table tried for months",
        "question": "who can pay the rent arrears while the benefit is restored?",
        "urgency": "acute",
        "legal_basis": "consent",
    }
    body.update(extra)
    return body


async def test_a_case_from_submission_to_evaluation_end_to_end(
    loket: tuple[httpx.AsyncClient, str, str], issuer: LocalIssuer, infra: Any
) -> None:
    client, org, director = loket
    professional = bearer(issuer, org, "maatwerk_professional", subject=f"{org}-p1")
    regie = bearer(issuer, "pmm", "case_director", subject=director)

    submitted = await client.post("/cases", headers=professional, json=submission())
    assert submitted.status_code == 201, submitted.text
    case = submitted.json()
    case_id = case["id"]
    assert case["number"].startswith("LMM-")
    steps = [
        ("triage", {"accepted": True}),
        ("assign", {"case_director_id": director}),
        ("consultations", {"organisation": "uwv", "question": "can the benefit restart?"}),
    ]
    for step, body in steps:
        response = await client.post(f"/cases/{case_id}/{step}", headers=regie, json=body)
        assert response.status_code == 200, (step, response.text)
    consultation_id = response.json()["consultations"][0]["id"]
    answered = await client.post(
        f"/cases/{case_id}/consultations/{consultation_id}/answer",
        headers=regie,
        json={"answer": "yes, from next month"},
    )
    assert answered.status_code == 200
    closed = await client.post(
        f"/cases/{case_id}/close",
        headers=regie,
        json={"outcome": "solved", "reason": "benefit restored"},
    )
    assert closed.status_code == 200
    evaluated = await client.post(
        f"/cases/{case_id}/evaluation",
        headers=regie,
        json={
            "learning_points": [
                {
                    "order": "3",
                    "organisations": ["uwv"],
                    "bottleneck": {
                        "type": "laws_and_regulations",
                        "subtype": "interpretation_unclear",
                    },
                    "regulation_reference": "Participatiewet art. 18",
                    "description": "restart of a benefit after detention takes too long",
                }
            ]
        },
    )
    assert evaluated.status_code == 200, evaluated.text
    assert evaluated.json()["status"] == "evaluated"

    records = [
        r
        for r in await read_topic(infra.kafka_bootstrap, LOKET_CASES, count=10**6, timeout_s=4)
        if r.key == case_id.encode()
    ]
    types = [json.loads(r.value)["type"] for r in records]
    for expected in (
        "nl.maatwerk.case.submitted",
        "nl.maatwerk.case.triaged",
        "nl.maatwerk.case.assigned",
        "nl.maatwerk.case.consultation_requested",
        "nl.maatwerk.case.consultation_answered",
        "nl.maatwerk.case.closed",
        "nl.maatwerk.case.evaluated",
    ):
        assert expected in types, (expected, types)
    raw = b" ".join(r.value for r in records)
    assert b"hh-7f3a9c21" not in raw  # the household reference stays in the Loket
    assert b"rent arrears" not in raw  # and so do the case file's free texts

    trail = (await client.get(f"/cases/{case_id}/audit", headers=regie)).json()
    actions = [entry["action"] for entry in trail]
    assert "case.submitted" in actions
    assert "case.read" in actions or "case.evaluated" in actions


async def test_case_numbers_are_unique_under_concurrent_submissions(
    loket: tuple[httpx.AsyncClient, str, str], issuer: LocalIssuer
) -> None:
    client, org, _ = loket
    professional = bearer(issuer, org, "maatwerk_professional")
    responses = await asyncio.gather(
        *[client.post("/cases", headers=professional, json=submission()) for _ in range(50)]
    )
    assert all(r.status_code == 201 for r in responses)
    numbers = [r.json()["number"] for r in responses]
    assert len(set(numbers)) == 50
    sequence = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert sequence == list(range(1, 51))  # a fresh database: no gaps, nothing reused


async def test_access_bad_input_and_forbidden_transitions(
    loket: tuple[httpx.AsyncClient, str, str], issuer: LocalIssuer
) -> None:
    client, org, director = loket
    professional = bearer(issuer, org, "maatwerk_professional")
    other = bearer(issuer, "uwv", "maatwerk_professional")
    regie = bearer(issuer, "pmm", "case_director", subject=director)
    bad = await client.post(
        "/cases", headers=professional, json=submission(tried_locally="see 111222333 for details")
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "tried_locally"
    missing = await client.post(
        "/cases",
        headers=professional,
        json={k: v for k, v in submission().items() if k != "legal_basis"},
    )
    assert missing.json()["errors"][0]["field"] == "legal_basis"
    case_id = (await client.post("/cases", headers=professional, json=submission())).json()["id"]
    assert (await client.get(f"/cases/{case_id}", headers=other)).status_code == 404
    assert (await client.get(f"/cases/{case_id}", headers=professional)).status_code == 200
    forbidden = await client.post(
        f"/cases/{case_id}/close", headers=regie, json={"outcome": "solved"}
    )
    assert forbidden.status_code == 409
    assert forbidden.json()["allowed"] == ["accepted", "declined"]
    escalate = await client.post(
        f"/cases/{case_id}/escalate",
        headers=regie,
        json={"justification": "everything was tried already", "question": "who pays?"},
    )
    assert escalate.status_code == 409
    assert (
        await client.post(f"/cases/{case_id}/triage", headers=professional, json={"accepted": True})
    ).status_code == 403


async def test_the_lets_refusal_brings_an_escalated_case_back_once(
    loket: tuple[httpx.AsyncClient, str, str], issuer: LocalIssuer, infra: Any
) -> None:
    client, org, director = loket
    professional = bearer(issuer, org, "maatwerk_professional")
    regie = bearer(issuer, "pmm", "case_director", subject=director)
    case_id = (await client.post("/cases", headers=professional, json=submission())).json()["id"]
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
        assert (
            await client.post(f"/cases/{case_id}/{step}", headers=regie, json=body)
        ).status_code == 200
    refusal = new_event(
        EscalationAdmissibility(
            escalation_id="e1", case_id=case_id, admitted=False, reason="not all options tried"
        ),
        subject="e1",
        source="urn:nld:oin:00000001234567890000:systeem:let",
    )
    await publish(infra.kafka_bootstrap, LET_ESCALATIONS, refusal, refusal)  # redelivered

    async def back_in_progress() -> bool:
        case = (await client.get(f"/cases/{case_id}", headers=regie)).json()
        return case["status"] == "in_progress" and case["escalation"]["status"] == "refused"

    await eventually(back_in_progress, timeout_s=30)
    trail = (await client.get(f"/cases/{case_id}/audit", headers=regie)).json()
    assert [e["action"] for e in trail].count("let.refused") == 1
