"""Use cases of the LET: async functions taking their dependencies as arguments.

Every change goes through the runtime's change loop (``Changes.apply``): it reads the
escalation, lets the domain check and apply the change, and writes the new state, its
events (outbox) and one audit entry in one conditional single-document update; a
concurrent change is retried on the fresh state, so the domain's rules are checked again.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

from pydantic import BaseModel

from pmm_contracts.envelope import EventData
from pmm_contracts.events.cases import EscalationRequested
from pmm_contracts.vocabulary import Role
from pmm_let.adapters.repository import EscalationRepository
from pmm_let.domain.model import (
    OPEN_STATUSES,
    Escalation,
    Invitation,
    Status,
    is_available,
    propose_invitations,
)
from pmm_let.service import commands as c
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Changes
from pmm_runtime.errors import Conflict, Forbidden, NotFound, RuleViolation
from pmm_runtime.http import PageQuery
from pmm_runtime.logging import get_logger
from pmm_runtime.mongo import Document

log = get_logger(__name__)

SYSTEM = "system:let"
LOKET = "service:loket"


class Register(Protocol):
    """What the LET needs of the register read model (``RegisterReadModel``)."""

    async def professional(self, professional_id: str) -> Document | None: ...

    async def with_role(self, role: str, organisation: str) -> list[Document]: ...


@dataclass(frozen=True)
class Deps:
    repo: EscalationRepository
    register: Register
    changes: Changes
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    scan_batch: int = 200

    def today(self) -> date:
        return self.now().date()


# Access ------------------------------------------------------------------------------------

CHANGERS = (Role.LET_CHAIR, Role.PMM_STAFF)


def require_changer(who: Identity) -> None:
    if not who.has_any(*CHANGERS):
        raise Forbidden("only the LET chair and PMM staff may change an escalation")


def require_chair(who: Identity) -> None:
    if not who.has_any(Role.LET_CHAIR):
        raise Forbidden("only the LET chair decides on admissibility")


def can_read(who: Identity, escalation: Escalation) -> bool:
    """The chair and PMM staff read every escalation; an executive only those of their
    own organisation."""
    if who.has_any(*CHANGERS):
        return True
    return who.has_any(Role.EXECUTIVE) and escalation.visible_to(who.organisation)


def require_reader(who: Identity) -> None:
    if not who.has_any(*CHANGERS, Role.EXECUTIVE):
        raise Forbidden("only the LET chair, PMM staff and executives may read escalations")


async def get(deps: Deps, who: Identity, escalation_id: str) -> Escalation:
    require_reader(who)
    escalation = await deps.repo.get(escalation_id)
    if escalation is None or not can_read(who, escalation):
        # Not 403: an executive of another organisation does not learn that it exists.
        raise NotFound(f"no escalation {escalation_id!r}")
    return escalation


async def audit_trail(
    deps: Deps, who: Identity, escalation_id: str, paging: PageQuery
) -> tuple[int, list[Document]]:
    """One page of the audit trail, oldest first (the trail lives in the escalation)."""
    require_changer(who)
    trail = await deps.repo.audit(escalation_id)
    if trail is None:
        raise NotFound(f"no escalation {escalation_id!r}")
    return len(trail), trail[paging.skip : paging.skip + paging.page_size]


async def search(
    deps: Deps,
    who: Identity,
    paging: PageQuery,
    *,
    status: Status | None = None,
    case_id: str | None = None,
) -> tuple[int, list[Escalation]]:
    """The escalations the caller may read, newest first, optionally of one status or
    one case."""
    require_reader(who)
    return await deps.repo.search(
        status=status,
        case_id=case_id,
        organisation=None if who.has_any(*CHANGERS) else who.organisation,
        skip=paging.skip,
        limit=paging.page_size,
    )


# Writing -----------------------------------------------------------------------------------


async def _apply(
    deps: Deps,
    who: Identity,
    escalation_id: str,
    action: str,
    change: Callable[[Escalation], Sequence[EventData]],
    *,
    reason: str | None = None,
) -> Escalation:
    require_changer(who)
    done = await deps.changes.apply(
        deps.repo, escalation_id, None, change, actor=who.actor, action=action, reason=reason
    )
    return done.aggregate


# The Loket's request -----------------------------------------------------------------------


async def open_escalation(deps: Deps, request: EscalationRequested, *, caused_by: str) -> bool:
    """Open an escalation from the Loket's request (``caused_by``: the event's id).

    The id is derived from the request id, so a replayed request (same event, or the same
    request in a new envelope) creates nothing new. True when one was opened.
    """
    escalation, opened = Escalation.open(request, deps.now())
    created = await deps.changes.create(
        deps.repo,
        escalation,
        [opened],
        actor=LOKET,
        action="escalation.opened",
        command_id=caused_by,
    )
    if created:
        log.info("escalation opened", escalation_id=escalation.id, case_id=request.case_id)
    return created


# Admissibility -----------------------------------------------------------------------------


async def decide_admissibility(
    deps: Deps, who: Identity, escalation_id: str, cmd: c.DecideAdmissibility
) -> Escalation:
    require_chair(who)
    return await _apply(
        deps,
        who,
        escalation_id,
        "escalation.admitted" if cmd.admitted else "escalation.refused",
        lambda e: e.decide_admissibility(cmd.admitted, cmd.reason, who.subject, deps.today()),
        reason=cmd.reason,
    )


# Session -----------------------------------------------------------------------------------


async def propose(
    deps: Deps, escalation: Escalation, on: date
) -> tuple[list[Invitation], list[str]]:
    """The executives of every involved organisation (role ``executive`` in the register),
    their deputies when absent on ``on``."""
    executives: dict[str, list[Document]] = {}
    for org in escalation.organisations_involved:
        executives[org] = await deps.register.with_role(Role.EXECUTIVE.value, organisation=org)
    deputies: dict[str, Document] = {}
    for people in executives.values():
        for person in people:
            deputy_id = (person.get("availability") or {}).get("deputy_id")
            if deputy_id and not is_available(person, on) and deputy_id not in deputies:
                deputy = await deps.register.professional(deputy_id)
                if deputy is not None:
                    deputies[deputy_id] = deputy
    return propose_invitations(escalation.organisations_involved, executives, deputies, on)


async def proposal(
    deps: Deps, who: Identity, escalation_id: str, on: date
) -> tuple[list[Invitation], list[str]]:
    require_changer(who)
    escalation = await get(deps, who, escalation_id)
    return await propose(deps, escalation, on)


async def _chosen_invitations(
    deps: Deps, escalation: Escalation, ids: Sequence[str]
) -> tuple[list[Invitation], list[str]]:
    """Explicitly chosen executives: each must be in the register as an executive of an
    involved organisation, or as the deputy of one."""
    invited: list[Invitation] = []
    for pid in dict.fromkeys(ids):
        person = await deps.register.professional(pid)
        if person is None:
            raise RuleViolation("executive_ids", f"{pid} is not in the register")
        if person.get("organisation") not in escalation.involved:
            raise RuleViolation("executive_ids", f"{pid} is not of an involved organisation")
        if Role.EXECUTIVE.value in person.get("roles", []):
            invited.append(Invitation(executive_id=pid, organisation=person["organisation"]))
            continue
        replaced = [
            e
            for e in await deps.register.with_role(
                Role.EXECUTIVE.value, organisation=person["organisation"]
            )
            if (e.get("availability") or {}).get("deputy_id") == pid
        ]
        if not replaced:
            raise RuleViolation("executive_ids", f"{pid} is no executive nor their deputy")
        invited.append(
            Invitation(
                executive_id=pid, organisation=person["organisation"], deputy_for=replaced[0]["_id"]
            )
        )
    covered = {i.organisation for i in invited}
    return invited, [o for o in escalation.organisations_involved if o not in covered]


async def schedule_session(
    deps: Deps, who: Identity, escalation_id: str, cmd: c.ScheduleSession
) -> Escalation:
    require_changer(who)
    escalation = await deps.repo.get(escalation_id)
    if escalation is None:
        raise NotFound(f"no escalation {escalation_id!r}")
    chair_id = cmd.chair_id or who.subject
    chair = await deps.register.professional(chair_id)
    if chair is None or Role.LET_CHAIR.value not in chair.get("roles", []):
        raise RuleViolation("chair_id", f"{chair_id} is not a LET chair in the register")
    if cmd.executive_ids is None:
        invited, uncovered = await propose(deps, escalation, cmd.session_date)
    else:
        invited, uncovered = await _chosen_invitations(deps, escalation, cmd.executive_ids)
    return await _apply(
        deps,
        who,
        escalation_id,
        "session.scheduled",
        lambda e: e.schedule(cmd.session_date, chair_id, invited, uncovered, deps.today()),
    )


async def record_attendance(
    deps: Deps, who: Identity, escalation_id: str, cmd: c.RecordAttendance
) -> Escalation:
    return await _apply(
        deps,
        who,
        escalation_id,
        "session.held",
        lambda e: e.record_attendance(cmd.present, deps.today()),
    )


# Agreements --------------------------------------------------------------------------------


async def record_agreement(
    deps: Deps, who: Identity, escalation_id: str, cmd: c.RecordAgreement
) -> Escalation:
    agreement_id = f"a-{uuid.uuid4().hex[:12]}"
    return await _apply(
        deps,
        who,
        escalation_id,
        "agreement.recorded",
        lambda e: e.record_agreement(
            agreement_id, cmd.organisation, cmd.action, cmd.deadline, deps.today()
        ),
    )


async def complete_agreement(
    deps: Deps, who: Identity, escalation_id: str, agreement_id: str
) -> Escalation:
    return await _apply(
        deps,
        who,
        escalation_id,
        "agreement.done",
        lambda e: e.complete_agreement(agreement_id, deps.today()),
    )


async def scan_overdue(deps: Deps) -> int:
    """Mark agreements past their deadline overdue; each raises one reminder event.
    Returns how many became overdue (an escalation that kept changing is retried next
    round)."""
    today = deps.today()
    marked = 0
    for escalation_id in await deps.repo.with_deadline_before(today.isoformat(), deps.scan_batch):
        try:
            done = await deps.changes.apply(
                deps.repo,
                escalation_id,
                None,
                lambda e: e.mark_overdue(today),
                actor=SYSTEM,
                action="agreement.overdue",
            )
        except Conflict:
            continue
        if not done.changed:  # its index entry was stale: correct it
            await deps.repo.written(done.aggregate)
        marked += len(done.events)
    return marked


# Outcome -----------------------------------------------------------------------------------


async def conclude(deps: Deps, who: Identity, escalation_id: str, cmd: c.Conclude) -> Escalation:
    return await _apply(
        deps,
        who,
        escalation_id,
        "escalation.concluded",
        lambda e: e.conclude(cmd.outcome, cmd.summary, deps.today()),
    )


async def withdraw(deps: Deps, who: Identity, escalation_id: str, cmd: c.Withdraw) -> Escalation:
    return await _apply(
        deps,
        who,
        escalation_id,
        "escalation.withdrawn",
        lambda e: e.withdraw(cmd.solved_under_pressure, cmd.reason, deps.today()),
        reason=cmd.reason,
    )


# Overview and figures ----------------------------------------------------------------------

RESULTS = (
    "breakthrough",
    "partial",
    "none",
    "withdrawn_solved_under_pressure",
    "withdrawn",
    "refused",
)


class YearFigures(BaseModel):
    year: int
    outcomes: dict[str, int]
    share_solved_under_pressure: float | None


class OverdueAgreement(BaseModel):
    escalation_id: str
    case_number: str
    agreement_id: str
    organisation: str
    deadline: date


class Overview(BaseModel):
    open_escalations: int
    by_status: dict[str, int]
    sessions_planned: int
    agreements: dict[str, int]
    overdue_agreements: list[OverdueAgreement]
    per_year: list[YearFigures]


async def overview(deps: Deps, who: Identity) -> Overview:
    """Open escalations, sessions planned, agreements open/overdue/done (with the overdue
    ones listed), outcomes per year and the share solved under escalation pressure."""
    require_changer(who)
    by_status = await deps.repo.count_by_status()
    agreements = await deps.repo.count_agreements_by_status()
    overdue = await deps.repo.overdue_agreements(limit=100)
    return Overview(
        open_escalations=sum(by_status.get(s.value, 0) for s in OPEN_STATUSES),
        by_status={s.value: by_status.get(s.value, 0) for s in Status},
        sessions_planned=by_status.get(Status.SCHEDULED.value, 0),
        agreements={s: agreements.get(s, 0) for s in ("open", "overdue", "done")},
        overdue_agreements=[OverdueAgreement.model_validate(row) for row in overdue],
        per_year=figures_per_year(await deps.repo.results_per_year()),
    )


def figures_per_year(closed: Counter[tuple[int, str]]) -> list[YearFigures]:
    """Closed escalations per year by result; the share solved under pressure is the part
    of the admitted-or-not escalations that ended (concluded or withdrawn) because the case
    was solved under escalation pressure. Refusals are not counted in that share."""
    out = []
    for year in sorted({y for y, _ in closed}):
        counts = {r: closed[(year, r)] for r in RESULTS}
        ended = sum(n for r, n in counts.items() if r != "refused")
        pressure = counts["withdrawn_solved_under_pressure"]
        share = round(pressure / ended, 3) if ended else None
        out.append(YearFigures(year=year, outcomes=counts, share_solved_under_pressure=share))
    return out
