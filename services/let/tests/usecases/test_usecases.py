"""The LET's use cases with the real domain, the real change loop and the real store (no
broker needed): the workflow table walked through the public commands, access, paging and
filters, the retry rule, overdue reminders and the figures.

The register read model is the real one, filled the way its consumer fills it; the clock
is the only thing a test controls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from pmm_contracts.events.cases import EscalationRequested
from pmm_contracts.events.escalations import EscalationOutcome
from pmm_contracts.events.register import Availability, ProfessionalState
from pmm_contracts.topics import LET_ESCALATIONS
from pmm_contracts.vocabulary import Role
from pmm_let.adapters.repository import EscalationRepository
from pmm_let.domain.model import ALLOWED_TRANSITIONS, Escalation, Status, escalation_id_for
from pmm_let.service import commands as c
from pmm_let.service import usecases as uc
from pmm_let.settings import LetSettings
from pmm_runtime.auth import Identity
from pmm_runtime.errors import Forbidden, NotFound, NotInState, RuleViolation
from pmm_runtime.http import PageQuery
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel

pytestmark = pytest.mark.integration  # the real store (no broker)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
CHAIR = Identity("chair-1", "pmm", frozenset({Role.LET_CHAIR.value}))
STAFF = Identity("staff-1", "pmm", frozenset({Role.PMM_STAFF.value}))
UWV_EXECUTIVE = Identity("x-uwv", "uwv", frozenset({Role.EXECUTIVE.value}))
DUO_EXECUTIVE = Identity("x-duo", "duo", frozenset({Role.EXECUTIVE.value}))
PROFESSIONAL = Identity("p-uwv", "uwv", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
ALL = PageQuery()


@pytest.fixture
async def deps(make_settings: Callable[..., LetSettings]) -> AsyncIterator[uc.Deps]:
    platform = Platform(make_settings(LetSettings), configure_logs=False)
    repo = EscalationRepository(platform.store("escalations"))
    await repo.create_indexes()
    register = RegisterReadModel(platform)
    absent = Availability(available=False, absent_until=TODAY + timedelta(60), deputy_id="d-gm")
    for pid, org, role, availability in (
        ("x-uwv", "uwv", Role.EXECUTIVE, Availability()),
        ("x-gm", "gm0363", Role.EXECUTIVE, absent),
        ("d-gm", "gm0363", Role.MAATWERK_PROFESSIONAL, Availability()),
        ("chair-1", "pmm", Role.LET_CHAIR, Availability()),
    ):
        person = ProfessionalState(
            id=pid,
            organisation=org,
            name=pid,
            email=f"{pid}@example.nl",
            roles=(role,),
            availability=availability,
            last_verified_on=date(2026, 1, 1),
            version=1,
        )
        await register.professionals.insert_one({"_id": pid, **person.model_dump(mode="json")})
    yield uc.Deps(repo=repo, register=register, changes=platform.changes, now=lambda: NOW)
    await platform.mongo.close()


def at(deps: uc.Deps, when: datetime) -> uc.Deps:
    return replace(deps, now=lambda: when)


def request(n: int = 1, *, case: int | None = None, request_id: str | None = None) -> Any:
    return EscalationRequested(
        case_id=f"case-{case or n}",
        case_number=f"LMM-2026-{case or n:04d}",
        request_id=request_id or f"req-{n}",
        organisations_involved=("uwv", "gm0363"),
        justification="every route was tried; benefit and rent stay stuck",
        question="will both organisations agree who pays the arrears?",
        requested_by="regie-1",
    )


async def opened(deps: uc.Deps, n: int = 1, **extra: Any) -> str:
    data = request(n, **extra)
    assert await uc.open_escalation(deps, data, caused_by=str(uuid.uuid4()))
    return escalation_id_for(data.request_id)


async def document(deps: uc.Deps, escalation_id: str) -> dict[str, Any]:
    doc = await deps.repo.store.get(escalation_id)
    assert doc is not None
    return doc


def outbox_types(doc: dict[str, Any]) -> list[str]:
    return [entry["value"]["type"].rsplit(".", 1)[-1] for entry in doc["_outbox"]]


# The workflow table, walked through the public commands -----------------------------------

Step = Callable[[uc.Deps, str], Awaitable[Escalation]]

COMMANDS: dict[Status, Step] = {
    Status.ADMITTED: lambda d, e: uc.decide_admissibility(
        d, CHAIR, e, c.DecideAdmissibility(admitted=True)
    ),
    Status.REFUSED: lambda d, e: uc.decide_admissibility(
        d, CHAIR, e, c.DecideAdmissibility(admitted=False, reason="not tried at the Loket")
    ),
    Status.SCHEDULED: lambda d, e: uc.schedule_session(
        d, CHAIR, e, c.ScheduleSession(session_date=TODAY)
    ),
    Status.HELD: lambda d, e: uc.record_attendance(
        d, CHAIR, e, c.RecordAttendance(present=("x-uwv",))
    ),
    Status.CONCLUDED: lambda d, e: uc.conclude(
        d, CHAIR, e, c.Conclude(outcome=EscalationOutcome.BREAKTHROUGH, summary="agreed")
    ),
    Status.WITHDRAWN: lambda d, e: uc.withdraw(
        d, STAFF, e, c.Withdraw(solved_under_pressure=True, reason="solved under pressure")
    ),
}
"""The one public command that moves an escalation to each status (``requested`` is where
the Loket's request opens it)."""

PATHS: dict[Status, tuple[Status, ...]] = {
    Status.REQUESTED: (),
    Status.ADMITTED: (Status.ADMITTED,),
    Status.REFUSED: (Status.REFUSED,),
    Status.SCHEDULED: (Status.ADMITTED, Status.SCHEDULED),
    Status.HELD: (Status.ADMITTED, Status.SCHEDULED, Status.HELD),
    Status.CONCLUDED: (Status.ADMITTED, Status.SCHEDULED, Status.HELD, Status.CONCLUDED),
    Status.WITHDRAWN: (Status.WITHDRAWN,),
}


def test_every_status_is_in_the_table_and_reachable() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Status) == set(PATHS)
    assert set(COMMANDS) == set(Status) - {Status.REQUESTED}


