"""Use cases of the Loket: async functions taking their dependencies as arguments.

Meaning is checked here (the register: who is a regievoerder, which organisations joined),
business rules in the domain. Every change is one atomic write of the case's state, its
events (outbox) and an audit entry with the old and new values.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events import cases as ev
from pmm_contracts.vocabulary import Role
from pmm_loket.adapters.repository import CaseFilter, CaseRepository
from pmm_loket.domain.model import (
    OPEN_STATUSES,
    Case,
    Consultation,
    Punctuality,
    Status,
    WorkingDays,
    case_number,
    check_bottleneck,
    late_limit,
    punctuality,
)
from pmm_loket.service import commands as c
from pmm_runtime.auth import Identity
from pmm_runtime.broker import PermanentError
from pmm_runtime.changes import Changes
from pmm_runtime.errors import (
    Conflict,
    Forbidden,
    NoSuchAggregate,
    NotFound,
    PlatformError,
    RuleViolation,
)
from pmm_runtime.mongo import Document
from pmm_runtime.readmodel import RegisterReadModel

STAFF = (Role.CASE_DIRECTOR, Role.PMM_STAFF)
CONSULTABLE = (Role.AMBASSADOR, Role.MAATWERK_PROFESSIONAL)
LEARNING_POINT_NS = uuid.UUID("5b0c7c1e-6a43-4a53-9d1f-0f6c6f2b8a11")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    repo: CaseRepository
    register: RegisterReadModel
    changes: Changes
    now: Callable[[], datetime] = _now
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
        await deps.repo.record_read(case_id, who.actor, deps.now())
    return case


async def audit_trail(deps: Deps, who: Identity, case_id: str) -> list[Document]:
    require_staff(who)
    await get_case(deps, who, case_id)  # reading the trail is itself a read of the file
    return await deps.repo.audit_trail(case_id)


# Writing -----------------------------------------------------------------------------------


async def _change(
    deps: Deps,
    who: Identity,
    case_id: str,
    action: str,
    change: Callable[[Case], list[EventData]],
    reason: str | None = None,
) -> Case:
    """A regievoerder's command on a case, through the runtime's change loop."""
    require_staff(who)
    await get_case(deps, who, case_id, audit_read=False)
    done = await deps.changes.apply(
        deps.repo, case_id, None, change, actor=who.actor, action=action, reason=reason
    )
    return done.aggregate


IDEMPOTENCY_NS = uuid.UUID("0b7f3f52-93a1-4c2e-8a57-3e0a4f7c9d61")
IDEMPOTENCY_FIELD = "Idempotency-Key"


@dataclass(frozen=True)
class Submitted:
    case: Case
    replayed: bool = False
    """The same submission was made before with this idempotency key: nothing new."""


def _submission_ids(who: Identity, cmd: c.SubmitCase, key: str) -> tuple[str, str]:
    """The case id a keyed submission gets (per submitter and key), and the command id that
    tells the same request from another one sent with the same key."""
    case_id = str(uuid.uuid5(IDEMPOTENCY_NS, f"{who.organisation}\n{who.subject}\n{key}"))
    body = cmd.model_dump_json().encode()
    return case_id, f"submit:{hashlib.sha256(body).hexdigest()[:32]}"


async def _replay(deps: Deps, case_id: str, command_id: str) -> Case | None:
    """The case an earlier request with this key created, if it was this same request."""
    document = await deps.repo.store.get(case_id)
    if document is None:
        return None
    if command_id not in (document.get("_applied") or []):
        raise RuleViolation(
            IDEMPOTENCY_FIELD, "this idempotency key was used before for another submission"
        )
    return deps.repo.load(document)


async def submit(
    deps: Deps, who: Identity, cmd: c.SubmitCase, *, idempotency_key: str | None = None
) -> Submitted:
    """Submit a case. With an idempotency key (the client's, one per submission) a retry of
    the same request (after a timeout or a 503) answers the case it created, once."""
    if not who.has_any(Role.MAATWERK_PROFESSIONAL):
        raise Forbidden("only a maatwerk professional submits a case")
    case_id, command_id = str(uuid.uuid4()), None
    if idempotency_key is not None:
        case_id, command_id = _submission_ids(who, cmd, idempotency_key)
        earlier = await _replay(deps, case_id, command_id)
        if earlier is not None:
            return Submitted(earlier, replayed=True)
    if not await deps.register.is_member(who.organisation):
        raise Forbidden(f"{who.organisation} has not joined the Maatwerkregister")
    for bottleneck in cmd.bottlenecks:
        check_bottleneck(bottleneck)
    for code in cmd.organisations_involved:
        if await deps.register.organisation(code) is None:
            raise RuleViolation(
                "organisations_involved", f"unknown organisation {code!r} in organisations_involved"
            )
    now = deps.now()
    number = case_number(now.year, await deps.repo.next_number(now.year))
    intake_due = deps.working_days.add(now.date(), deps.intake_days)
    case = Case(
        id=case_id,
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
    created = await deps.changes.create(
        deps.repo,
        case,
        [submitted],
        actor=who.actor,
        action="case.submitted",
        command_id=command_id,
    )
    if not created and command_id is not None:  # a retry with the same key came first
        earlier = await _replay(deps, case_id, command_id)
        if earlier is not None:
            return Submitted(earlier, replayed=True)
    return Submitted(case)


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
        raise RuleViolation(
            "case_director_id", f"{cmd.case_director_id!r} is not a regievoerder in the register"
        )
    availability = director.get("availability") or {}
    if not availability.get("available", True):
        deputy = availability.get("deputy_id")
        raise RuleViolation(
            "case_director_id",
            f"{cmd.case_director_id!r} is absent"
            + (f"; their deputy is {deputy!r}" if deputy else ""),
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
                "professional_id",
                f"{cmd.professional_id!r} is not an ambassador or maatwerk professional "
                f"of {cmd.organisation} in the register",
            )
    else:
        person = await _first_consultable(deps, cmd.organisation)
    availability = person.get("availability") or {}
    deputy = availability.get("deputy_id")
    if not availability.get("available", True) and deputy:
        return str(deputy), str(person["id"])
    return str(person["id"]), None


async def _first_consultable(deps: Deps, organisation: str) -> Document:
    """The organisation's first ambassador, else its first maatwerk professional (by id);
    when that one is absent without a deputy, the first available one after it. Read one
    at a time (``each_with_role``), so a large organisation costs only the ones looked at."""
    first: Document | None = None
    for role in CONSULTABLE:
        async for person in deps.register.each_with_role(role.value, organisation):
            availability = person.get("availability") or {}
            if first is None:
                first = person
                if availability.get("available", True) or availability.get("deputy_id"):
                    return person
            elif availability.get("available", True):
                return person
    if first is None:
        raise RuleViolation(
            "organisation",
            f"{organisation} has no ambassador or maatwerk professional in the register",
        )
    return first  # nobody available: the first, absent without a deputy


async def request_consultation(
    deps: Deps, who: Identity, case_id: str, cmd: c.RequestConsultation
) -> Case:
    require_staff(who)
    if not await deps.register.is_member(cmd.organisation):
        raise RuleViolation("organisation", f"{cmd.organisation!r} is not a joined organisation")
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
        asked_by=who.actor,
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
    done = await deps.changes.apply(
        deps.repo,
        case_id,
        None,
        lambda case: case.answer_consultation(consultation_id, cmd.answer, deps.today()),
        actor=who.actor,
        action="consultation.answered",
    )
    return done.aggregate


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
    return [
        (case, asked)
        for case in await deps.repo.with_open_consultations_for(who.organisation)
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
        lambda case: case.resume(deps.today(), cmd.reason),
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
            raise RuleViolation(
                "candidate_payers", f"unknown organisation {code!r} in candidate_payers"
            )

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
                    "learning_points",
                    f"unknown organisation or ministry {code!r} in a learning point",
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
    wanted: CaseFilter,
    *,
    skip: int = 0,
    limit: int = 50,
) -> tuple[int, list[Case]]:
    """The cases the caller may see that match ``wanted``: a page and the total. A maatwerk
    professional sees their own organisation's cases only, and searches by household
    reference or text only among those."""
    if not who.has_any(*STAFF):
        if not who.has_any(Role.MAATWERK_PROFESSIONAL):
            raise Forbidden("no access to cases")
        wanted = replace(wanted, organisation=who.organisation)
    return await deps.repo.search(wanted, deps.today(), skip=skip, limit=limit)


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


async def apply_external(
    deps: Deps,
    event: CloudEvent[Any],
    case_id: str,
    action: str,
    change: Callable[[Case], list[EventData]],
) -> None:
    """Apply another service's event to a case once (its id is the command id).

    An event about a case this Loket does not have, or that changes nothing (an earlier
    escalation's late answer), is ignored; one that breaks a rule is dead-lettered; a case
    that kept changing is retried by the consumer.
    """
    try:
        await deps.changes.apply(
            deps.repo,
            case_id,
            str(event.id),
            change,
            actor=f"service:{event.source.rsplit(':', 1)[-1]}",
            action=action,
        )
    except NoSuchAggregate:
        return
    except Conflict:
        raise
    except PlatformError as exc:
        raise PermanentError(f"{event.type} for case {case_id}: {exc}") from exc


# Deadlines and retention -------------------------------------------------------------------


async def scan_deadlines(deps: Deps) -> int:
    """Warn before each deadline passes and remind once it has (each once per due date).

    Only the cases the due-date index names are read (by ``_id``)."""
    today = deps.today()
    sent = 0
    for case_id in await deps.repo.due_for_warning(today):
        try:
            done = await deps.changes.apply(
                deps.repo,
                case_id,
                None,
                lambda case: case.deadline_warnings(today, deps.warn_days),
                actor="system:deadlines",
                action="deadline.warning",
            )
        except NoSuchAggregate:
            continue
        except Conflict:
            continue  # changed meanwhile: the next scan sees it
        if not done.changed:  # nothing due yet after all: keep the index entry right
            await deps.repo.written(done.aggregate)
        sent += len(done.events)
    return sent


async def anonymise_expired(deps: Deps) -> int:
    """AVG retention (DESIGN.md §4): strip case files closed longer than the period ago."""
    now = deps.now()
    cutoff = now - timedelta(days=deps.retention_days)
    done = 0
    for case in await deps.repo.ended_not_anonymised():
        ended = case.closed_at or case.triaged_at
        if ended is None or ended > cutoff:
            continue
        result = await deps.changes.apply(
            deps.repo,
            case.id,
            None,
            lambda fresh: fresh.anonymise(now),
            actor="system:retention",
            action="case.anonymised",
            reason=f"retention period of {deps.retention_days} days passed",
        )
        if result.changed:
            await deps.repo.scrub_audit(case.id)
            done += 1
    return done
