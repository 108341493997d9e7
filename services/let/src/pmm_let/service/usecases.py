"""Use cases of the LET: async functions taking their dependencies as arguments.

Every change reads the escalation, lets the domain check and apply it, and writes the new
state, its events (outbox) and one audit entry in one conditional single-document update
(``expected_version``): a concurrent change answers 409, and nothing is ever half-written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from pmm_contracts import new_event
from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events.cases import EscalationRequested
from pmm_contracts.topics import LET_ESCALATIONS
from pmm_contracts.vocabulary import Role
from pmm_let.adapters.repository import EscalationRepository
from pmm_let.domain.model import (
    OPEN_STATUSES,
    Escalation,
    Invitation,
    LetError,
    RuleViolation,
    Status,
    is_available,
    propose_invitations,
)
from pmm_let.service import commands as c
from pmm_runtime.auth import Identity
from pmm_runtime.logging import get_logger
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import Outgoing, audit_entry

log = get_logger(__name__)

SYSTEM = "system:let"
LOKET = "service:loket"


class NotFound(LetError):
    pass


class Forbidden(LetError):
    pass


class Conflict(LetError):
    """The escalation changed meanwhile."""


class Register(Protocol):
    """What the LET needs of the register read model (``RegisterReadModel``)."""

    async def professional(self, professional_id: str) -> Document | None: ...

    async def with_role(self, role: str, organisation: str | None = None) -> list[Document]: ...


@dataclass(frozen=True)
class Deps:
    repo: EscalationRepository
    register: Register
    source: str
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    notify: Callable[[], None] = lambda: None
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


async def audit_trail(deps: Deps, who: Identity, escalation_id: str) -> list[Document]:
    require_changer(who)
    trail = await deps.repo.audit(escalation_id)
    if trail is None:
        raise NotFound(f"no escalation {escalation_id!r}")
    return trail


async def search(deps: Deps, who: Identity, query: c.ListQuery) -> tuple[int, list[Escalation]]:
    require_reader(who)
    mongo: Document = {}
    if query.status:
        mongo["status"] = query.status.value
    if not who.has_any(*CHANGERS):
        mongo["organisations_involved"] = who.organisation
    skip = (query.page - 1) * query.page_size
    return await deps.repo.find(mongo, skip=skip, limit=query.page_size)


# Writing -----------------------------------------------------------------------------------


def _outgoing(deps: Deps, escalation: Escalation, events: Sequence[EventData]) -> list[Outgoing]:
    return [
        Outgoing(LET_ESCALATIONS, new_event(e, subject=escalation.id, source=deps.source))
        for e in events
    ]


async def _change(
    deps: Deps,
    actor: str,
    escalation: Escalation,
    action: str,
    change: Callable[[Escalation], list[EventData]],
    *,
    reason: str | None = None,
    details: Document | None = None,
) -> Escalation:
    before = escalation.status
    events = change(escalation)
    expected = escalation.version
    escalation.version += 1
    saved = await deps.repo.save(
        escalation,
        expected,
        _outgoing(deps, escalation, events),
        audit_entry(
            actor=actor,
            action=action,
            reason=reason,
            old={"status": before.value},
            new={"status": escalation.status.value, **(details or {})},
        ),
    )
    if not saved:
        raise Conflict(f"escalation {escalation.id} changed meanwhile; reload and try again")
    deps.notify()
    return escalation


async def _change_by(
    deps: Deps,
    who: Identity,
    escalation_id: str,
    action: str,
    change: Callable[[Escalation], list[EventData]],
    *,
    reason: str | None = None,
    details: Document | None = None,
) -> Escalation:
    require_changer(who)
    escalation = await deps.repo.get(escalation_id)
    if escalation is None:
        raise NotFound(f"no escalation {escalation_id!r}")
    return await _change(
        deps, who.actor, escalation, action, change, reason=reason, details=details
    )


# The Loket's request -----------------------------------------------------------------------


async def on_case_event(deps: Deps, event: CloudEvent[Any]) -> bool:
    """Open an escalation from the Loket's request; every other case event is ignored.

    The id is derived from the request id, so a replayed request (same event, or the same
    request in a new envelope) creates nothing new. True when one was opened.
    """
    data = event.data
    if not isinstance(data, EscalationRequested):
        return False
    escalation, opened = Escalation.open(data, deps.now())
    created = await deps.repo.add(
        escalation,
        _outgoing(deps, escalation, [opened]),
        audit_entry(
            actor=LOKET,
            action="escalation.opened",
            new={"request_id": data.request_id, "requested_by": data.requested_by},
        ),
        caused_by=str(event.id),
    )
    if created:
        log.info("escalation opened", escalation_id=escalation.id, case_id=data.case_id)
        deps.notify()
    return created


# Admissibility -----------------------------------------------------------------------------


async def decide_admissibility(
    deps: Deps, who: Identity, escalation_id: str, cmd: c.DecideAdmissibility
) -> Escalation:
    require_chair(who)
    return await _change_by(
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
    deps: Deps, escalation: Escalation, ids: Sequence[str], on: date
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
        invited, uncovered = await _chosen_invitations(
            deps, escalation, cmd.executive_ids, cmd.session_date
        )
    return await _change(
        deps,
        who.actor,
        escalation,
        "session.scheduled",
        lambda e: e.schedule(cmd.session_date, chair_id, invited, uncovered, deps.today()),
        details={
            "session_date": cmd.session_date.isoformat(),
            "chair_id": chair_id,
            "invited": [i.executive_id for i in invited],
        },
    )


async def record_attendance(
    deps: Deps, who: Identity, escalation_id: str, cmd: c.RecordAttendance
) -> Escalation:
    return await _change_by(
        deps,
        who,
        escalation_id,
        "session.held",
        lambda e: e.record_attendance(cmd.present, deps.today()),
        details={"present": list(cmd.present)},
    )


# Agreements --------------------------------------------------------------------------------


async def record_agreement(
    deps: Deps, who: Identity, escalation_id: str, cmd: c.RecordAgreement
) -> Escalation:
    agreement_id = f"a-{uuid.uuid4().hex[:12]}"
    return await _change_by(
        deps,
        who,
        escalation_id,
        "agreement.recorded",
        lambda e: e.record_agreement(
            agreement_id, cmd.organisation, cmd.action, cmd.deadline, deps.today()
        ),
        details={
            "agreement_id": agreement_id,
            "organisation": cmd.organisation,
            "deadline": cmd.deadline.isoformat(),
        },
    )


async def complete_agreement(
    deps: Deps, who: Identity, escalation_id: str, agreement_id: str
) -> Escalation:
    return await _change_by(
        deps,
        who,
        escalation_id,
        "agreement.done",
        lambda e: e.complete_agreement(agreement_id, deps.today()),
        details={"agreement_id": agreement_id},
    )


async def scan_overdue(deps: Deps) -> int:
    """Mark agreements past their deadline overdue; each raises one reminder event.
    Returns how many became overdue (a conflicting writer is simply retried next round)."""
    today = deps.today()
    marked = 0
    for escalation in await deps.repo.with_deadline_before(today.isoformat(), deps.scan_batch):
        try:
            changed = await _change(
                deps, SYSTEM, escalation, "agreement.overdue", lambda e: e.mark_overdue(today)
            )
        except Conflict:
            continue
        marked += sum(1 for a in changed.agreements if a.overdue_since == today)
    return marked


# Outcome -----------------------------------------------------------------------------------


async def conclude(deps: Deps, who: Identity, escalation_id: str, cmd: c.Conclude) -> Escalation:
    return await _change_by(
        deps,
        who,
        escalation_id,
        "escalation.concluded",
        lambda e: e.conclude(cmd.outcome, cmd.summary, deps.today()),
        details={"outcome": cmd.outcome.value},
    )


async def withdraw(deps: Deps, who: Identity, escalation_id: str, cmd: c.Withdraw) -> Escalation:
    return await _change_by(
        deps,
        who,
        escalation_id,
        "escalation.withdrawn",
        lambda e: e.withdraw(cmd.solved_under_pressure, cmd.reason, deps.today()),
        reason=cmd.reason,
        details={"solved_under_pressure": cmd.solved_under_pressure},
    )


# Overview and figures ----------------------------------------------------------------------


async def overview(deps: Deps, who: Identity) -> dict[str, Any]:
    """Open escalations, sessions planned, agreements open/overdue/done (with the overdue
    ones listed), outcomes per year and the share solved under escalation pressure."""
    require_changer(who)
    repo = deps.repo
    by_status = {
        row["_id"]: row["n"]
        for row in await repo.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
    }
    agreements = {
        row["_id"]: row["n"]
        for row in await repo.aggregate(
            [
                {"$unwind": "$agreements"},
                {"$group": {"_id": "$agreements.status", "n": {"$sum": 1}}},
            ]
        )
    }
    overdue = await repo.overdue_agreements(limit=100)
    rows = await repo.aggregate(
        [
            {"$match": {"closed_year": {"$ne": None}}},
            {"$group": {"_id": {"year": "$closed_year", "result": "$result"}, "n": {"$sum": 1}}},
        ]
    )
    return {
        "open_escalations": sum(by_status.get(s.value, 0) for s in OPEN_STATUSES),
        "by_status": {s.value: by_status.get(s.value, 0) for s in Status},
        "sessions_planned": by_status.get(Status.SCHEDULED.value, 0),
        "agreements": {s: agreements.get(s, 0) for s in ("open", "overdue", "done")},
        "overdue_agreements": overdue,
        "per_year": figures_per_year(rows),
    }


RESULTS = (
    "breakthrough",
    "partial",
    "none",
    "withdrawn_solved_under_pressure",
    "withdrawn",
    "refused",
)


def figures_per_year(rows: Sequence[Document]) -> list[dict[str, Any]]:
    """Closed escalations per year by result; the share solved under pressure is the part
    of the admitted-or-not escalations that ended (concluded or withdrawn) because the case
    was solved under escalation pressure. Refusals are not counted in that share."""
    years: dict[int, dict[str, int]] = {}
    for row in rows:
        year, result = row["_id"]["year"], row["_id"]["result"]
        years.setdefault(int(year), {r: 0 for r in RESULTS})[str(result)] = row["n"]
    out = []
    for year in sorted(years):
        counts = years[year]
        ended = sum(n for r, n in counts.items() if r != "refused")
        pressure = counts["withdrawn_solved_under_pressure"]
        out.append(
            {
                "year": year,
                "outcomes": counts,
                "share_solved_under_pressure": round(pressure / ended, 3) if ended else None,
            }
        )
    return out
