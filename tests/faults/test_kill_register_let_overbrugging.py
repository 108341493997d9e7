"""kill -9 of the register, the LET and the overbrugging while work is in flight (issue 14).

Each service runs as its real process (``pmm-<service>``) on a fresh database; it is killed
5 times at random moments, then restarted, and the effects are counted:

- the register (HTTP writer): professionals registered by 4 concurrent clients; every
  acknowledged one is stored once, with one audit entry, and its state is on
  ``pmm.register.professionals`` with one event id;
- the LET (a consumer that writes and publishes): escalation requests arrive on a case
  topic; each request opens exactly one escalation (one audit entry) and one
  ``escalation.opened`` event;
- the overbrugging (money): 16 applications of 1,000 euro each, approved and paid by 4
  concurrent clients against a budget of 10,000; the budget is never overdrawn (sampled
  throughout), exactly 10 are approved and paid, every ledger entry is booked once (one
  ``booked`` event id each) and the ledger agrees with the budget's counters.

The outbox drains in every case. Figures: docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from pmm_contracts import new_event
from pmm_contracts.events.cases import BridgingRequested, EscalationRequested, Urgency
from pmm_contracts.topics import LET_ESCALATIONS, OVERBRUGGING_APPLICATIONS, REGISTER_PROFESSIONALS
from pmm_let.domain.model import escalation_id_for
from pmm_overbrugging.domain.model import CONDITIONS
from pmm_overbrugging.service.usecases import NAMESPACE as OVERBRUGGING_NAMESPACE
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually, publish_events

from .support import (
    ServiceProcess,
    assert_graceful,
    event_ids_by_subject,
    outbox_drained,
    records_of,
    service_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KILLS = 5
LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"
rng = random.Random(20261203)


async def documents(url: str, database: str, collection: str) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        return [d async for d in client[database][collection].find({})]
    finally:
        await client.close()


def audit_counts(docs: list[dict[str, Any]]) -> Counter[int]:
    """How many documents have 1, 2, ... audit entries."""
    return Counter(len(d.get("_audit") or []) for d in docs)


@pytest.mark.parametrize("stop", ["kill", "sigterm"])
async def test_kill_9_of_the_register_while_professionals_are_registered(
    make_settings: Callable[..., Any], issuer: LocalIssuer, unique: str, stop: str
) -> None:
    exits: list[tuple[int, float]] = []
    settings = make_settings(ServiceSettings, service_name="register")
    env = service_env(settings, "register")
    register = ServiceProcess("register", env)
    admin = {
        "Authorization": "Bearer "
        + issuer.issue(subject=f"admin-{unique}", organisation="pmm", roles=["register_admin"])
    }
    org = f"r{unique}"
    acknowledged: set[str] = set()
    attempts = 0

    async def register_until_killed(client: httpx.AsyncClient, worker: int) -> None:
        nonlocal attempts
        while True:
            attempts += 1
            pid = f"p-{unique}-{worker}-{attempts}"
            body = {
                "id": pid,
                "organisation": org,
                "name": f"Professional {attempts}",
                "roles": ["maatwerk_professional"],
                "email": f"{pid}@example.nl",
            }
            with contextlib.suppress(httpx.HTTPError):
                answer = await client.post("/v1/professionals", headers=admin, json=body)
                if answer.status_code == 201:
                    acknowledged.add(pid)

    try:
        await register.start(ready_timeout_s=120)
        async with httpx.AsyncClient(base_url=register.url, timeout=10.0) as client:
            created = await client.post(
                "/v1/organisations",
                headers=admin,
                json={
                    "code": org,
                    "name": f"Fault {org}",
                    "kind": "municipality",
                    "joined_on": "2024-01-01",
                },
            )
            assert created.status_code == 201, created.text
        for kill in range(KILLS):
            if kill:
                await register.start(ready_timeout_s=120)
            async with httpx.AsyncClient(base_url=register.url, timeout=10.0) as client:
                workers = [asyncio.create_task(register_until_killed(client, w)) for w in range(4)]
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                # mid-flight: registrations are being written and published
                if (took := register.interrupt(stop)) is not None:
                    exits.append(took)
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        await register.start(ready_timeout_s=120)  # relays what the kills left behind

        database = env["PMM_MONGODB_DATABASE"]
        assert await eventually(
            lambda: outbox_drained(settings.mongodb_url, database, "professionals"),
            timeout_s=60,
        )
        stored = await documents(settings.mongodb_url, database, "professionals")
        stored_ids = {d["_id"] for d in stored}
        records = await records_of(settings.kafka_bootstrap, REGISTER_PROFESSIONALS)
        states = event_ids_by_subject(
            records, stored_ids, "nl.maatwerk.register.professional.state"
        )
        missing = stored_ids - set(states)
        doubled = {pid: ids for pid, ids in states.items() if len(ids) != 1}
        audits = audit_counts(stored)
        print(  # the figures of docs/reliability.md
            f"register {stop}: stops={KILLS} exits={exits} requests={attempts} "
            f"acknowledged={len(acknowledged)} stored={len(stored_ids)} "
            f"lost={len(acknowledged - stored_ids) + len(missing)} duplicated={len(doubled)} "
            f"audit_entries={dict(audits)}"
        )
        assert acknowledged <= stored_ids, "an acknowledged registration was lost"
        assert not missing, "a stored professional's state was never published"
        assert not doubled, "a registration was published with two event ids"
        assert audits == Counter({1: len(stored)}), "a registration has no or two audit entries"
        assert len(acknowledged) > KILLS
        assert_graceful(exits)
    finally:
        register.stop()


def escalation_request(unique: str, n: int) -> EscalationRequested:
    return EscalationRequested(
        case_id=f"case-{unique}-{n}",
        case_number=f"LMM-2026-{n:04d}",
        request_id=f"req-{unique}-{n}",
        organisations_involved=("gm0363", "uwv"),
        justification="every route was tried; benefit and rent stay stuck",
        question="will both organisations agree who pays the arrears?",
        requested_by=f"regie-{unique}",
    )


@pytest.mark.parametrize("stop", ["kill", "sigterm"])
async def test_kill_9_of_the_let_while_escalation_requests_arrive(
    make_settings: Callable[..., Any], unique: str, stop: str
) -> None:
    exits: list[tuple[int, float]] = []
    settings = make_settings(ServiceSettings, service_name="let")
    cases_topic = f"test.faults.let-cases.{unique}"
    await create_topics(settings.kafka_bootstrap, [cases_topic, cases_topic + ".dlq"], partitions=3)
    env = service_env(settings, "let", PMM_CASES_TOPIC=cases_topic)
    let = ServiceProcess("let", env)
    requests = [escalation_request(unique, n) for n in range(1, 41)]
    expected = {escalation_id_for(r.request_id) for r in requests}

    async def produce() -> None:
        for chunk in range(0, len(requests), 4):
            events = [
                new_event(r, subject=r.case_id, source=LOKET) for r in requests[chunk : chunk + 4]
            ]
            await publish_events(settings.kafka_bootstrap, cases_topic, *events)
            await asyncio.sleep(0.2)

    try:
        producer = asyncio.create_task(produce())
        for _ in range(KILLS):
            await let.start(ready_timeout_s=120)
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            if (took := let.interrupt(stop)) is not None:
                exits.append(took)
        await producer
        await let.start(ready_timeout_s=120)
        database = env["PMM_MONGODB_DATABASE"]

        async def all_opened() -> bool:
            found = await documents(settings.mongodb_url, database, "escalations")
            return {d["_id"] for d in found} >= expected

        assert await eventually(all_opened, timeout_s=120)
        assert await eventually(
            lambda: outbox_drained(settings.mongodb_url, database, "escalations"), timeout_s=60
        )
        stored = await documents(settings.mongodb_url, database, "escalations")
        records = await records_of(settings.kafka_bootstrap, LET_ESCALATIONS)
        opened = event_ids_by_subject(records, expected, "nl.maatwerk.escalation.opened")
        doubled = {e: ids for e, ids in opened.items() if len(ids) != 1}
        audits = audit_counts(stored)
        print(
            f"let {stop}: stops={KILLS} exits={exits} requests={len(requests)} "
            f"escalations={len(stored)} "
            f"opened_on_topic={len(opened)} lost={len(expected - set(opened))} "
            f"duplicated={len(doubled) + len(stored) - len(expected)} "
            f"audit_entries={dict(audits)}"
        )
        assert len(stored) == len(expected), "a request opened two escalations"
        assert set(opened) == expected, "an escalation's opened event never reached the topic"
        assert not doubled, "an escalation was opened with two event ids"
        assert audits == Counter({1: len(stored)}), "an escalation has no or two audit entries"
        assert_graceful(exits)
    finally:
        let.stop()


def bridging_request(unique: str, n: int) -> BridgingRequested:
    return BridgingRequested(
        case_id=f"case-{unique}-{n}",
        case_number=f"LMM-2026-{n:04d}",
        request_id=f"bridge-{unique}-{n}",
        provision="beschermd wonen",
        provider="Zorgaanbieder Noord",
        estimated_amount=Decimal("1000.00"),
        candidate_payers=("gm0363", "vws"),
        dispute="Wmo 2015 or Wlz: both parties point at the other",
        urgency=Urgency.ACUTE,
        settle_attempt="the case director called both parties twice",
        requested_by=f"regie-{unique}",
    )


@pytest.mark.parametrize("stop", ["kill", "sigterm"])
async def test_kill_9_of_the_overbrugging_while_advances_are_approved_and_paid(
    make_settings: Callable[..., Any], issuer: LocalIssuer, unique: str, stop: str
) -> None:
    exits: list[tuple[int, float]] = []
    settings = make_settings(ServiceSettings, service_name="overbrugging")
    cases_topic = f"test.faults.bridging-cases.{unique}"
    await create_topics(settings.kafka_bootstrap, [cases_topic, cases_topic + ".dlq"])
    env = service_env(
        settings,
        "overbrugging",
        PMM_CASES_TOPIC=cases_topic,
        PMM_PENDING_BOOKINGS_INTERVAL_S="1",
    )
    service = ServiceProcess("overbrugging", env)
    holder = {
        "Authorization": "Bearer "
        + issuer.issue(subject=f"holder-{unique}", organisation="pmm", roles=["budget_holder"])
    }
    year, budget, applications = 2031, Decimal("10000.00"), 16
    requests = [bridging_request(unique, n) for n in range(1, applications + 1)]
    ids = [str(uuid.uuid5(OVERBRUGGING_NAMESPACE, r.request_id)) for r in requests]
    outcome: dict[str, str] = {}
    lowest_available: list[Decimal] = []
    calls = 0

    async def step(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
        """One step, retried until the service answers (it may be dead or restarting)."""
        nonlocal calls
        while True:
            calls += 1
            try:
                answer = await client.post(path, headers=holder, json=body)
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
                continue
            if answer.status_code < 500:
                return answer
            await asyncio.sleep(0.2)  # 503 while the store or the process is away

    async def work(client: httpx.AsyncClient, queue: asyncio.Queue[str]) -> None:
        while not queue.empty():
            app = queue.get_nowait()
            base = f"/v1/applications/{app}"
            conditions = {name: {"met": True} for name in CONDITIONS}
            answer = await step(client, f"{base}/conditions", conditions)
            if answer.status_code == 409:  # already decided: conditions are recorded
                pass
            else:
                assert answer.status_code == 200, answer.text
            approval = {
                "command_id": f"approve-{app}",
                "approve": True,
                "form": "advance",
                "amount": "1000.00",
                "budget_year": year,
            }
            answer = await step(client, f"{base}/decision", approval)
            if answer.status_code == 409 and answer.json().get("current_status") is None:
                outcome[app] = "refused"  # over budget
                continue
            paid = await step(
                client, f"{base}/payment", {"command_id": f"pay-{app}", "amount": "1000.00"}
            )
            assert paid.status_code in (200, 409), paid.text
            outcome[app] = "paid"

    async def watch(client: httpx.AsyncClient) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                figures = await client.get(f"/v1/budgets/{year}", headers=holder)
                if figures.status_code == 200:
                    lowest_available.append(Decimal(figures.json()["available"]))
            await asyncio.sleep(0.3)

    try:
        await service.start(ready_timeout_s=120)
        async with httpx.AsyncClient(base_url=service.url, timeout=10.0) as client:
            answer = await client.put(
                f"/v1/budgets/{year}", headers=holder, json={"total": str(budget)}
            )
            assert answer.status_code == 200, answer.text
            await publish_events(
                settings.kafka_bootstrap,
                cases_topic,
                *[new_event(r, subject=r.case_id, source=LOKET) for r in requests],
            )

            async def all_received() -> bool:
                database = env["PMM_MONGODB_DATABASE"]
                found = await documents(settings.mongodb_url, database, "applications")
                return {d["_id"] for d in found} >= set(ids)

            assert await eventually(all_received, timeout_s=120)
            queue: asyncio.Queue[str] = asyncio.Queue()
            for app in ids:
                queue.put_nowait(app)
            workers = [asyncio.create_task(work(client, queue)) for _ in range(4)]
            watcher = asyncio.create_task(watch(client))
            for kill in range(KILLS):
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                # mid-flight: approvals and payments are being booked
                if (took := service.interrupt(stop)) is not None:
                    exits.append(took)
                if kill < KILLS - 1:
                    await service.start(ready_timeout_s=120)
            await service.start(ready_timeout_s=120)
            await asyncio.wait_for(asyncio.gather(*workers), timeout=300)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

            database = env["PMM_MONGODB_DATABASE"]
            assert await eventually(
                lambda: outbox_drained(settings.mongodb_url, database, "applications"),
                timeout_s=60,
            )

            async def nothing_pending() -> bool:
                found = await documents(settings.mongodb_url, database, "applications")
                return not any(d.get("_pending_bookings") for d in found)

            assert await eventually(nothing_pending, timeout_s=60)
            figures = (await client.get(f"/v1/budgets/{year}", headers=holder)).json()
        ledger = await documents(settings.mongodb_url, database, "ledger")
        ours = [e for e in ledger if e["application_id"] in set(ids)]
        per_kind = Counter((e["application_id"], e["kind"]) for e in ours)
        records = await records_of(settings.kafka_bootstrap, OVERBRUGGING_APPLICATIONS)
        booked = event_ids_by_subject(records, set(ids), "nl.maatwerk.bridging.booked")
        booked_events = sum(len(v) for v in booked.values())
        paid = sorted(a for a, o in outcome.items() if o == "paid")
        print(
            f"overbrugging {stop}: stops={KILLS} exits={exits} applications={applications} "
            f"calls={calls} "
            f"paid={len(paid)} refused={applications - len(paid)} ledger_entries={len(ours)} "
            f"booked_events={booked_events} available={figures['available']} "
            f"lowest_available_seen={min(lowest_available, default=None)} "
            f"ledger_consistent={figures['ledger_consistent']}"
        )
        assert all(a >= 0 for a in lowest_available), "the budget was overdrawn"
        assert len(outcome) == applications
        assert len(paid) == 10, outcome
        assert Decimal(figures["available"]) == 0
        assert Decimal(figures["paid"]) == budget
        assert figures["ledger_consistent"] is True
        assert max(per_kind.values()) == 1, "a ledger entry was booked twice"
        assert {a for a, _ in per_kind} == set(paid), "a refused application was booked"
        assert booked_events == len(ours), "a booking's event is missing or doubled"
        assert_graceful(exits)
    finally:
        service.stop()
