"""End to end: one stuck case walks through the whole platform.

All five services run in this one test, each in-process with its own settings and database,
against the real broker and store; nothing inside the platform is simulated:

1. the register knows the organisations and people involved (created over its HTTP API);
   every other service learns them from the register's compacted changelogs;
2. a maatwerk professional submits the case at the Loket; a regievoerder accepts and takes it;
3. the Loket escalates: the LET opens an escalation from the Loket's event, the chair drives
   it to a breakthrough over HTTP, and the Loket's case shows the LET's outcome;
4. the Loket asks the overbruggingsprocedure: it creates the application from the Loket's
   event, the budget holder approves and pays over HTTP, the Loket's case shows the decision;
5. the Loket closes and evaluates the case with learning points for two organisations:
   signalen creates the signals, each organisation's consumer kit receives only its own, one
   answers through the kit and signalen shows that answer;
6. privacy: the citizen data typed into the Loket appears in no event on any topic used.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from pmm_contracts.cli import provision
from pmm_contracts.consumer import SignalConsumer
from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.signals import SignalAssigned
from pmm_contracts.topics import (
    LET_ESCALATIONS,
    LOKET_CASES,
    OVERBRUGGING_APPLICATIONS,
    SIGNALEN_SIGNALS,
    dead_letter_topic,
    org_topics,
    signals_assigned_topic,
    signals_responses_topic,
)
from pmm_let.app import create_app as create_let
from pmm_let.domain.model import escalation_id_for
from pmm_let.settings import LetSettings
from pmm_loket.app import create_app as create_loket
from pmm_loket.settings import LoketSettings
from pmm_overbrugging.app import create_app as create_overbrugging
from pmm_overbrugging.service.usecases import NAMESPACE as APPLICATION_NAMESPACE
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_register.app import create_app as create_register
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import admin_connection, bearer, eventually
from pmm_signalen.app import create_app as create_signalen
from pmm_signalen.settings import SignalenSettings

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

WAIT_S = 180.0  # every cross-service wait: new consumer groups first catch up on shared topics

# What the professional types into the Loket about the household. The case file keeps it;
# no event may carry it (DESIGN.md §4).
CITIZEN_NAME = "Petronella Jansen-de Bruijn"
VALID_BSN = "111222333"  # passes the eleven-test


class Organisation:
    """An organisation's own handler for its consumer kit: records what it got, answers."""

    def __init__(self, code: str, answer: dict[str, Any] | None) -> None:
        self.code = code
        self.answer = answer
        self.got: list[CloudEvent[Any]] = []

    async def __call__(self, event: CloudEvent[Any]) -> dict[str, Any] | None:
        self.got.append(event)
        return self.answer if isinstance(event.data, SignalAssigned) else None

    def assigned(self) -> list[SignalAssigned]:
        return [e.data for e in self.got if isinstance(e.data, SignalAssigned)]


