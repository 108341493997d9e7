"""Use cases of the Loket: async functions taking their dependencies as arguments.

Meaning is checked here (the register: who is a regievoerder, which organisations joined),
business rules in the domain. Every change is one atomic write of the case's state, its
events (outbox) and an audit entry with the old and new values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pmm_contracts import new_event
from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events import bridging as bev
from pmm_contracts.events import cases as ev
from pmm_contracts.events import escalations as lev
from pmm_contracts.topics import LOKET_CASES
from pmm_contracts.vocabulary import Role
from pmm_loket.adapters.repository import CaseRepository, case_fields, timeliness_query
from pmm_loket.domain.model import (
    HANDLING_STATUSES,
    OPEN_STATUSES,
    Case,
    Consultation,
    LoketError,
    Punctuality,
    RuleViolation,
    Status,
    WorkingDays,
    case_number,
    check_bottleneck,
    late_limit,
    punctuality,
    to_cents,
)
from pmm_loket.service import commands as c
from pmm_runtime.auth import Identity
from pmm_runtime.broker import PermanentError
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import Outgoing, audit_entry
from pmm_runtime.readmodel import RegisterReadModel

STAFF = (Role.CASE_DIRECTOR, Role.PMM_STAFF)
CONSULTABLE = (Role.AMBASSADOR, Role.MAATWERK_PROFESSIONAL)
LEARNING_POINT_NS = uuid.UUID("5b0c7c1e-6a43-4a53-9d1f-0f6c6f2b8a11")


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
    retention_days: int = 730

    def today(self) -> date:
        return self.now().date()


# Access ------------------------------------------------------------------------------------


def can_see(who: Identity, case: Case) -> bool:
    """Regievoerders and PMM staff see every case; a maatwerk professional those of their
    own organisation; nobody else any."""
    if who.has_any(*STAFF):
        return True
    return (
        who.has_any(Role.MAATWERK_PROFESSIONAL) and who.organisation == case.submitting_organisation
    )


def require_staff(who: Identity) -> None:
    if not who.has_any(*STAFF):
        raise Forbidden("requires the case_director (regievoerder) or pmm_staff role")


async def get_case(deps: Deps, who: Identity, case_id: str, *, audit_read: bool = True) -> Case:
    case = await deps.repo.get(case_id)
    if case is None or not can_see(who, case):
        raise NotFound(f"no case {case_id!r} for you")  # no hint that it exists
    if audit_read:
        await deps.repo.cases.record_read(
            case_id, audit_entry(actor=who.actor, action="case.read", at=deps.now())
        )
    return case


async def audit_trail(deps: Deps, who: Identity, case_id: str) -> list[Document]:
    require_staff(who)
    await get_case(deps, who, case_id)  # reading the trail is itself a read of the file
    return await deps.repo.audit_trail(case_id)


# Writing -----------------------------------------------------------------------------------


def _outgoing(deps: Deps, case: Case, events: list[EventData]) -> list[Outgoing]:
    return [
        Outgoing(LOKET_CASES, new_event(e, subject=case.id, source=deps.source)) for e in events
    ]


def changes(before: Document, after: Document) -> tuple[Document, Document]:
    """Old and new values of what changed; for lists only the entries removed and added."""
    old: Document = {}
    new: Document = {}
    for key in sorted(set(before) | set(after)):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        if isinstance(was, list) and isinstance(now, list):
            old[key] = [x for x in was if x not in now]
            new[key] = [x for x in now if x not in was]
        else:
            old[key], new[key] = was, now
    return old, new


async def _save(
    deps: Deps,
    actor: str,
    case: Case,
    before: Document,
    action: str,
    events: list[EventData],
    reason: str | None = None,
    caused_by: str | None = None,
) -> Case:
    expected = case.version
    old, new = changes(before, case_fields(case))
    saved = await deps.repo.save(
        case,
        expected,
        _outgoing(deps, case, events),
        audit_entry(actor=actor, action=action, reason=reason, old=old, new=new, at=deps.now()),
        caused_by=caused_by,
    )
    if not saved:
        raise Conflict(f"case {case.number} changed meanwhile; reload and try again")
    case.version = expected + 1
    deps.notify()
    return case


async def _change(
    deps: Deps,
    who: Identity,
    case_id: str,
    action: str,
    change: Callable[[Case], list[EventData]],
    reason: str | None = None,
) -> Case:
    require_staff(who)
    case = await get_case(deps, who, case_id, audit_read=False)
    before = case_fields(case)
    events = change(case)
    return await _save(deps, who.actor, case, before, action, events, reason)


async def submit(deps: Deps, who: Identity, cmd: c.SubmitCase) -> Case:
    if not who.has_any(Role.MAATWERK_PROFESSIONAL):
        raise Forbidden("only a maatwerk professional submits a case")
    if not await deps.register.is_member(who.organisation):
        raise Forbidden(f"{who.organisation} has not joined the Maatwerkregister")
    for bottleneck in cmd.bottlenecks:
        check_bottleneck(bottleneck)
    for code in cmd.organisations_involved:
        if await deps.register.organisation(code) is None:
            raise RuleViolation(f"unknown organisation {code!r} in organisations_involved")
    now = deps.now()
    number = case_number(now.year, await deps.repo.next_number(now.year))
    intake_due = deps.working_days.add(now.date(), deps.intake_days)
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
        intake_due=intake_due,
        intake_limit=late_limit(now.date(), intake_due),
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
        audit_entry(
            actor=who.actor,
            action="case.submitted",
            new={"number": number, "status": case.status.value},
            at=now,
        ),
    )
    deps.notify()
    return case


async def triage(deps: Deps, who: Identity, case_id: str, cmd: c.Triage) -> Case:
    return await _change(
        deps,
        who,
        case_id,
        "case.triaged",
        lambda case: case.triage(cmd.accepted, cmd.decline_reason, deps.now(), deps.case_weeks),
        reason=cmd.decline_reason.value if cmd.decline_reason else None,
    )


async def assign(deps: Deps, who: Identity, case_id: str, cmd: c.Assign) -> Case:
    require_staff(who)
    director = await deps.register.professional(cmd.case_director_id)
    if director is None or Role.CASE_DIRECTOR.value not in director.get("roles", []):
        raise RuleViolation(f"{cmd.case_director_id!r} is not a regievoerder in the register")
    availability = director.get("availability") or {}
    if not availability.get("available", True):
        deputy = availability.get("deputy_id")
        raise RuleViolation(
            f"{cmd.case_director_id!r} is absent"
            + (f"; their deputy is {deputy!r}" if deputy else "")
        )
    return await _change(
        deps,
        who,
        case_id,
        "case.assigned",
        lambda case: case.assign(cmd.case_director_id),
        reason=cmd.reason,
    )


async def _consultee(deps: Deps, cmd: c.RequestConsultation) -> tuple[str, str | None]:
    """The professional asked: the one named, their deputy when absent, else the
    organisation's ambassador or maatwerk professional from the register."""
    if cmd.professional_id is not None:
        person = await deps.register.professional(cmd.professional_id)
        if (
            person is None
            or person.get("organisation") != cmd.organisation
            or not set(person.get("roles", [])) & {r.value for r in CONSULTABLE}
        ):
            raise RuleViolation(
                f"{cmd.professional_id!r} is not an ambassador or maatwerk professional "
                f"of {cmd.organisation} in the register"
            )
    else:
        candidates = [
            p
            for role in CONSULTABLE
            for p in await deps.register.with_role(role.value, cmd.organisation)
        ]
        if not candidates:
            raise RuleViolation(
                f"{cmd.organisation} has no ambassador or maatwerk professional in the register"
            )
        person = candidates[0]  # the ambassador first
        first = person.get("availability") or {}
        if not first.get("available", True) and not first.get("deputy_id"):
            available = [
                p for p in candidates if (p.get("availability") or {}).get("available", True)
            ]
            person = (available or candidates)[0]
    availability = person.get("availability") or {}
    deputy = availability.get("deputy_id")
    if not availability.get("available", True) and deputy:
        return str(deputy), str(person["id"])
    return str(person["id"]), None