@pytest.mark.parametrize(
    ("start", "target"), [(s, t) for s in Status for t in Status if t is not Status.REQUESTED]
)
async def test_every_edge_of_the_workflow_through_the_commands(
    deps: uc.Deps, start: Status, target: Status
) -> None:
    escalation_id = await opened(deps)
    for step in PATHS[start]:
        await COMMANDS[step](deps, escalation_id)
    before = await document(deps, escalation_id)
    assert before["status"] == start.value

    if target in ALLOWED_TRANSITIONS[start]:
        after = await COMMANDS[target](deps, escalation_id)
        assert after.status is target
        assert after.version == before["_version"] + 1
        return
    with pytest.raises(NotInState) as refused:
        await COMMANDS[target](deps, escalation_id)
    assert refused.value.status == 409
    assert refused.value.extra["current_status"] == start.value
    assert refused.value.extra["allowed"] == sorted(s.value for s in ALLOWED_TRANSITIONS[start])
    after_doc = await document(deps, escalation_id)
    assert after_doc["_version"] == before["_version"]  # nothing written
    assert after_doc["_outbox"] == before["_outbox"]


# The Loket's request -----------------------------------------------------------------------


async def test_a_request_opens_one_escalation_and_a_replay_opens_nothing(deps: uc.Deps) -> None:
    data = request()
    assert await uc.open_escalation(deps, data, caused_by="event-1")
    assert not await uc.open_escalation(deps, data, caused_by="event-1")  # redelivered
    assert not await uc.open_escalation(deps, data, caused_by="event-2")  # new envelope
    escalation_id = escalation_id_for("req-1")
    doc = await document(deps, escalation_id)
    assert doc["_version"] == 1
    assert outbox_types(doc) == ["opened"]
    assert {e["topic"] for e in doc["_outbox"]} == {LET_ESCALATIONS}
    (audit,) = doc["_audit"]
    assert (audit["actor"], audit["action"], audit["command_id"]) == (
        "service:loket",
        "escalation.opened",
        "event-1",
    )
    assert (await uc.get(deps, CHAIR, escalation_id)).status is Status.REQUESTED


# Access ------------------------------------------------------------------------------------