async def read_to_end(bootstrap: str, topics: list[str]) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record now on ``topics``: a plain consumer, no group, up to the end offsets."""
    consumer = AIOKafkaConsumer(
        *topics,
        **admin_connection(bootstrap).kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        assert {tp.topic for tp in partitions} == set(topics), "a topic has no partitions"
        end: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S

        async def caught_up() -> bool:
            assigned = consumer.assignment()
            for tp, offset in end.items():
                if offset and (tp not in assigned or await consumer.position(tp) < offset):
                    return False
            return True

        while not await caught_up():
            assert loop.time() < deadline, "could not read the topics to their end"
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


def of(records: list[ConsumerRecord[bytes, bytes]], topic: str, key: str) -> list[dict[str, Any]]:
    return [
        json.loads(r.value)
        for r in records
        if r.topic == topic and r.key == key.encode() and r.value is not None
    ]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].rsplit(".", 1)[-1] for e in events]


async def test_one_stuck_case_through_the_whole_platform(
    make_settings: Callable[..., Any],
    serve: Callable[..., Any],
    infra: Any,
    issuer: LocalIssuer,
    unique: str,
) -> None:
    bootstrap = infra.kafka_bootstrap
    municipality, uwv = f"gm{unique[:8]}", f"uwv{unique[:8]}"
    director, chair = f"regie-{unique}", f"chair-{unique}"
    exec_gm, exec_uwv = f"x-{municipality}", f"x-{uwv}"
    household = f"hh-{unique}"

    # 1. The register: PMM itself, the submitting municipality and UWV, with the people the
    # other services look up (a regievoerder, a LET chair, an executive of each organisation).
    register = await serve(create_register(make_settings(RegisterSettings)))
    admin = bearer(issuer, "pmm", "register_admin")
    for code, kind in (
        ("pmm", "ministry"),
        (municipality, "municipality"),
        (uwv, "executing_organisation"),
    ):
        r = await register.post(
            "/organisations",
            headers=admin,
            json={"code": code, "name": code.upper(), "kind": kind, "joined_on": "2024-01-01"},
        )
        assert r.status_code == 201, r.text
    for pid, org, role in (
        (director, "pmm", "case_director"),
        (chair, "pmm", "let_chair"),
        (exec_gm, municipality, "executive"),
        (exec_uwv, uwv, "executive"),
        (f"mp-{municipality}", municipality, "maatwerk_professional"),
    ):
        r = await register.post(
            "/professionals",
            headers=admin,
            json={
                "id": pid,
                "organisation": org,
                "name": f"Professional {pid}",
                "roles": [role],
                "email": f"{pid}@example.nl",
            },
        )
        assert r.status_code == 201, r.text

    # Each organisation's own two signal topics exist before its consumer kit follows them
    # (in production: provisioned with its ACLs when it joins).
    for org in (municipality, uwv):
        await provision(bootstrap, list(org_topics(org)))

    # The four other services, each with its own database and consumer groups.
    loket_app = create_loket(make_settings(LoketSettings))
    let_app = create_let(make_settings(LetSettings))
    bridging_app = create_overbrugging(make_settings(OverbruggingSettings))
    signalen_app = create_signalen(
        make_settings(
            SignalenSettings,
            reminder_scan_interval_s=3600,
            figures_interval_s=0.5,
            # the Loket's real case topic; only this test's organisations' answers
            responses_pattern=rf"^pmm\.signalen\.responses\.(?:gm|uwv){unique[:8]}$",
        )
    )
    loket: httpx.AsyncClient = await serve(loket_app)
    let: httpx.AsyncClient = await serve(let_app)
    bridging: httpx.AsyncClient = await serve(bridging_app)
    signalen: httpx.AsyncClient = await serve(signalen_app)

    # Each service's read model of the register has what it needs.
    loket_register = loket_app.state.deps.register
    await eventually(lambda: loket_register.is_member(municipality), timeout_s=WAIT_S)
    await eventually(lambda: loket_register.is_member(uwv), timeout_s=WAIT_S)
    await eventually(lambda: loket_register.professional(director), timeout_s=WAIT_S)
    let_register = let_app.state.deps.register
    for pid in (chair, exec_gm, exec_uwv):
        await eventually(partial(let_register.professional, pid), timeout_s=WAIT_S)
    signalen_register = signalen_app.state.deps.register
    for org in (municipality, uwv):
        await eventually(partial(signalen_register.organisation, org), timeout_s=WAIT_S)

    professional = bearer(
        issuer, municipality, "maatwerk_professional", subject=f"mp-{municipality}"
    )
    regie = bearer(issuer, "pmm", "case_director", subject=director)
    let_chair = bearer(issuer, "pmm", "let_chair", subject=chair)
    holder = bearer(issuer, "pmm", "budget_holder", subject=f"bh-{unique}")
    staff = bearer(issuer, "pmm", "pmm_staff", subject=f"staff-{unique}")

    async def case() -> dict[str, Any]:
        r = await loket.get(f"/cases/{case_id}", headers=regie)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    # 2. The Loket: a professional submits the case; a BSN in free text is refused.
    submission: dict[str, Any] = {
        "submitter_kind": "municipality",
        "household": {"reference": household, "adults": 2, "children": 3},
        "life_domains": ["debts", "housing", "income"],
        "bottlenecks": [{"type": "laws_and_regulations", "subtype": "interpretation_unclear"}],
        "organisations_involved": [municipality, uwv],
        "tried_locally": f"wijkteam and schuldhulp helped {CITIZEN_NAME} for months",
        "question": f"who pays the rent arrears of {CITIZEN_NAME} while the benefit restarts?",
        "urgency": "acute",
        "legal_basis": "consent",
    }
    refused = await loket.post(
        "/cases",
        headers=professional,
        json={**submission, "question": f"benefit of BSN {VALID_BSN} stopped; who pays?"},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "question"
    submitted = await loket.post("/cases", headers=professional, json=submission)
    assert submitted.status_code == 201, submitted.text
    case_id, number = submitted.json()["id"], submitted.json()["number"]
    assert submitted.json()["status"] == "submitted"
    assert number.startswith(f"LMM-{datetime.now(UTC).year}-")

    r = await loket.post(f"/cases/{case_id}/triage", headers=regie, json={"accepted": True})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    r = await loket.post(
        f"/cases/{case_id}/assign", headers=regie, json={"case_director_id": director}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "in_progress"
    assert r.json()["case_director_id"] == director
    r = await loket.post(
        f"/cases/{case_id}/notes",
        headers=regie,
        json={"text": f"spoke with {CITIZEN_NAME}; eviction date set"},
    )
    assert r.status_code == 200, r.text

    # 3. Escalation: Loket → LET → (chair over HTTP) → Loket.
    r = await loket.post(
        f"/cases/{case_id}/escalate",
        headers=regie,
        json={
            "justification": "both organisations were consulted twice; each waits for the other",
            "question": "will the executives agree who restarts the benefit and pays arrears?",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "escalated"
    escalation_id = escalation_id_for(r.json()["escalation"]["request_id"])
    base = f"/escalations/{escalation_id}"

    async def opened_at_the_let() -> dict[str, Any] | None:
        found = await let.get(base, headers=let_chair)
        return found.json() if found.status_code == 200 else None

    escalation = await eventually(opened_at_the_let, timeout_s=WAIT_S)
    assert escalation["status"] == "requested"
    assert escalation["case_id"] == case_id
    assert escalation["case_number"] == number
    assert escalation["organisations_involved"] == [municipality, uwv]

    async def loket_sees_escalation(status: str) -> dict[str, Any] | None:
        current = await case()
        esc = current["escalation"]
        return current if esc.get("status") == status else None

    current = await eventually(lambda: loket_sees_escalation("opened"), timeout_s=WAIT_S)
    assert current["escalation"]["escalation_id"] == escalation_id
    assert current["status"] == "escalated"

    r = await let.post(f"{base}/admissibility", headers=let_chair, json={"admitted": True})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "admitted"
    await eventually(lambda: loket_sees_escalation("admitted"), timeout_s=WAIT_S)

    today = datetime.now(UTC).date()  # the services' clock (UTC), also near midnight
    r = await let.get(
        f"{base}/session/proposal", headers=let_chair, params={"session_date": str(today)}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "invited": [
            {"executive_id": exec_gm, "organisation": municipality, "deputy_for": None},
            {"executive_id": exec_uwv, "organisation": uwv, "deputy_for": None},
        ],
        "uncovered_organisations": [],
    }
    r = await let.post(f"{base}/session", headers=let_chair, json={"session_date": str(today)})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "scheduled"
    r = await let.post(
        f"{base}/session/attendance", headers=let_chair, json={"present": [exec_gm, exec_uwv]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "held"
    r = await let.post(
        f"{base}/agreements",
        headers=let_chair,
        json={
            "organisation": uwv,
            "action": "restart the benefit from next month",
            "deadline": str(today + timedelta(days=14)),
        },
    )
    assert r.status_code == 201, r.text
    summary = "UWV restarts the benefit; the municipality bridges the arrears"
    r = await let.post(
        f"{base}/outcome", headers=let_chair, json={"outcome": "breakthrough", "summary": summary}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "concluded"

    current = await eventually(lambda: loket_sees_escalation("concluded"), timeout_s=WAIT_S)
    assert current["status"] == "in_progress"  # the LET's outcome brings the case back
    assert current["escalation"]["outcome"] == "breakthrough"
    assert current["escalation"]["summary"] == summary

    # 4. Bridging: Loket → overbrugging → (budget holder over HTTP) → Loket.
    r = await loket.post(
        f"/cases/{case_id}/bridging",
        headers=regie,
        json={
            "provision": "rent arrears and supported housing",
            "provider": "Woonstichting Noord",
            "estimated_amount": "2500.00",
            "candidate_payers": [municipality, uwv],
            "dispute": "Participatiewet or Wmo 2015: each points at the other",
            "settle_attempt": "two meetings with both payers",
        },
    )
    assert r.status_code == 200, r.text
    (requested,) = r.json()["bridging"]
    assert requested["status"] == "requested"
    assert requested["estimated_amount_cents"] == 250_000
    application_id = str(uuid.uuid5(APPLICATION_NAMESPACE, requested["request_id"]))
    application_path = f"/applications/{application_id}"

    async def received_at_overbrugging() -> dict[str, Any] | None:
        found = await bridging.get(application_path, headers=holder)
        return found.json() if found.status_code == 200 else None

    application = await eventually(received_at_overbrugging, timeout_s=WAIT_S)
    assert application["status"] == "received"
    assert application["case_id"] == case_id
    assert application["case_number"] == number
    assert application["estimated_amount"] == "2500.00"
    assert application["candidate_payers"] == [municipality, uwv]
    # the Loket's request already shows that financing is disputed and settling was tried
    assert application["missing_conditions"] == [
        "need_established",
        "provision_available",
        "urgency",
    ]

    async def loket_sees_bridging(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            (item,) = (await case())["bridging"]
            return item if check(item) else None

        result: dict[str, Any] = await eventually(found, timeout_s=WAIT_S)
        return result

    item = await loket_sees_bridging(lambda b: b["status"] == "received")
    assert item["application_id"] == application_id

    year = today.year
    r = await bridging.put(f"/budgets/{year}", headers=holder, json={"total": "50000.00"})
    assert r.status_code == 200, r.text
    r = await bridging.post(
        f"{application_path}/conditions",
        headers=holder,
        json={
            "need_established": {"met": True, "note": "wijkteam assessment"},
            "provision_available": {"met": True},
            "urgency": {"met": True, "note": "housing at risk this month"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["missing_conditions"] == []
    r = await bridging.post(
        f"{application_path}/decision",
        headers=holder,
        json={
            "command_id": f"approve-{unique}",
            "approve": True,
            "form": "advance",
            "amount": "2400.00",
            "budget_year": year,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    r = await bridging.post(
        f"{application_path}/payment",
        headers=holder,
        json={"command_id": f"pay-{unique}", "amount": "2400.00"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"

    item = await loket_sees_bridging(
        # the Loket's bridging status follows the ledger: approved, then paid (never back)
        lambda b: b["status"] == "paid" and "payment" in b.get("booked_cents", {})
    )
    assert item["form"] == "advance"
    assert item["approved_amount_cents"] == 240_000
    assert item["booked_cents"] == {"commitment": 240_000, "payment": 240_000}
    assert (await case())["status"] == "in_progress"

    # 5. Closing and evaluation: Loket → signalen → each organisation's consumer kit → back.
    gm_org = Organisation(municipality, None)  # reads, answers later in its own system
    uwv_org = Organisation(
        uwv, {"status": "measure_taken", "explanation": "werkinstructie herstart aangepast"}
    )
    connection = admin_connection(bootstrap)
    kits = [
        SignalConsumer(
            org=o.code, handler=o, connection=connection, group_id=f"{o.code}.pmm-signals"
        )
        for o in (gm_org, uwv_org)
    ]
    ready = [asyncio.Event() for _ in kits]
    tasks = [asyncio.create_task(k.run(ready=e)) for k, e in zip(kits, ready, strict=True)]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), timeout=WAIT_S)
        r = await loket.post(
            f"/cases/{case_id}/close",
            headers=regie,
            json={"outcome": "solved", "reason": "benefit restarted, arrears bridged"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "closed"
        assert r.json()["outcome"] == "solved"
        points = [
            {
                "order": "3",
                "organisations": [uwv],
                "bottleneck": {"type": "laws_and_regulations", "subtype": "interpretation_unclear"},
                "regulation_reference": "Participatiewet art. 18",
                "life_domains": ["income"],
                "description": "a benefit stopped after a move restarts only after weeks",
            },
            {
                "order": "2",
                "organisations": [municipality],
                "bottleneck": {"type": "cooperation"},
                "life_domains": ["housing", "debts"],
                "description": "ask the bridging procedure as soon as payers dispute costs",
            },
        ]
        r = await loket.post(
            f"/cases/{case_id}/evaluation", headers=regie, json={"learning_points": points}
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "evaluated"
        assert len(r.json()["learning_points"]) == 2

        def delivered() -> bool:
            return len(gm_org.assigned()) >= 1 and len(uwv_org.assigned()) >= 1

        await eventually(delivered, timeout_s=WAIT_S)
        (for_uwv,) = uwv_org.assigned()
        (for_gm,) = gm_org.assigned()
        assert for_uwv.organisation == uwv
        assert for_uwv.description == points[0]["description"]
        assert for_uwv.order == "3"
        assert for_gm.organisation == municipality
        assert for_gm.description == points[1]["description"]
        assert for_uwv.signal_id != for_gm.signal_id

        async def signal(signal_id: str, check: Callable[[dict[str, Any]], bool]) -> Any:
            async def found() -> dict[str, Any] | None:
                s = await signalen.get(f"/signals/{signal_id}", headers=staff)
                return s.json() if s.status_code == 200 and check(s.json()) else None

            return await eventually(found, timeout_s=WAIT_S)

        answered = await signal(
            for_uwv.signal_id, lambda s: s["assignments"][0]["status"] != "assigned"
        )
        (assignment,) = answered["assignments"]
        assert assignment["organisation"] == uwv
        assert assignment["status"] == "measure_taken"
        (answer,) = assignment["answers"]
        assert answer["status"] == "measure_taken"
        assert answer["via"] == "kafka"
        assert answer["explanation"] == "werkinstructie herstart aangepast"
        assert answered["status"] == "closed"
        waiting = await signal(for_gm.signal_id, lambda s: True)
        assert [(a["organisation"], a["status"]) for a in waiting["assignments"]] == [
            (municipality, "assigned")
        ]
        assert waiting["status"] == "open"
        # each organisation sees only its own signal
        mine = await signalen.get(
            "/signals", headers=bearer(issuer, uwv, "ambassador", subject=f"amb-{uwv}")
        )
        assert mine.status_code == 200, mine.text
        assert [s["id"] for s in mine.json()["items"]] == [for_uwv.signal_id]
    finally:
        for kit in kits:
            kit.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=WAIT_S)
    assert kits[1].answered == 1
    assert kits[0].answered == 0
    assert [e.data.signal_id for e in uwv_org.got] == [for_uwv.signal_id]
    assert [e.data.signal_id for e in gm_org.got] == [for_gm.signal_id]

    # 6. What went over the broker: this case's events in order, nothing dead-lettered, and
    # no citizen data anywhere (DESIGN.md §4).
    used = [
        LOKET_CASES,
        LET_ESCALATIONS,
        OVERBRUGGING_APPLICATIONS,
        SIGNALEN_SIGNALS,
        *(signals_assigned_topic(o) for o in (municipality, uwv)),
        *(signals_responses_topic(o) for o in (municipality, uwv)),
    ]
    dead = [
        dead_letter_topic(t)
        for t in (LOKET_CASES, LET_ESCALATIONS, OVERBRUGGING_APPLICATIONS, *used[-2:])
    ]
    records = await read_to_end(bootstrap, used + dead)
    assert kinds(of(records, LOKET_CASES, case_id)) == [
        "submitted",
        "triaged",
        "assigned",
        "status_changed",  # escalated
        "escalation_requested",
        "status_changed",  # back in progress: the LET's outcome
        "bridging_requested",
        "status_changed",
        "closed",
        "status_changed",
        "evaluated",
    ]
    assert kinds(of(records, LET_ESCALATIONS, escalation_id)) == [
        "opened",
        "admissibility_decided",
        "session_scheduled",
        "agreement",
        "concluded",
    ]
    assert kinds(of(records, OVERBRUGGING_APPLICATIONS, application_id)) == [
        "received",
        "decided",
        "booked",
        "booked",
    ]
    for signal_id, org in ((for_uwv.signal_id, uwv), (for_gm.signal_id, municipality)):
        (sent,) = of(records, signals_assigned_topic(org), signal_id)
        assert sent["type"] == "nl.maatwerk.signal.assigned"
        assert case_id not in json.dumps(sent)  # a lesson, never the case
        assert number not in json.dumps(sent)
    assert len(of(records, signals_responses_topic(uwv), for_uwv.signal_id)) == 1
    ours = {case_id, escalation_id, application_id, for_uwv.signal_id, for_gm.signal_id}
    dead_letters = [r for r in records if r.topic in dead and (r.key or b"").decode() in ours]
    assert dead_letters == []

    # Every event of this journey (each is keyed by its aggregate: the case, escalation,
    # application or signal; the organisations' topics are this test's own).
    journey = [
        r
        for r in records
        if r.value is not None and ((r.key or b"").decode() in ours or r.topic in used[-4:])
    ]
    assert len(journey) >= 11 + 5 + 4 + 2 + 1
    secrets = [household, CITIZEN_NAME, "Jansen", VALID_BSN, "rent arrears of", "eviction"]
    leaks = [
        (r.topic, r.offset, secret)
        for r in journey
        for secret in secrets
        if secret.encode() in (r.value or b"")
    ]
    assert leaks == []
    # the household reference is unique to this run: on no record of these topics at all
    assert not [r for r in records if household.encode() in (r.value or b"")]
    # ... while the Loket's own case file keeps them
    file = await case()
    assert file["household"]["reference"] == household
    assert CITIZEN_NAME in file["question"]
