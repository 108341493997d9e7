"""The Loket's use cases with the real domain and the real store (no broker needed).

The register read model is the real one, filled the way its consumer fills it; the clock
is the only thing a test controls.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from pmm_contracts import new_event
from pmm_contracts.events import bridging as bev
from pmm_contracts.events import cases as ev
from pmm_contracts.events import escalations as lev
from pmm_contracts.events.register import Availability, OrganisationState, ProfessionalState
from pmm_contracts.vocabulary import OrganisationKind, Role
from pmm_loket.adapters.repository import CaseFilter, CaseRepository
from pmm_loket.domain.model import (
    ANONYMISED,
    Case,
    ForbiddenTransition,
    NotInState,
    Punctuality,
    RuleViolation,
    Status,
)
from pmm_loket.entrypoints import kafka
from pmm_loket.service import commands as c
from pmm_loket.service import usecases as uc
from pmm_loket.settings import LoketSettings
from pmm_runtime.auth import Identity
from pmm_runtime.broker import PermanentError
from pmm_runtime.changes import Changes
from pmm_runtime.errors import Forbidden, NotFound
from pmm_runtime.mongo import Document
from pmm_runtime.platform import Platform, dispatch
from pmm_runtime.readmodel import RegisterReadModel

LET = "urn:nld:oin:00000001234567890000:systeem:let"
BRIDGING = "urn:nld:oin:00000001234567890000:systeem:overbrugging"
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

PROFESSIONAL = Identity("gm0363-p1", "gm0363", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
COLLEAGUE = Identity("gm0363-p2", "gm0363", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
AMBASSADOR_SAME_ORG = Identity("gm0363-a", "gm0363", frozenset({Role.AMBASSADOR.value}))
OTHER_ORG = Identity("uwv-p1", "uwv", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
REGIE = Identity("regie-1", "pmm", frozenset({Role.CASE_DIRECTOR.value}))
STAFF = Identity("staff-1", "pmm", frozenset({Role.PMM_STAFF.value}))


@dataclass
class Clock:
    at: datetime

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
async def deps(make_settings: Callable[..., LoketSettings]) -> AsyncIterator[uc.Deps]:
    settings = make_settings(LoketSettings)
    platform = Platform(settings, configure_logs=False)
    repo = CaseRepository(platform.store("cases"), platform.db["counters"])
    await repo.create_indexes()
    register = RegisterReadModel(platform)
    for code, kind, member in (
        ("gm0363", OrganisationKind.MUNICIPALITY, True),
        ("uwv", OrganisationKind.EXECUTING_ORGANISATION, True),
        ("szw", OrganisationKind.MINISTRY, True),
        ("gm9999", OrganisationKind.MUNICIPALITY, False),
    ):
        state = OrganisationState(code=code, name=code, kind=kind, is_member=member, version=1)
        await register.organisations.insert_one({"_id": code, **state.model_dump(mode="json")})
    for pid, org, roles, availability in (
        ("regie-1", "pmm", (Role.CASE_DIRECTOR,), Availability()),
        ("regie-2", "pmm", (Role.CASE_DIRECTOR,), Availability()),
        (
            "regie-away",
            "pmm",
            (Role.CASE_DIRECTOR,),
            Availability(available=False, deputy_id="regie-2"),
        ),
        ("uwv-amb", "uwv", (Role.AMBASSADOR,), Availability(available=False, deputy_id="uwv-dep")),
        ("uwv-dep", "uwv", (Role.MAATWERK_PROFESSIONAL,), Availability()),
        ("szw-amb", "szw", (Role.AMBASSADOR,), Availability()),
    ):
        person = ProfessionalState(
            id=pid,
            organisation=org,
            name=pid,
            email=f"{pid}@example.nl",
            roles=roles,
            availability=availability,
            last_verified_on=date(2026, 1, 1),
            version=1,
        )
        await register.professionals.insert_one({"_id": pid, **person.model_dump(mode="json")})
    yield uc.Deps(
        repo=repo,
        register=register,
        changes=Changes(source=settings.source, now=Clock(MONDAY)),
        now=Clock(MONDAY),
    )
    await platform.mongo.close()


def at(deps: uc.Deps, when: datetime) -> uc.Deps:
    return replace(deps, now=Clock(when))


def submission(**extra: Any) -> c.SubmitCase:
    body: dict[str, Any] = {
        "submitter_kind": "municipality",
        "household": {"reference": "hh-7f3a9c21", "adults": 2, "children": 1},
        "life_domains": ["debts", "income"],
        "bottlenecks": [{"type": "laws_and_regulations", "subtype": "not_foreseen"}],
        "organisations_involved": ["uwv"],
        "tried_locally": "wijkteam and the regional table tried for months",
        "question": "who restores the income?",
        "urgency": "threatened",
        "legal_basis": "consent",
    }
    body.update(extra)
    return c.SubmitCase.model_validate(body)


async def in_progress(deps: uc.Deps) -> str:
    case = await submit(deps, PROFESSIONAL, submission())
    await uc.triage(deps, REGIE, case.id, c.Triage(accepted=True))
    await uc.assign(deps, REGIE, case.id, c.Assign(case_director_id="regie-1"))
    return case.id


async def submit(deps: uc.Deps, who: Identity, cmd: c.SubmitCase) -> Case:
    return (await uc.submit(deps, who, cmd)).case


async def outbox_types(deps: uc.Deps, case_id: str) -> list[str]:
    doc = await deps.repo.store.get(case_id)
    assert doc is not None
    return [entry["value"]["type"] for entry in doc["_outbox"]]


def outbox_types_of(doc: dict[str, Any]) -> list[str]:
    return [entry["value"]["type"] for entry in doc["_outbox"]]


# Intake ------------------------------------------------------------------------------------


async def test_submit_numbers_the_case_and_sets_the_intake_deadline_in_working_days(
    deps: uc.Deps,
) -> None:
    first = await submit(deps, PROFESSIONAL, submission())
    second = await submit(deps, PROFESSIONAL, submission())
    assert (first.number, second.number) == ("LMM-2026-0001", "LMM-2026-0002")
    assert first.intake_due == date(2026, 11, 30)  # Monday + 5 working days
    next_year = await submit(at(deps, datetime(2027, 1, 2, tzinfo=UTC)), PROFESSIONAL, submission())
    assert next_year.number == "LMM-2027-0001"
    assert next_year.intake_due == date(2027, 1, 8)
    assert await outbox_types(deps, first.id) == [ev.CaseSubmitted.EVENT_TYPE]


async def test_fifty_concurrent_submissions_get_fifty_distinct_numbers(deps: uc.Deps) -> None:
    cases = await asyncio.gather(*[submit(deps, PROFESSIONAL, submission()) for _ in range(50)])
    numbers = sorted(case.number for case in cases)
    assert numbers == [f"LMM-2026-{n:04d}" for n in range(1, 51)]


async def test_a_retried_submission_with_its_idempotency_key_creates_one_case(
    deps: uc.Deps,
) -> None:
    first = await uc.submit(deps, PROFESSIONAL, submission(), idempotency_key="k-1")
    again = await uc.submit(deps, PROFESSIONAL, submission(), idempotency_key="k-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.case.id == first.case.id
    assert again.case.number == first.case.number
    concurrent = await asyncio.gather(
        *[uc.submit(deps, PROFESSIONAL, submission(), idempotency_key="k-2") for _ in range(5)]
    )
    assert len({s.case.id for s in concurrent}) == 1
    assert sum(not s.replayed for s in concurrent) == 1
    colleague = await uc.submit(deps, COLLEAGUE, submission(), idempotency_key="k-1")
    assert colleague.case.id != first.case.id, "a key is the submitter's own"
    with pytest.raises(RuleViolation, match="another submission") as refused:
        await uc.submit(
            deps, PROFESSIONAL, submission(question="something else"), idempotency_key="k-1"
        )
    assert refused.value.field == uc.IDEMPOTENCY_FIELD
    doc = await deps.repo.store.get(first.case.id)
    assert doc is not None
    assert len(doc["_audit"]) == 1
    assert await outbox_types(deps, first.case.id) == [ev.CaseSubmitted.EVENT_TYPE]
    total, _ = await uc.list_cases(deps, STAFF, CaseFilter(), limit=200)
    assert total == 3  # k-1, k-2 and the colleague's k-1


@pytest.mark.parametrize(
    ("who", "body", "error", "match"),
    [
        (STAFF, {}, Forbidden, "maatwerk professional"),
        (
            Identity("p", "gm9999", frozenset({Role.MAATWERK_PROFESSIONAL.value})),
            {},
            Forbidden,
            "not joined",
        ),
        (PROFESSIONAL, {"organisations_involved": ["nobody"]}, RuleViolation, "unknown"),
        (
            PROFESSIONAL,
            {"bottlenecks": [{"type": "ict", "subtype": "not_foreseen"}]},
            RuleViolation,
            "laws_and_regulations",
        ),
    ],
)
async def test_who_may_submit_and_what(
    deps: uc.Deps, who: Identity, body: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await submit(deps, who, submission(**body))


async def test_triage_late_beyond_three_times_the_term_shows_in_the_filters(
    deps: uc.Deps,
) -> None:
    on_time = await submit(deps, PROFESSIONAL, submission())
    late = await submit(deps, PROFESSIONAL, submission())
    very_late = await submit(deps, PROFESSIONAL, submission())
    waiting = await submit(deps, PROFESSIONAL, submission())
    await uc.triage(deps, REGIE, on_time.id, c.Triage(accepted=True))
    await uc.triage(
        at(deps, datetime(2026, 12, 3, tzinfo=UTC)), REGIE, late.id, c.Triage(accepted=True)
    )
    await uc.triage(
        at(deps, datetime(2027, 1, 5, tzinfo=UTC)),
        REGIE,
        very_late.id,
        c.Triage(accepted=False, decline_reason="duplicate"),
    )

    async def ids(when: datetime, wanted: Punctuality, deadline: str = "intake") -> set[str]:
        wanted_filter = CaseFilter(timeliness=wanted, deadline=deadline)
        total, found = await uc.list_cases(at(deps, when), STAFF, wanted_filter, limit=200)
        assert total == len(found)
        return {case.id for case in found}

    today = datetime(2026, 12, 1, tzinfo=UTC)
    assert await ids(today, Punctuality.ON_TIME) == {on_time.id}
    assert await ids(today, Punctuality.LATE) == {late.id, waiting.id}  # waiting: running late
    assert await ids(today, Punctuality.VERY_LATE) == {very_late.id}
    much_later = datetime(2027, 2, 1, tzinfo=UTC)
    assert await ids(much_later, Punctuality.VERY_LATE) == {very_late.id, waiting.id}
    # the case deadline (8 weeks from acceptance) runs only for accepted cases
    assert await ids(today, Punctuality.ON_TIME, "case") == {on_time.id, late.id}
    assert await ids(datetime(2027, 2, 1, tzinfo=UTC), Punctuality.LATE, "case") == {
        on_time.id,
        late.id,
    }


# Access ------------------------------------------------------------------------------------


async def test_a_professional_sees_their_own_organisations_cases_only(deps: uc.Deps) -> None:
    case = await submit(deps, PROFESSIONAL, submission())
    assert (await uc.get_case(deps, COLLEAGUE, case.id)).id == case.id
    assert (await uc.get_case(deps, REGIE, case.id)).id == case.id
    for outsider in (OTHER_ORG, AMBASSADOR_SAME_ORG):
        with pytest.raises(NotFound):
            await uc.get_case(deps, outsider, case.id)
    assert [x.id for x in (await uc.list_cases(deps, COLLEAGUE, CaseFilter()))[1]] == [case.id]
    assert await uc.list_cases(deps, OTHER_ORG, CaseFilter()) == (0, [])
    with pytest.raises(Forbidden):
        await uc.list_cases(deps, AMBASSADOR_SAME_ORG, CaseFilter())
    with pytest.raises(Forbidden):
        await uc.triage(deps, PROFESSIONAL, case.id, c.Triage(accepted=True))


async def test_every_change_and_read_is_audited_with_old_and_new_values(
    deps: uc.Deps,
) -> None:
    ticks = iter(range(1, 10_000))

    def ticking() -> datetime:
        return MONDAY + timedelta(seconds=next(ticks))

    deps = replace(deps, now=ticking, changes=Changes(source=deps.changes.source, now=ticking))
    case_id = await in_progress(deps)
    await uc.assign(deps, STAFF, case_id, c.Assign(case_director_id="regie-2", reason="leave"))
    version = (await deps.repo.store.get(case_id) or {})["_version"]
    await uc.get_case(deps, COLLEAGUE, case_id)
    assert (await deps.repo.store.get(case_id) or {})["_version"] == version  # a read writes
    # only to the read log (case_reads), never to the case
    await uc.add_note(deps, REGIE, case_id, c.Note(text="spoke to the wijkteam"))
    trail = await uc.audit_trail(deps, STAFF, case_id)
    actions = [entry["action"] for entry in trail]
    assert actions == [
        "case.submitted",
        "case.triaged",
        "case.assigned",
        "case.assigned",
        "case.read",
        "case.note",
        "case.read",  # reading the trail is a read of the case file
    ]
    reassigned = trail[3]
    assert reassigned["actor"] == "pmm:staff-1"
    assert reassigned["reason"] == "leave"
    assert reassigned["old"] == {"case_director_id": "regie-1"}
    assert reassigned["new"] == {"case_director_id": "regie-2"}
    assert trail[1]["old"]["status"] == "submitted"
    assert trail[1]["new"]["status"] == "accepted"
    assert trail[4]["actor"] == "gm0363:gm0363-p2"
    assert trail[5]["new"]["notes"][0]["text"] == "spoke to the wijkteam"
    with pytest.raises(Forbidden):
        await uc.audit_trail(deps, COLLEAGUE, case_id)


class Finds(monitoring.CommandListener):
    """The filters of the ``find`` commands a client sends."""

    def __init__(self) -> None:
        self.finds: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: Any) -> None:
        if event.command_name == "find":
            self.finds.append((event.command["find"], dict(event.command.get("filter") or {})))

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


async def test_the_audit_trail_of_a_case_is_read_by_bare_id_whatever_else_was_read(
    deps: uc.Deps, make_settings: Callable[..., LoketSettings]
) -> None:
    """The reads of every other case never make one case's trail dearer (decision 0015):
    its reads are one document keyed by the case id, so the trail is two ``_id`` reads."""
    case_id = await in_progress(deps)
    other = await in_progress(deps)
    for _ in range(5):
        await uc.get_case(deps, COLLEAGUE, other)
    await uc.get_case(deps, COLLEAGUE, case_id)
    finds = Finds()
    database = deps.repo.collection.database.name
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        make_settings(LoketSettings).mongodb_url, tz_aware=True, event_listeners=[finds]
    )
    watched = replace(deps, repo=copy.copy(deps.repo))
    watched.repo.reads = client[database]["case_read_log"]
    try:
        trail = await watched.repo.audit_trail(case_id)
    finally:
        await client.close()
    assert [e["action"] for e in trail].count("case.read") == 1
    assert finds.finds == [("case_read_log", {"_id": case_id})]
    others = await deps.repo.audit_trail(other)
    assert [e["actor"] for e in others if e["action"] == "case.read"] == ["gm0363:gm0363-p2"] * 5


async def test_reads_logged_before_the_per_case_log_are_moved_into_it_once(
    deps: uc.Deps,
) -> None:
    """An older database kept one document per read (``case_reads``): the start-up
    migration moves them into the per-case log, in time order with the case's changes,
    and a repeated migration (a crash midway) adds none twice."""
    case_id = await in_progress(deps)
    old = [
        {"case_id": case_id, "at": MONDAY + timedelta(minutes=m), "actor": a, "action": "case.read"}
        for m, a in ((1, "pmm:staff-1"), (2, "gm0363:gm0363-p2"))
    ]
    await deps.repo.legacy_reads.insert_many([dict(r) for r in old])
    await deps.repo.legacy_reads.insert_one(
        {"case_id": "another", "at": MONDAY, "actor": "pmm:staff-1", "action": "case.read"}
    )
    assert await deps.repo.migrate_read_log(batch=2) == 3
    await deps.repo.legacy_reads.insert_many([dict(r) for r in old])  # as if it crashed
    assert await deps.repo.migrate_read_log() == 2
    assert await deps.repo.migrate_read_log() == 0
    trail = await deps.repo.audit_trail(case_id)
    reads = [(e["at"], e["actor"]) for e in trail if e["action"] == "case.read"]
    assert reads == [(r["at"], r["actor"]) for r in old]
    assert [e["at"] for e in trail] == sorted(e["at"] for e in trail)
    assert len(await deps.repo.audit_trail("another")) == 1


# Handling ----------------------------------------------------------------------------------


async def test_assignment_needs_an_available_regievoerder_from_the_register(
    deps: uc.Deps,
) -> None:
    case = await submit(deps, PROFESSIONAL, submission())
    await uc.triage(deps, REGIE, case.id, c.Triage(accepted=True))
    with pytest.raises(RuleViolation, match="not a regievoerder"):
        await uc.assign(deps, REGIE, case.id, c.Assign(case_director_id="uwv-dep"))
    with pytest.raises(RuleViolation, match="deputy is 'regie-2'"):
        await uc.assign(deps, REGIE, case.id, c.Assign(case_director_id="regie-away"))
    await uc.assign(deps, REGIE, case.id, c.Assign(case_director_id="regie-1"))
    other = await in_progress(deps)
    await uc.assign(deps, REGIE, other, c.Assign(case_director_id="regie-2"))
    mine = CaseFilter(case_director_id="regie-1", open_only=True)
    assert [x.id for x in (await uc.list_cases(deps, REGIE, mine))[1]] == [case.id]
    await uc.close(deps, REGIE, case.id, c.Close(outcome="solved"))
    assert await uc.list_cases(deps, REGIE, mine) == (0, [])


async def test_a_consultation_goes_to_the_register_contact_or_their_deputy(
    deps: uc.Deps,
) -> None:
    case_id = await in_progress(deps)
    case = await uc.request_consultation(
        deps, REGIE, case_id, c.RequestConsultation(organisation="uwv", question="restart?")
    )
    (asked,) = case.consultations
    assert (asked.professional_id, asked.deputy_for) == ("uwv-dep", "uwv-amb")
    assert asked.due == date(2026, 11, 30)  # 5 working days
    case = await uc.request_consultation(
        deps,
        REGIE,
        case_id,
        c.RequestConsultation(organisation="szw", question="the rule?", due=date(2026, 12, 14)),
    )
    assert case.consultations[1].professional_id == "szw-amb"
    with pytest.raises(RuleViolation, match="not an ambassador"):
        await uc.request_consultation(
            deps,
            REGIE,
            case_id,
            c.RequestConsultation(
                organisation="szw", professional_id="uwv-dep", question="what now?"
            ),
        )
    with pytest.raises(RuleViolation, match="not a joined"):
        await uc.request_consultation(
            deps, REGIE, case_id, c.RequestConsultation(organisation="gm9999", question="what now?")
        )
    # overdue: a reminder once, then none; answered late counts as late
    later = at(deps, datetime(2026, 12, 1, 7, tzinfo=UTC))
    assert await uc.scan_deadlines(later) == 1
    assert await uc.scan_deadlines(later) == 0
    assert ev.DeadlineWarning.EVENT_TYPE in await outbox_types(deps, case_id)
    # the scan reads the due-date index, which a start-up rebuild restores after a crash
    await deps.repo.deadline_index.collection.delete_many({})
    assert await uc.scan_deadlines(at(deps, datetime(2027, 6, 1, tzinfo=UTC))) == 0
    await deps.repo.rebuild_deadline_index()
    assert await deps.repo.due_for_warning(date(2027, 6, 1)) == [case_id]
    late = CaseFilter(timeliness=Punctuality.LATE, deadline="consultation")
    assert [x.id for x in (await uc.list_cases(later, STAFF, late))[1]] == [case_id]
    await uc.answer_consultation(later, REGIE, case_id, asked.id, c.AnswerConsultation(answer="ok"))
    with pytest.raises(Exception, match="no consultation"):
        await uc.answer_consultation(
            later, REGIE, case_id, "c-nope", c.AnswerConsultation(answer="x")
        )


async def test_suspend_resume_and_only_a_regievoerder_reopens(deps: uc.Deps) -> None:
    case_id = await in_progress(deps)
    resume_on = date(2026, 12, 7)
    await uc.suspend(deps, STAFF, case_id, c.Suspend(reason="court", expected_resume=resume_on))
    with pytest.raises(NotInState):
        await uc.request_bridging(deps, REGIE, case_id, bridging())
    await uc.resume(deps, STAFF, case_id, c.Resume(reason="court decided"))
    await uc.close(deps, REGIE, case_id, c.Close(outcome="not_solved", reason="no housing"))
    with pytest.raises(Forbidden):
        await uc.reopen(deps, STAFF, case_id, c.Reason(reason="new facts"))
    case = await uc.reopen(deps, REGIE, case_id, c.Reason(reason="new facts"))
    assert case.status == Status.IN_PROGRESS


def bridging() -> c.RequestBridging:
    return c.RequestBridging(
        provision="supported housing",
        provider="Zorg BV",
        estimated_amount=Decimal("2500.00"),
        candidate_payers=("gm0363", "uwv"),
        dispute="Wmo or Wlz: both say the other",
        settle_attempt="two meetings with both",
    )


async def test_the_lets_events_update_the_escalated_case_once(deps: uc.Deps) -> None:
    case_id = await in_progress(deps)
    case = await uc.escalate(
        deps,
        REGIE,
        case_id,
        c.Escalate(justification="every organisation consulted", question="who pays?"),
    )
    assert case.status == Status.ESCALATED
    request_id = case.escalation["request_id"]  # type: ignore[index]
    opened = new_event(
        lev.EscalationOpened(
            escalation_id="e1",
            case_id=case_id,
            case_number=case.number,
            request_id=request_id,
            organisations_involved=("uwv",),
        ),
        subject="e1",
        source=LET,
    )
    withdrawn = new_event(
        lev.EscalationWithdrawn(
            escalation_id="e1", case_id=case_id, solved_under_pressure=True, reason="paid"
        ),
        subject="e1",
        source=LET,
    )
    stale = new_event(
        lev.EscalationConcluded(
            escalation_id="e0", case_id=case_id, outcome="none", summary="an older one"
        ),
        subject="e0",
        source=LET,
    )
    for event in (opened, stale, withdrawn, withdrawn):  # redelivered too
        await dispatch(kafka.escalation_handlers(deps))(event)
    case = await uc.get_case(deps, REGIE, case_id)
    assert case.status == Status.IN_PROGRESS
    assert case.escalation is not None
    assert case.escalation["status"] == "withdrawn"
    assert case.escalation["solved_under_pressure"] is True
    actions = [e["action"] for e in await deps.repo.audit_trail(case_id)]
    assert actions.count("let.withdrawn") == 1
    assert "let.concluded" not in actions
    await uc.suspend(deps, REGIE, case_id, c.Suspend(reason="x", expected_resume=date(2026, 12, 9)))
    with pytest.raises(ForbiddenTransition):  # an escalation only while in progress
        await uc.escalate(
            deps, REGIE, case_id, c.Escalate(justification="x" * 10, question="again?")
        )


async def test_bridging_decisions_and_payments_update_the_case(deps: uc.Deps) -> None:
    case_id = await in_progress(deps)
    case = await uc.request_bridging(deps, REGIE, case_id, bridging())
    request_id = case.bridging[0]["request_id"]
    events = [
        bev.ApplicationReceived(
            application_id="a1",
            case_id=case_id,
            case_number=case.number,
            request_id=request_id,
            estimated_amount=Decimal("2500.00"),
        ),
        bev.ApplicationDecided(
            application_id="a1",
            case_id=case_id,
            approved=True,
            form="advance",
            amount=Decimal("2400.00"),
        ),
        bev.LedgerBooked(
            application_id="a1",
            case_id=case_id,
            entry_id="l1",
            kind="payment",
            amount=Decimal("1200.50"),
            budget_year=2026,
        ),
    ]
    envelopes = [new_event(e, subject="a1", source=BRIDGING) for e in events]
    for envelope in [*envelopes, envelopes[-1]]:  # the payment redelivered
        await dispatch(kafka.bridging_handlers(deps))(envelope)
    (item,) = (await uc.get_case(deps, REGIE, case_id)).bridging
    assert item["application_id"] == "a1"
    assert item["status"] == "paid"  # the case file shows the payment, not just approval
    assert item["approved_amount_cents"] == 240_000
    assert item["booked_cents"] == {"payment": 120_050}
    bad = new_event(
        lev.EscalationAdmissibility(escalation_id="e1", case_id=case_id, admitted=True),
        subject="e1",
        source=LET,
    )
    await dispatch(kafka.escalation_handlers(deps))(
        bad
    )  # no escalation on this case: nothing changes
    assert (await deps.repo.get(case_id)).escalation is None  # type: ignore[union-attr]
    with pytest.raises(RuleViolation, match="unknown organisation"):
        await uc.request_bridging(
            deps, REGIE, case_id, bridging().model_copy(update={"candidate_payers": ("x1", "uwv")})
        )


async def test_close_and_evaluate_emit_the_evaluation_with_server_given_ids(
    deps: uc.Deps,
) -> None:
    case_id = await in_progress(deps)
    await uc.close(at(deps, MONDAY + timedelta(days=30)), REGIE, case_id, c.Close(outcome="solved"))
    point = {
        "order": "2",
        "bottleneck": {"type": "cooperation"},
        "organisations": ["uwv", "szw"],
        "regulation_reference": "Participatiewet art. 18",
        "description": "ask the benefit office first",
    }
    with pytest.raises(RuleViolation, match="unknown organisation"):
        await uc.evaluate(
            deps,
            REGIE,
            case_id,
            c.Evaluate.model_validate({"learning_points": [{**point, "organisations": ["zz"]}]}),
        )
    case = await uc.evaluate(
        deps, REGIE, case_id, c.Evaluate.model_validate({"learning_points": [point, point]})
    )
    assert case.status == Status.EVALUATED
    ids = [p["id"] for p in case.learning_points]
    assert len(set(ids)) == 2
    doc = await deps.repo.store.get(case_id)
    assert doc is not None
    evaluated = [e for e in doc["_outbox"] if e["value"]["type"] == ev.CaseEvaluated.EVENT_TYPE]
    assert len(evaluated) == 1
    closed = [e for e in doc["_outbox"] if e["value"]["type"] == ev.CaseClosed.EVENT_TYPE]
    assert len(closed) == 1


async def test_avg_retention_anonymises_closed_cases_after_the_period(deps: uc.Deps) -> None:
    old = await in_progress(deps)
    await uc.add_note(deps, REGIE, old, c.Note(text="spoke with the mother"))
    await uc.close(deps, REGIE, old, c.Close(outcome="solved"))
    recent = await in_progress(deps)
    await uc.close(at(deps, MONDAY + timedelta(days=400)), REGIE, recent, c.Close(outcome="solved"))
    later = at(deps, MONDAY + timedelta(days=deps.retention_days + 1))
    assert await uc.anonymise_expired(later) == 1
    assert await uc.anonymise_expired(later) == 0
    doc = await deps.repo.store.get(old)
    assert doc is not None
    assert doc["household"]["reference"] == ANONYMISED
    assert doc["notes"] == []
    assert ev.CaseAnonymised.EVENT_TYPE in outbox_types_of(doc)
    raw = repr(doc)
    assert "hh-7f3a9c21" not in raw
    assert "mother" not in raw
    assert doc["_audit"][-1]["action"] == "case.anonymised"
    kept = await deps.repo.store.get(recent)
    assert kept is not None
    assert kept["household"]["reference"] == "hh-7f3a9c21"


async def test_a_rule_breaking_external_event_is_dead_lettered(deps: uc.Deps) -> None:
    case_id = await in_progress(deps)
    case = await uc.request_bridging(deps, REGIE, case_id, bridging())
    received = bev.ApplicationReceived(
        application_id="a1",
        case_id=case_id,
        case_number=case.number,
        request_id=case.bridging[0]["request_id"],
        estimated_amount=Decimal("2500.00"),
    )

    def broken(_: Any) -> list[Any]:
        raise RuleViolation("status", "broken")

    with pytest.raises(PermanentError):
        await uc.apply_external(
            deps, new_event(received, subject="a1", source=BRIDGING), case_id, "x", broken
        )
    unknown = new_event(
        received.model_copy(update={"case_id": "no-such-case"}), subject="a1", source=BRIDGING
    )
    await uc.apply_external(deps, unknown, "no-such-case", "x", broken)  # not ours: ignored


async def test_the_consulted_organisation_answers_its_own_question(deps: uc.Deps) -> None:
    case_id = await in_progress(deps)
    case = await uc.request_consultation(
        deps, REGIE, case_id, c.RequestConsultation(organisation="uwv", question="restart?")
    )
    asked = case.consultations[0].id
    uwv = Identity("uwv-dep", "uwv", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
    szw = Identity("szw-amb", "szw", frozenset({Role.AMBASSADOR.value}))
    ((found, consultation),) = await uc.consultations_for(deps, uwv)
    assert (found.id, consultation.id, consultation.question) == (case_id, asked, "restart?")
    assert consultation.asked_by == REGIE.actor  # so the organisation can call back
    assert found.number.startswith("LMM-")
    assert await uc.consultations_for(deps, szw) == []
    with pytest.raises(Forbidden):
        await uc.consultations_for(deps, REGIE)
    with pytest.raises(NotFound):  # not addressed to szw
        await uc.answer_consultation(deps, szw, case_id, asked, c.AnswerConsultation(answer="no"))
    with pytest.raises(NotFound):  # nor does uwv see the case file
        await uc.get_case(deps, uwv, case_id)
    answered = await uc.answer_consultation(
        deps, uwv, case_id, asked, c.AnswerConsultation(answer="from next month")
    )
    assert answered.consultations[0].answer == "from next month"
    assert answered.consultations[0].result == "on_time"
    assert await uc.consultations_for(deps, uwv) == []
    trail = await deps.repo.audit_trail(case_id)
    assert trail[-1]["actor"] == "uwv:uwv-dep"
    assert trail[-1]["action"] == "consultation.answered"