async def request_consultation(
    deps: Deps, who: Identity, case_id: str, cmd: c.RequestConsultation
) -> Case:
    require_staff(who)
    if not await deps.register.is_member(cmd.organisation):
        raise RuleViolation(f"{cmd.organisation!r} is not a joined organisation")
    professional_id, deputy_for = await _consultee(deps, cmd)
    today = deps.today()
    consultation = Consultation(
        id=f"c-{uuid.uuid4().hex[:12]}",
        organisation=cmd.organisation,
        question=cmd.question,
        requested_on=today,
        due=cmd.due or deps.working_days.add(today, deps.consultation_days),
        professional_id=professional_id,
        deputy_for=deputy_for,
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
    """Recorded by the regievoerder, or given by the consulted organisation's ambassador or
    maatwerk professional themselves (who see the question, not the case file)."""
    case = await deps.repo.get(case_id)
    if case is None or not _may_answer(who, case, consultation_id):
        raise NotFound(f"no consultation {consultation_id!r} on case {case_id!r} for you")
    before = case_fields(case)
    events = case.answer_consultation(consultation_id, cmd.answer, deps.today())
    return await _save(deps, who.actor, case, before, "consultation.answered", events)


def _may_answer(who: Identity, case: Case, consultation_id: str) -> bool:
    if who.has_any(*STAFF):
        return True
    asked = next((k for k in case.consultations if k.id == consultation_id), None)
    return (
        asked is not None and who.organisation == asked.organisation and who.has_any(*CONSULTABLE)
    )


async def consultations_for(deps: Deps, who: Identity) -> list[tuple[Case, Consultation]]:
    """The open consultations addressed to the caller's organisation."""
    if not who.has_any(*CONSULTABLE):
        raise Forbidden("requires the ambassador or maatwerk_professional role")
    query = {
        "consultations.organisation": who.organisation,
        "status": {"$in": sorted(s.value for s in HANDLING_STATUSES)},
    }
    return [
        (case, asked)
        for case in await deps.repo.find(query, limit=10_000)
        for asked in case.consultations
        if asked.organisation == who.organisation and asked.answer is None
    ]


async def add_note(deps: Deps, who: Identity, case_id: str, cmd: c.Note) -> Case:
    return await _change(
        deps, who, case_id, "case.note", lambda case: case.add_note(cmd.text, who.actor, deps.now())
    )


async def suspend(deps: Deps, who: Identity, case_id: str, cmd: c.Suspend) -> Case:
    return await _change(
        deps,
        who,
        case_id,
        "case.suspended",
        lambda case: case.suspend(cmd.reason, cmd.expected_resume, deps.today()),
        reason=cmd.reason,
    )


async def resume(deps: Deps, who: Identity, case_id: str, cmd: c.Resume) -> Case:
    return await _change(
        deps,
        who,
        case_id,
        "case.resumed",
        lambda case: case.resume(cmd.reason),
        reason=cmd.reason,
    )


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

    return await _change(
        deps, who, case_id, "case.escalation_requested", go, reason=cmd.justification
    )


async def request_bridging(deps: Deps, who: Identity, case_id: str, cmd: c.RequestBridging) -> Case:
    for code in cmd.candidate_payers:
        if await deps.register.organisation(code) is None:
            raise RuleViolation(f"unknown organisation {code!r} in candidate_payers")

    def go(case: Case) -> list[EventData]:
        request = ev.BridgingRequested(
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
        return case.request_bridging(request, deps.today())

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
    for point in cmd.learning_points:
        for code in point.organisations:
            if await deps.register.organisation(code) is None:
                raise RuleViolation(
                    f"unknown organisation or ministry {code!r} in a learning point"
                )
    points = [
        ev.LearningPoint(
            id=str(uuid.uuid5(LEARNING_POINT_NS, f"{case_id}:{n}")),
            **point.model_dump(),
        )
        for n, point in enumerate(cmd.learning_points, start=1)
    ]
    return await _change(deps, who, case_id, "case.evaluated", lambda case: case.evaluate(points))


# Reading -----------------------------------------------------------------------------------


async def list_cases(
    deps: Deps,
    who: Identity,
    *,
    status: Status | None = None,
    case_director_id: str | None = None,
    open_only: bool = False,
    timeliness: Punctuality | None = None,
    deadline: str = "case",
    limit: int = 100,
    offset: int = 0,
) -> list[Case]:
    query: dict[str, Any] = {}
    if not who.has_any(*STAFF):
        if not who.has_any(Role.MAATWERK_PROFESSIONAL):
            raise Forbidden("no access to cases")
        query["submitting_organisation"] = who.organisation
    if status:
        query["status"] = status.value
    elif open_only:
        query["status"] = {"$in": sorted(s.value for s in OPEN_STATUSES)}
    if case_director_id:
        query["case_director_id"] = case_director_id
    today = deps.today()
    if timeliness and deadline in ("intake", "case"):
        query.update(timeliness_query(deadline, timeliness, today))
    elif timeliness:  # consultations: a case with at least one in that state
        query["consultations"] = {"$ne": []}
        found = await deps.repo.find(query, limit=100_000)
        hits = [
            case
            for case in found
            if any(c.punctuality(today) == timeliness for c in case.consultations)
        ]
        return hits[offset : offset + limit]
    return await deps.repo.find(query, limit=limit, skip=offset)


def case_timeliness(case: Case, today: date) -> dict[str, str | None]:
    """Punctuality of each deadline: the final result, or where it stands today."""
    intake = (
        case.intake_result or punctuality(case.submitted_at.date(), case.intake_due, today).value
    )
    running: str | None = None
    if case.case_result:
        running = case.case_result
    elif case.case_due and case.triaged_at and case.status in OPEN_STATUSES:
        running = punctuality(case.triaged_at.date(), case.case_due, today).value
    return {
        "intake": intake,
        "case": running,
        "consultations": _worst([c.punctuality(today).value for c in case.consultations]),
    }


def _worst(results: list[str]) -> str | None:
    order = [p.value for p in Punctuality]
    return max(results, key=order.index) if results else None


# Events from other services --------------------------------------------------------------


async def on_escalation_event(deps: Deps, event: CloudEvent[Any]) -> None:
    data = event.data
    detail: dict[str, Any] = {}
    request_id: str | None = None
    if isinstance(data, lev.EscalationOpened):
        status, request_id = "opened", data.request_id
    elif isinstance(data, lev.EscalationAdmissibility):
        status, detail = ("admitted" if data.admitted else "refused"), {"reason": data.reason}
    elif isinstance(data, lev.EscalationConcluded):
        status, detail = "concluded", {"outcome": data.outcome.value, "summary": data.summary}
    elif isinstance(data, lev.EscalationWithdrawn):
        status, detail = (
            "withdrawn",
            {"solved_under_pressure": data.solved_under_pressure, "reason": data.reason},
        )
    else:
        return  # sessions and agreements are the LET's own business
    await _apply_external(
        deps,
        data.case_id,
        event,
        "let." + status,
        lambda case: case.escalation_update(data.escalation_id, status, detail, request_id),
    )


async def on_bridging_event(deps: Deps, event: CloudEvent[Any]) -> None:
    data = event.data
    detail: dict[str, Any] = {}
    request_id: str | None = None
    booking: tuple[str, int] | None = None
    if isinstance(data, bev.ApplicationReceived):
        detail, request_id = {"status": "received"}, data.request_id
    elif isinstance(data, bev.ApplicationDecided):
        detail = {
            "status": "approved" if data.approved else "rejected",
            "form": data.form.value if data.form else None,
            "approved_amount_cents": to_cents(data.amount) if data.amount is not None else None,
            "decision_reason": data.reason,
        }
    elif isinstance(data, bev.LedgerBooked):
        booking = (data.kind.value, to_cents(data.amount))
    elif isinstance(data, bev.ResponsiblePartyDetermined):
        detail = {"responsible_party": data.responsible_party}
    elif isinstance(data, bev.RecoveryRequested):
        detail = {"recovery_requested_cents": to_cents(data.amount)}
    elif isinstance(data, bev.ApplicationClosed):
        detail = {"status": data.status}
    else:
        return
    await _apply_external(
        deps,
        data.case_id,
        event,
        "overbrugging." + event.type.rsplit(".", 1)[-1],
        lambda case: case.bridging_update(
            data.application_id, detail, request_id=request_id, booking=booking
        ),
    )


async def _apply_external(
    deps: Deps,
    case_id: str,
    event: CloudEvent[Any],
    action: str,
    change: Callable[[Case], list[EventData]],
) -> None:
    """Apply another service's event once (``caused_by``), retrying on a version race.

    An event about a case this Loket does not have, or that changes nothing (an earlier
    escalation's late answer), is ignored; one that breaks a rule is dead-lettered.
    """
    for _ in range(5):
        case = await deps.repo.get(case_id)
        if case is None:
            return
        if await deps.repo.applied(case_id, str(event.id)):
            return  # a redelivery changes nothing
        before = case_fields(case)
        try:
            events = change(case)
        except LoketError as exc:
            raise PermanentError(f"{event.type} for case {case_id}: {exc}") from exc
        if not events and not any(changes(before, case_fields(case))):
            return
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


# Deadlines and retention -------------------------------------------------------------------


async def scan_deadlines(deps: Deps) -> int:
    """Warn before each deadline passes and remind once it has (each once per due date)."""
    today = deps.today()
    sent = 0
    query = {"status": {"$in": sorted(s.value for s in OPEN_STATUSES)}}
    for case in await deps.repo.find(query, limit=1_000_000):
        before = case_fields(case)
        events = case.deadline_warnings(today, deps.warn_days)
        if events:
            try:
                await _save(deps, "system:deadlines", case, before, "deadline.warning", events)
            except Conflict:
                continue  # changed meanwhile: the next scan sees it
            sent += len(events)
    return sent


async def anonymise_expired(deps: Deps) -> int:
    """AVG retention (DESIGN.md §4): strip case files closed longer than the period ago."""
    cutoff = deps.now() - timedelta(days=deps.retention_days)
    query = {
        "status": {"$in": [Status.CLOSED.value, Status.EVALUATED.value, Status.DECLINED.value]},
        "anonymised_at": None,
    }
    done = 0
    for case in await deps.repo.find(query, limit=1_000_000):
        ended = case.closed_at or case.triaged_at
        if ended is None or ended > cutoff:
            continue
        events = case.anonymise(deps.now())
        saved = await deps.repo.save(
            case,
            case.version,
            _outgoing(deps, case, events),
            audit_entry(
                actor="system:retention",
                action="case.anonymised",
                reason=f"retention period of {deps.retention_days} days passed",
                at=deps.now(),
            ),
            scrub_audit=True,
        )
        if saved:
            deps.notify()
            done += 1
    return done
