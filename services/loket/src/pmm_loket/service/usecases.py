"""Use cases of the Loket: async functions taking their dependencies as arguments."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pmm_contracts import new_event
from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events import bridging as bev
from pmm_contracts.events import cases as ev
from pmm_contracts.events import escalations as lev
from pmm_contracts.topics import LOKET_CASES
from pmm_contracts.vocabulary import Role
from pmm_loket.adapters.repository import CaseRepository
from pmm_loket.domain.model import (
    Case,
    Consultation,
    LoketError,
    Punctuality,
    RuleViolation,
    Status,
    WorkingDays,
    case_number,
    punctuality,
)
from pmm_loket.service import commands as c
from pmm_runtime.auth import Identity
from pmm_runtime.outbox import Outgoing, audit_entry
from pmm_runtime.readmodel import RegisterReadModel

STAFF = (Role.CASE_DIRECTOR, Role.PMM_STAFF)


class NotFound(LoketError):
    pass


class Forbidden(LoketError):
    pass


class Conflict(LoketError):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    repo: CaseRepository
    register: RegisterReadModel
    source: str
    now: Callable[[], datetime] = _now
    notify: Callable[[], None] = lambda: None
    working_days: WorkingDays = field(default_factory=WorkingDays)
    intake_days: int = 5
    consultation_days: int = 5
    case_weeks: int = 8
    warn_days: int = 2

    def today(self) -> date:
        return self.now().date()


# Access ------------------------------------------------------------------------------------


def can_see(who: Identity, case: Case) -> bool:
    return who.has_any(*STAFF) or who.organisation == case.submitting_organisation


def require_staff(who: Identity) -> None:
    if not who.has_any(*STAFF):
        raise Forbidden("requires the case_director (regievoerder) or pmm_staff role")


async def get_case(deps: Deps, who: Identity, case_id: str, *, audit_read: bool = True) -> Case:
    case = await deps.repo.get(case_id)
    if case is None or not can_see(who, case):
        raise NotFound(f"no case {case_id!r} for you")  # no hint that it exists
    if audit_read:
        await deps.repo.cases.record_read(case_id, audit_entry(actor=who.actor, action="case.read"))
    return case


# Writing -----------------------------------------------------------------------------------


def _outgoing(deps: Deps, case: Case, events: list[EventData]) -> list[Outgoing]:
    return [
        Outgoing(LOKET_CASES, new_event(e, subject=case.id, source=deps.source)) for e in events
    ]


async def _save(
    deps: Deps,
    who: Identity | str,
    case: Case,
    before: dict[str, Any],
    action: str,
    events: list[EventData],
    reason: str | None = None,
    caused_by: str | None = None,
) -> Case:
    expected = case.version
    case.version += 1
    after = {"status": case.status.value}
    actor = who.actor if isinstance(who, Identity) else who
    saved = await deps.repo.save(
        case,
        expected,
        _outgoing(deps, case, events),
        audit_entry(actor=actor, action=action, reason=reason, old=before, new=after),
        caused_by=caused_by,
    )
    if not saved:
        raise Conflict(f"case {case.number} changed meanwhile; reload and try again")
    deps.notify()
    return case


async def _change(
    deps: Deps,
    who: Identity,
    case_id: str,
    action: str,
    change: Callable[[Case], list[EventData]],
    reason: str | None = None,
    staff_only: bool = True,
) -> Case:
    if staff_only:
        require_staff(who)
    case = await get_case(deps, who, case_id, audit_read=False)
    before = {"status": case.status.value}
    events = change(case)
    return await _save(deps, who, case, before, action, events, reason)


async def submit(deps: Deps, who: Identity, cmd: c.SubmitCase) -> Case:
    if not who.has_any(Role.MAATWERK_PROFESSIONAL):
        raise Forbidden("only a maatwerk professional submits a case")
    if not await deps.register.is_member(who.organisation):
        raise Forbidden(f"{who.organisation} has not joined the Maatwerkregister")
    for code in cmd.organisations_involved:
        if await deps.register.organisation(code) is None:
            raise RuleViolation(f"unknown organisation {code!r} in organisations_involved")
    now = deps.now()
    number = case_number(now.year, await deps.repo.next_number(now.year))
    case = Case(
        id=str(uuid.uuid4()),
        number=number,
        status=Status.SUBMITTED,
        submitting_organisation=who.organisation,
        submitted_by=who.subject,
        submitter_kind=cmd.submitter_kind.value,
        household=cmd.household.model_dump(),
        life_domains=[d.value for d in cmd.life_domains],
        bottlenecks=[b.model_dump(mode="json") for b in cmd.bottlenecks],
        organisations_involved=list(cmd.organisations_involved),
        tried_locally=cmd.tried_locally,
        question=cmd.question,
        urgency=cmd.urgency,
        legal_basis=cmd.legal_basis
        + (f": {cmd.legal_basis_reference}" if cmd.legal_basis_reference else ""),
        submitted_at=now,
        intake_due=deps.working_days.add(now.date(), deps.intake_days),
    )
    submitted = ev.CaseSubmitted(
        case_id=case.id,
        case_number=number,
        submitting_organisation=who.organisation,
        submitter_kind=cmd.submitter_kind,
        life_domains=cmd.life_domains,
        bottlenecks=cmd.bottlenecks,
        organisations_involved=cmd.organisations_involved,
        urgency=cmd.urgency,
        adults=cmd.household.adults,
        children=cmd.household.children,
        submitted_at=now,
        intake_due=case.intake_due,
    )
    await deps.repo.add(
        case,
        _outgoing(deps, case, [submitted]),
        audit_entry(actor=who.actor, action="case.submitted", new={"number": number}),
    )
    deps.notify()
    return case


async def triage(deps: Deps, who: Identity, case_id: str, cmd: c.Triage) -> Case:
    return await _change(
        deps,
        who,
        case_id,
        "case.triaged",
        lambda case: case.triage(
            cmd.accepted, cmd.decline_reason, deps.today(), deps.working_days, deps.case_weeks
        ),
        reason=cmd.decline_reason.value if cmd.decline_reason else None,
    )


async def assign(deps: Deps, who: Identity, case_id: str, cmd: c.Assign) -> Case:
    director = await deps.register.professional(cmd.case_director_id)
    if director is None or Role.CASE_DIRECTOR.value not in director.get("roles", []):
        raise RuleViolation(f"{cmd.case_director_id!r} is not a regievoerder in the register")
    return await _change(
        deps, who, case_id, "case.assigned", lambda case: case.assign(cmd.case_director_id)
    )


async def request_consultation(
    deps: Deps, who: Identity, case_id: str, cmd: c.RequestConsultation
) -> Case:
    if not await deps.register.is_member(cmd.organisation):
        raise RuleViolation(f"{cmd.organisation!r} is not a joined organisation")
    due = cmd.due or deps.working_days.add(deps.today(), deps.consultation_days)
    consultation = Consultation(
        id=f"c-{uuid.uuid4().hex[:10]}",
        organisation=cmd.organisation,
        question=cmd.question,
        due=due,
        professional_id=cmd.professional_id,
    )
    return await _change(
        deps,
        who,
        case_id,
        "consultation.requested",
        lambda case: case.request_consultation(consultation),
    )


async def answer_consultation(
    deps: Deps, who: Identity, case_id: str, consultation_id: str, cmd: c.AnswerConsultation
) -> Case:
    return await _change(
        deps,
        who,
        case_id,
        "consultation.answered",
        lambda case: case.answer_consultation(consultation_id, cmd.answer, deps.today()),
    )


async def add_note(deps: Deps, who: Identity, case_id: str, cmd: c.Note) -> Case:
    def note(case: Case) -> list[EventData]:
        case.notes.append({"at": deps.now().isoformat(), "by": who.actor, "text": cmd.text})
        return []

    return await _change(deps, who, case_id, "case.note", note)


async def suspend(deps: Deps, who: Identity, case_id: str, cmd: c.Suspend) -> Case:
    return await _change(
        deps,
        who,
        case_id,
        "case.suspended",
        lambda case: case.suspend(cmd.reason, cmd.expected_resume),
        reason=cmd.reason,
    )


async def resume(deps: Deps, who: Identity, case_id: str) -> Case:
    return await _change(deps, who, case_id, "case.resumed", lambda case: case.resume())


async def reopen(deps: Deps, who: Identity, case_id: str, cmd: c.Reason) -> Case:
    if not who.has_any(Role.CASE_DIRECTOR):
        raise Forbidden("only a regievoerder reopens a case")
    return await _change(
        deps, who, case_id, "case.reopened", lambda case: case.reopen(cmd.reason), reason=cmd.reason
    )


async def escalate(deps: Deps, who: Identity, case_id: str, cmd: c.Escalate) -> Case:
    request_id = str(uuid.uuid4())

    def go(case: Case) -> list[EventData]:
        organisations = list(cmd.organisations or case.organisations_involved)
        return case.escalate(
            request_id, organisations, cmd.justification, cmd.question, who.subject
        )

    return await _change(deps, who, case_id, "case.escalation_requested", go)


async def request_bridging(deps: Deps, who: Identity, case_id: str, cmd: c.RequestBridging) -> Case:
    def go(case: Case) -> list[EventData]:
        return case.request_bridging(
            ev.BridgingRequested(
                case_id=case.id,
                case_number=case.number,
                request_id=str(uuid.uuid4()),
                provision=cmd.provision,
                provider=cmd.provider,
                estimated_amount=cmd.estimated_amount,
                candidate_payers=cmd.candidate_payers,
                legal_frameworks=cmd.legal_frameworks,
                dispute=cmd.dispute,
                urgency=case.urgency,
                settle_attempt=cmd.settle_attempt,
                requested_by=who.subject,
            )
        )

    return await _change(deps, who, case_id, "case.bridging_requested", go)


async def close(deps: Deps, who: Identity, case_id: str, cmd: c.Close) -> Case:
    return await _change(
        deps,
        who,
        case_id,
        "case.closed",
        lambda case: case.close(cmd.outcome, cmd.reason, deps.now()),
        reason=cmd.reason,
    )


async def evaluate(deps: Deps, who: Identity, case_id: str, cmd: c.Evaluate) -> Case:
    return await _change(
        deps, who, case_id, "case.evaluated", lambda case: case.evaluate(list(cmd.learning_points))
    )


# Reading -----------------------------------------------------------------------------------


async def list_cases(
    deps: Deps,
    who: Identity,
    *,
    status: Status | None = None,
    case_director_id: str | None = None,
    timeliness: Punctuality | None = None,
) -> list[Case]:
    query: dict[str, Any] = {}
    if not who.has_any(*STAFF):
        if not who.has_any(Role.MAATWERK_PROFESSIONAL):
            raise Forbidden("no access to cases")
        query["submitting_organisation"] = who.organisation
    if status:
        query["status"] = status.value
    if case_director_id:
        query["case_director_id"] = case_director_id
    found = await deps.repo.find(query)
    if timeliness:
        found = [case for case in found if case_timeliness(case, deps.today()) == timeliness]
    return found


def case_timeliness(case: Case, today: date) -> Punctuality:
    end = case.closed_at.date() if case.closed_at else today
    due = case.case_due or case.intake_due
    return punctuality(case.submitted_at.date(), due, end)


# Events from other services --------------------------------------------------------------


async def on_escalation_event(deps: Deps, event: CloudEvent[Any]) -> None:
    data = event.data
    detail: dict[str, Any]
    if isinstance(data, lev.EscalationAdmissibility):
        status, detail = ("admitted" if data.admitted else "refused"), {"reason": data.reason}
    elif isinstance(data, lev.EscalationConcluded):
        status, detail = "concluded", {"outcome": data.outcome.value, "summary": data.summary}
    elif isinstance(data, lev.EscalationWithdrawn):
        status, detail = (
            "withdrawn",
            {"solved_under_pressure": data.solved_under_pressure, "reason": data.reason},
        )
    elif isinstance(data, lev.EscalationOpened):
        status, detail = "opened", {"escalation_id": data.escalation_id}
    else:
        return
    await _apply_external(
        deps,
        data.case_id,
        event,
        "let." + status,
        lambda case: case.escalation_update(status, detail),
    )


async def on_bridging_event(deps: Deps, event: CloudEvent[Any]) -> None:
    data = event.data
    detail: dict[str, Any]
    request_id: str | None = None
    if isinstance(data, bev.ApplicationReceived):
        detail, request_id = {"status": "received"}, data.request_id
    elif isinstance(data, bev.ApplicationDecided):
        detail = {
            "status": "approved" if data.approved else "rejected",
            "form": data.form.value if data.form else None,
            "amount": str(data.amount) if data.amount is not None else None,
        }
    elif isinstance(data, bev.LedgerBooked):
        detail = {"last_booking": data.kind.value, "last_amount": str(data.amount)}
    elif isinstance(data, bev.ApplicationClosed):
        detail = {"status": data.status}
    else:
        return

    def update(case: Case) -> list[EventData]:
        case.bridging_update(request_id, data.application_id, detail)
        return []

    await _apply_external(deps, data.case_id, event, "overbrugging." + type(data).__name__, update)


async def _apply_external(
    deps: Deps,
    case_id: str,
    event: CloudEvent[Any],
    action: str,
    change: Callable[[Case], list[EventData]],
) -> None:
    """Apply another service's event once (``caused_by``), retrying on a version race."""
    for _ in range(5):
        case = await deps.repo.get(case_id)
        if case is None:
            return  # not ours (or anonymised): nothing to update
        doc = await deps.repo.cases.collection.find_one({"_id": case_id}, {"_applied": 1})
        if doc and str(event.id) in doc.get("_applied", []):
            return  # a redelivery changes nothing
        before = {"status": case.status.value}
        events = change(case)
        try:
            await _save(
                deps,
                f"service:{event.source.rsplit(':', 1)[-1]}",
                case,
                before,
                action,
                events,
                caused_by=str(event.id),
            )
            return
        except Conflict:
            continue
    raise Conflict(f"case {case_id} kept changing while applying {event.type}")


# Deadlines ---------------------------------------------------------------------------------


async def scan_deadlines(deps: Deps) -> int:
    today = deps.today()
    open_statuses = [
        s.value
        for s in (
            Status.SUBMITTED,
            Status.ACCEPTED,
            Status.IN_PROGRESS,
            Status.ON_HOLD,
            Status.ESCALATED,
        )
    ]
    sent = 0
    for case in await deps.repo.find({"status": {"$in": open_statuses}}, limit=10_000):
        events = case.deadline_warnings(today, deps.warn_days)
        if events:
            before = {"status": case.status.value}
            try:
                await _save(deps, "system", case, before, "deadline.warning", events)
            except Conflict:
                continue  # next scan
            sent += len(events)
    return sent