async def test_who_may_read_and_change(deps: uc.Deps) -> None:
    escalation_id = await opened(deps)
    assert (await uc.get(deps, UWV_EXECUTIVE, escalation_id)).id == escalation_id
    with pytest.raises(NotFound):  # not 403: another organisation does not learn it exists
        await uc.get(deps, DUO_EXECUTIVE, escalation_id)
    with pytest.raises(Forbidden):
        await uc.get(deps, PROFESSIONAL, escalation_id)
    with pytest.raises(Forbidden):  # only the chair decides admissibility
        await uc.decide_admissibility(
            deps, STAFF, escalation_id, c.DecideAdmissibility(admitted=True)
        )
    with pytest.raises(Forbidden):
        await uc.withdraw(
            deps,
            UWV_EXECUTIVE,
            escalation_id,
            c.Withdraw(solved_under_pressure=False, reason="moved"),
        )
    with pytest.raises(Forbidden):
        await uc.audit_trail(deps, UWV_EXECUTIVE, escalation_id, ALL)
    with pytest.raises(NotFound):
        await uc.withdraw(
            deps, STAFF, "no-such-id", c.Withdraw(solved_under_pressure=False, reason="x")
        )
    assert (await document(deps, escalation_id))["_version"] == 1


async def test_a_rule_names_its_field_and_writes_nothing(deps: uc.Deps) -> None:
    escalation_id = await opened(deps)
    with pytest.raises(RuleViolation) as caught:
        await uc.decide_admissibility(
            deps, CHAIR, escalation_id, c.DecideAdmissibility(admitted=False)
        )
    assert caught.value.field == "reason"
    assert caught.value.status == 422
    await COMMANDS[Status.ADMITTED](deps, escalation_id)
    with pytest.raises(RuleViolation) as caught:
        await uc.schedule_session(
            deps, CHAIR, escalation_id, c.ScheduleSession(session_date=TODAY, chair_id="x-uwv")
        )
    assert caught.value.field == "chair_id"
    with pytest.raises(RuleViolation) as caught:
        await uc.schedule_session(
            deps,
            CHAIR,
            escalation_id,
            c.ScheduleSession(session_date=TODAY, executive_ids=("x-uwv", "nobody")),
        )
    assert caught.value.field == "executive_ids"
    doc = await document(deps, escalation_id)
    assert (doc["_version"], doc["status"]) == (2, "admitted")


