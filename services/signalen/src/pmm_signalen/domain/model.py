"""Systeemleren's domain: a signal from an evaluated case, assigned to organisations.

Pure and synchronous. One signal per learning point of a case evaluation (its id derived
from the evaluation event and the learning point). A signal is *belegd* with one or more
organisations; each assignment follows one workflow table (``ALLOWED_TRANSITIONS``),
enforced in one place (``Assignment._move``). Every method checks its rule, changes state
and returns the event data it causes; the runtime's change loop (``changes.apply``) wraps
them in envelopes and stores state, events and the audit entry in one atomic write. Errors
are the platform's (``pmm_runtime.errors``): ``NotInState`` for the workflow and a merged
signal, ``RuleViolation`` naming the input field, ``Forbidden`` for a non-assignee.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from pmm_contracts.envelope import EventData
from pmm_contracts.events import signals as ev
from pmm_contracts.events.cases import Bottleneck, CaseEvaluated, LearningPoint
from pmm_contracts.events.signals import ResponseStatus
from pmm_contracts.vocabulary import LearningOrder, LifeDomain
from pmm_runtime.errors import Forbidden, NotInState, RuleViolation


def signal_id_for(evaluation_event_id: uuid.UUID | str, learning_point_id: str) -> str:
    """The signal of one learning point: a replayed evaluation gives the same id."""
    return str(uuid.uuid5(uuid.UUID(str(evaluation_event_id)), learning_point_id))


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"  # sent to the organisation, no answer yet
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    MEASURE_TAKEN = "measure_taken"
    NO_ACTION = "no_action"
    FORWARDED = "forwarded"  # handed on to another organisation
    WITHDRAWN = "withdrawn"  # PMM reassigned it elsewhere, or merged the signal


_ANSWERS = {
    AssignmentStatus.RECEIVED,
    AssignmentStatus.IN_PROGRESS,
    AssignmentStatus.MEASURE_TAKEN,
    AssignmentStatus.NO_ACTION,
    AssignmentStatus.FORWARDED,
}
_CLOSED = frozenset(
    {
        AssignmentStatus.MEASURE_TAKEN,
        AssignmentStatus.NO_ACTION,
        AssignmentStatus.FORWARDED,
        AssignmentStatus.WITHDRAWN,
    }
)

ALLOWED_TRANSITIONS: dict[AssignmentStatus, frozenset[AssignmentStatus]] = {
    AssignmentStatus.ASSIGNED: frozenset(_ANSWERS | {AssignmentStatus.WITHDRAWN}),
    AssignmentStatus.RECEIVED: frozenset(
        _ANSWERS - {AssignmentStatus.RECEIVED} | {AssignmentStatus.WITHDRAWN}
    ),
    AssignmentStatus.IN_PROGRESS: frozenset(
        {
            AssignmentStatus.MEASURE_TAKEN,
            AssignmentStatus.NO_ACTION,
            AssignmentStatus.FORWARDED,
            AssignmentStatus.WITHDRAWN,
        }
    ),
    AssignmentStatus.MEASURE_TAKEN: frozenset(),
    AssignmentStatus.NO_ACTION: frozenset(),
    AssignmentStatus.FORWARDED: frozenset(),
    AssignmentStatus.WITHDRAWN: frozenset(),
}
"""The follow-up of one assignment. A forbidden move raises ``NotInState`` (409)."""

OPEN_STATUSES = frozenset(set(AssignmentStatus) - _CLOSED)


class SignalStatus(StrEnum):
    OPEN = "open"  # at least one assignment awaits follow-up
    CLOSED = "closed"  # every assignment answered conclusively
    MERGED = "merged"  # a duplicate, merged into another signal


def _required_for(target: AssignmentStatus) -> list[str]:
    """The statuses from which ``target`` may be reached (for the 409 answer)."""
    return sorted(s.value for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


# The signal --------------------------------------------------------------------------------


class Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Answer(Part):
    status: AssignmentStatus
    explanation: str | None = None
    forward_to: str | None = None
    at: datetime
    via: str = Field(description="kafka or http")


class Assignment(Part):
    organisation: str
    status: AssignmentStatus = AssignmentStatus.ASSIGNED
    assigned_at: datetime
    respond_by: date
    reminders: int = 0
    last_reminder_on: date | None = None
    answers: list[Answer] = Field(default_factory=list)
    assigned_by: str = Field(description="evaluation, pmm staff, or the forwarding organisation")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def _move(self, target: AssignmentStatus) -> None:
        """The one place the follow-up workflow is enforced."""
        allowed = ALLOWED_TRANSITIONS[self.status]
        if target not in allowed:
            names = sorted(s.value for s in allowed)
            raise NotInState(
                f"the assignment to {self.organisation} is {self.status.value} and cannot "
                f"become {target.value}; allowed next: {', '.join(names) or 'none'}",
                current_status=self.status.value,
                allowed=names,
                required_status=_required_for(target),
            )
        self.status = target


class Lesson(BaseModel):
    """A signal as the organisations it is assigned to see it: the anonymised lesson from
    an evaluated case and what became of it, without the case reference."""

    model_config = ConfigDict(extra="ignore")

    id: str
    learning_point_id: str
    order: LearningOrder
    bottleneck: Bottleneck
    life_domains: list[LifeDomain] = Field(default_factory=list)
    regulation_reference: str | None = None
    description: str
    year: int = Field(description="year the case closed: the report it belongs to")
    created_at: datetime
    status: SignalStatus = SignalStatus.OPEN
    assignments: list[Assignment] = Field(default_factory=list)
    merged_into: str | None = None
    merged_from: list[str] = Field(default_factory=list)
    version: int = 1


class Signal(Lesson):
    """The lesson with the case it came from (for PMM staff and the case's regievoerders)."""

    case_id: str
    case_number: str

    # Creation ------------------------------------------------------------------------------

    @classmethod
    def from_learning_point(
        cls,
        evaluation: CaseEvaluated,
        evaluation_event_id: uuid.UUID | str,
        point: LearningPoint,
        *,
        at: datetime,
        term_days: int,
    ) -> tuple[Signal, list[EventData]]:
        signal = cls(
            id=signal_id_for(evaluation_event_id, point.id),
            case_id=evaluation.case_id,
            case_number=evaluation.case_number,
            learning_point_id=point.id,
            order=point.order,
            bottleneck=point.bottleneck,
            life_domains=list(point.life_domains or evaluation.life_domains),
            regulation_reference=point.regulation_reference,
            description=point.description,
            year=evaluation.closed_at.year,
            created_at=at,
        )
        events: list[EventData] = []
        for org in dict.fromkeys(point.organisations):
            events.extend(signal._assign(org, at=at, term_days=term_days, by="evaluation"))
        return signal, events

    # Queries -------------------------------------------------------------------------------

    def assignment(self, organisation: str) -> Assignment | None:
        """The current (latest) assignment of ``organisation``."""
        for item in reversed(self.assignments):
            if item.organisation == organisation:
                return item
        return None

    @property
    def organisations(self) -> list[str]:
        """Organisations the signal is currently assigned to (not withdrawn or forwarded)."""
        return [
            a.organisation
            for a in self.assignments
            if a.status not in (AssignmentStatus.WITHDRAWN, AssignmentStatus.FORWARDED)
        ]

    @property
    def next_due(self) -> date | None:
        """Earliest answer term of an open assignment (for the reminder scan)."""
        dues = [a.respond_by for a in self.assignments if a.is_open]
        return min(dues) if dues else None

    # Changes -------------------------------------------------------------------------------

    def _check_not_merged(self) -> None:
        if self.status is SignalStatus.MERGED:
            raise NotInState(
                f"signal {self.id} was merged into {self.merged_into}; change that one instead",
                current_status=SignalStatus.MERGED.value,
                required_status=[SignalStatus.OPEN.value, SignalStatus.CLOSED.value],
                merged_into=self.merged_into,
            )

    def _refresh_status(self) -> None:
        if self.status is not SignalStatus.MERGED:
            open_ = any(a.is_open for a in self.assignments)
            self.status = SignalStatus.OPEN if open_ else SignalStatus.CLOSED

    def _assign(
        self, organisation: str, *, at: datetime, term_days: int, by: str
    ) -> list[EventData]:
        current = self.assignment(organisation)
        if current is not None and current.is_open:
            raise RuleViolation("organisation", f"the signal is already assigned to {organisation}")
        respond_by = at.date() + timedelta(days=term_days)
        self.assignments.append(
            Assignment(
                organisation=organisation, assigned_at=at, respond_by=respond_by, assigned_by=by
            )
        )
        self._refresh_status()
        return [self.assigned_event(organisation, respond_by)]

    def assigned_event(self, organisation: str, respond_by: date) -> ev.SignalAssigned:
        """What the organisation receives: the lesson, never the case file."""
        return ev.SignalAssigned(
            signal_id=self.id,
            organisation=organisation,
            order=self.order,
            bottleneck=self.bottleneck,
            life_domains=tuple(self.life_domains),
            regulation_reference=self.regulation_reference,
            description=self.description,
            respond_by=respond_by,
        )

    def changed_event(self, change: str, status: str | None = None) -> ev.SignalChanged:
        return ev.SignalChanged(
            signal_id=self.id,
            change=change,
            organisations=tuple(dict.fromkeys(self.organisations)),
            status=status or self.status.value,
        )

    def add_assignee(
        self, organisation: str, *, at: datetime, term_days: int, by: str
    ) -> list[EventData]:
        self._check_not_merged()
        return [*self._assign(organisation, at=at, term_days=term_days, by=by)]

    def reassign(
        self, from_org: str, to_org: str, *, at: datetime, term_days: int, by: str
    ) -> list[EventData]:
        self._check_not_merged()
        if from_org == to_org:
            raise RuleViolation("to_organisation", "reassign to another organisation")
        current = self.assignment(from_org)
        if current is None or not current.is_open:
            raise RuleViolation(
                "from_organisation", f"the signal has no open assignment to {from_org}"
            )
        current._move(AssignmentStatus.WITHDRAWN)
        return self._assign(to_org, at=at, term_days=term_days, by=by)

    def answer(
        self,
        organisation: str,
        status: ResponseStatus,
        explanation: str | None,
        forward_to: str | None,
        *,
        at: datetime,
        term_days: int,
        via: str,
    ) -> list[EventData]:
        """The organisation's follow-up; a forward assigns the signal to the other one."""
        self._check_not_merged()
        current = self.assignment(organisation)
        if current is None or current.status is AssignmentStatus.WITHDRAWN:
            raise Forbidden(f"the signal is not assigned to {organisation}")
        target = AssignmentStatus(status.value)
        if target in (AssignmentStatus.MEASURE_TAKEN, AssignmentStatus.NO_ACTION) and not (
            explanation and explanation.strip()
        ):
            what = "which measure was taken" if target is AssignmentStatus.MEASURE_TAKEN else "why"
            raise RuleViolation("explanation", f"say {what}")
        if target is AssignmentStatus.FORWARDED:
            if not forward_to:
                raise RuleViolation("forward_to", "name the organisation to forward to")
            if forward_to == organisation:
                raise RuleViolation("forward_to", "forward to another organisation")
        elif forward_to:
            raise RuleViolation("forward_to", "only a forward names another organisation")
        current._move(target)
        current.answers.append(
            Answer(status=target, explanation=explanation, forward_to=forward_to, at=at, via=via)
        )
        if current.is_open:  # received / in progress: a new term for the final answer
            current.respond_by = at.date() + timedelta(days=term_days)
        events: list[EventData] = []
        if target is AssignmentStatus.FORWARDED:
            assert forward_to is not None
            existing = self.assignment(forward_to)
            if existing is None or not existing.is_open:
                events.extend(self._assign(forward_to, at=at, term_days=term_days, by=organisation))
        self._refresh_status()
        return [*events, self.changed_event("answered", target.value)]

    def remind(self, today: date, term_days: int) -> list[EventData]:
        """Ask again every organisation silent past its term (periodic follow-up inquiry)."""
        events: list[EventData] = []
        if self.status is SignalStatus.MERGED:
            return events
        for item in self.assignments:
            if item.is_open and item.respond_by < today:
                item.reminders += 1
                item.last_reminder_on = today
                item.respond_by = today + timedelta(days=max(term_days, 1))
                events.append(
                    ev.FollowUpRequested(
                        signal_id=self.id,
                        organisation=item.organisation,
                        reminder=item.reminders,
                        respond_by=item.respond_by,
                    )
                )
        return events

    def absorb(
        self, duplicate: Signal, *, at: datetime, term_days: int, by: str
    ) -> list[EventData]:
        """Take over duplicate's open assignments (first half of a merge; repeatable)."""
        self._check_not_merged()
        duplicate._check_not_merged()
        if duplicate.id == self.id:
            raise RuleViolation("into", "a signal cannot be merged into itself")
        if duplicate.id in self.merged_from:
            return []
        events: list[EventData] = []
        for item in duplicate.assignments:
            existing = self.assignment(item.organisation)
            if item.is_open and (existing is None or not existing.is_open):
                events.extend(self._assign(item.organisation, at=at, term_days=term_days, by=by))
        self.merged_from.append(duplicate.id)
        self._refresh_status()
        return [*events, self.changed_event("merged")]

    def mark_merged(self, into: str) -> list[EventData]:
        """This duplicate is merged into ``into``: its open assignments are withdrawn."""
        self._check_not_merged()
        if into == self.id:
            raise RuleViolation("into", "a signal cannot be merged into itself")
        for item in self.assignments:
            if item.is_open:
                item._move(AssignmentStatus.WITHDRAWN)
        self.status = SignalStatus.MERGED
        self.merged_into = into
        return [self.changed_event("merged")]