async def test_two_admissions_at_once_one_wins_the_other_is_checked_again(
    deps: uc.Deps,
) -> None:
    """The change loop retries a version conflict on the fresh state: the loser's rule is
    checked again and it is told why (not in state), not merely "try again"."""
    escalation_id = await opened(deps)
    results = await asyncio.gather(
        *[COMMANDS[Status.ADMITTED](deps, escalation_id) for _ in range(2)],
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Escalation", "NotInState"]
    doc = await document(deps, escalation_id)
    assert doc["_version"] == 2
    assert outbox_types(doc) == ["opened", "admissibility_decided"]
    assert [a["action"] for a in doc["_audit"]] == ["escalation.opened", "escalation.admitted"]
    assert doc["_audit"][-1]["old"]["status"] == "requested"
    assert doc["_audit"][-1]["new"]["status"] == "admitted"


# Finding escalations -----------------------------------------------------------------------


async def test_escalations_filtered_by_case_and_status_and_paged(deps: uc.Deps) -> None:
    first = await opened(deps, 1, case=7)
    second = await opened(deps, 2, case=7)
    other = await opened(deps, 3, case=8)
    await COMMANDS[Status.ADMITTED](deps, second)

    total, found = await uc.search(deps, CHAIR, ALL, case_id="case-7")
    assert total == 2
    assert {e.id for e in found} == {first, second}
    total, found = await uc.search(deps, CHAIR, ALL, case_id="case-7", status=Status.ADMITTED)
    assert (total, [e.id for e in found]) == (1, [second])
    total, found = await uc.search(deps, CHAIR, ALL, case_id="case-9")
    assert (total, found) == (0, [])

    pages = [
        await uc.search(deps, STAFF, PageQuery(page=n, page_size=2), case_id=None)
        for n in (1, 2, 3)
    ]
    assert [t for t, _ in pages] == [3, 3, 3]
    assert [len(items) for _, items in pages] == [2, 1, 0]
    assert {e.id for _, items in pages for e in items} == {first, second, other}

    # An executive finds a case's escalations only where their organisation is involved.
    assert (await uc.search(deps, UWV_EXECUTIVE, ALL, case_id="case-7"))[0] == 2
    assert (await uc.search(deps, DUO_EXECUTIVE, ALL, case_id="case-7"))[0] == 0
    with pytest.raises(Forbidden):
        await uc.search(deps, PROFESSIONAL, ALL, case_id="case-7")


async def test_the_audit_trail_is_paged_oldest_first(deps: uc.Deps) -> None:
    escalation_id = await opened(deps)
    for step in PATHS[Status.HELD]:
        await COMMANDS[step](deps, escalation_id)
    total, entries = await uc.audit_trail(deps, STAFF, escalation_id, PageQuery(page_size=3))
    assert total == 4
    assert [e["action"] for e in entries] == [
        "escalation.opened",
        "escalation.admitted",
        "session.scheduled",
    ]
    _, rest = await uc.audit_trail(deps, STAFF, escalation_id, PageQuery(page=2, page_size=3))
    assert [e["action"] for e in rest] == ["session.held"]
    with pytest.raises(NotFound):
        await uc.audit_trail(deps, STAFF, "no-such-id", ALL)


# Agreements, reminders and figures ---------------------------------------------------------


async def held(deps: uc.Deps, n: int) -> str:
    escalation_id = await opened(deps, n)
    for step in PATHS[Status.HELD]:
        await COMMANDS[step](deps, escalation_id)
    return escalation_id


async def test_overdue_agreements_raise_one_reminder_each(deps: uc.Deps) -> None:
    escalation_id = await held(deps, 1)
    deadline = TODAY + timedelta(days=3)
    for org in ("uwv", "gm0363"):
        await uc.record_agreement(
            deps,
            STAFF,
            escalation_id,
            c.RecordAgreement(organisation=org, action="act", deadline=deadline),
        )
    escalation = await uc.get(deps, STAFF, escalation_id)
    first, second = (a.id for a in escalation.agreements)
    await uc.complete_agreement(deps, STAFF, escalation_id, second)
    with pytest.raises(NotFound):
        await uc.complete_agreement(deps, STAFF, escalation_id, "a-nope")

    assert await uc.scan_overdue(at(deps, NOW + timedelta(days=3))) == 0  # the deadline day
    later = at(deps, NOW + timedelta(days=4))
    assert await uc.scan_overdue(later) == 1
    assert await uc.scan_overdue(later) == 0  # no second reminder
    doc = await document(deps, escalation_id)
    overdue = [e["value"]["data"] for e in doc["_outbox"] if e["value"]["data"].get("status")]
    assert [(a["agreement_id"], a["status"]) for a in overdue][-1] == (first, "overdue")
    assert doc["_audit"][-1]["actor"] == "system:let"
    assert doc["next_deadline"] is None

    figures = await uc.overview(deps, STAFF)
    assert figures.agreements == {"open": 0, "overdue": 1, "done": 1}
    assert [(o.escalation_id, o.agreement_id) for o in figures.overdue_agreements] == [
        (escalation_id, first)
    ]


async def test_the_overview_counts_outcomes_per_year(deps: uc.Deps) -> None:
    concluded = await held(deps, 1)
    await uc.conclude(
        deps,
        CHAIR,
        concluded,
        c.Conclude(outcome=EscalationOutcome.PARTIAL, summary="one of two done"),
    )
    await COMMANDS[Status.WITHDRAWN](deps, await opened(deps, 2))
    await COMMANDS[Status.REFUSED](deps, await opened(deps, 3))
    planned = await opened(deps, 4)
    await COMMANDS[Status.ADMITTED](deps, planned)
    await uc.schedule_session(
        deps, CHAIR, planned, c.ScheduleSession(session_date=TODAY + timedelta(days=10))
    )
    with pytest.raises(RuleViolation) as early:  # the session is not there yet
        await COMMANDS[Status.HELD](deps, planned)
    assert early.value.field == "present"
    await opened(deps, 5)

    figures = await uc.overview(deps, STAFF)
    assert figures.open_escalations == 2
    assert figures.sessions_planned == 1
    assert figures.by_status["requested"] == 1
    (year,) = figures.per_year
    assert year.year == TODAY.year
    assert year.outcomes["partial"] == 1
    assert year.outcomes["withdrawn_solved_under_pressure"] == 1
    assert year.outcomes["refused"] == 1
    assert year.share_solved_under_pressure == 0.5  # refusals left out
    with pytest.raises(Forbidden):
        await uc.overview(deps, UWV_EXECUTIVE)
