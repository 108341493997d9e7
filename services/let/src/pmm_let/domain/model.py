"""The LET's domain: an escalation from the Loket's request to its outcome.

Pure and synchronous. The escalation workflow is one table (``ALLOWED_TRANSITIONS``),
enforced in one place (``Escalation._move``); an agreement has its own small table
(``AGREEMENT_TRANSITIONS``). Every method checks its rule, changes state and returns the
event data it causes; the use cases wrap them in envelopes and store state, events and
the audit entry in one atomic write.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from pmm_contracts.envelope import EventData
from pmm_contracts.events import escalations as ev
from pmm_contracts.events.cases import EscalationRequested
from pmm_contracts.events.escalations import EscalationOutcome
from pmm_runtime.errors import NotFound, NotInState, RuleViolation

ESCALATION_NAMESPACE = uuid.UUID("6f0d1c5e-4c36-5b7e-9a51-4c45545f7065")
"""uuid5 namespace: an escalation id is derived from the Loket's request id."""


def escalation_id_for(request_id: str) -> str:
    """The escalation id of a request: the same request always gives the same id."""
    return str(uuid.uuid5(ESCALATION_NAMESPACE, request_id))


class Status(StrEnum):
    REQUESTED = "requested"  # opened from the Loket's request, awaiting admissibility
    ADMITTED = "admitted"
    REFUSED = "refused"
    SCHEDULED = "scheduled"  # session planned, executives invited
    HELD = "held"  # session held, attendance recorded, agreements being made
    CONCLUDED = "concluded"
    WITHDRAWN = "withdrawn"  # before the session, e.g. solved under escalation pressure


ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.ADMITTED, Status.REFUSED, Status.WITHDRAWN}),
    Status.ADMITTED: frozenset({Status.SCHEDULED, Status.WITHDRAWN}),
    Status.REFUSED: frozenset(),
    Status.SCHEDULED: frozenset({Status.HELD, Status.WITHDRAWN}),
    Status.HELD: frozenset({Status.CONCLUDED}),
    Status.CONCLUDED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}
"""The escalation workflow. A forbidden move raises ``NotInState`` (HTTP 409)."""

OPEN_STATUSES = frozenset({Status.REQUESTED, Status.ADMITTED, Status.SCHEDULED, Status.HELD})


class AgreementStatus(StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"
    DONE = "done"


AGREEMENT_TRANSITIONS: dict[AgreementStatus, frozenset[AgreementStatus]] = {
    AgreementStatus.OPEN: frozenset({AgreementStatus.OVERDUE, AgreementStatus.DONE}),
    AgreementStatus.OVERDUE: frozenset({AgreementStatus.DONE}),
    AgreementStatus.DONE: frozenset(),
}


# Parts of an escalation --------------------------------------------------------------------


class Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Admissibility(Part):
    admitted: bool
    reason: str | None = None
    decided_by: str
    decided_on: date


class Invitation(Part):
    executive_id: str
    organisation: str
    deputy_for: str | None = Field(default=None, description="the absent executive replaced")


class Session(Part):
    session_date: date
    chair_id: str
    invited: list[Invitation]
    uncovered_organisations: list[str] = Field(
        default_factory=list, description="involved organisations without an executive to invite"
    )
    present: list[str] | None = None
    held_on: date | None = None


class Agreement(Part):
    id: str
    organisation: str
    action: str
    deadline: date
    status: AgreementStatus = AgreementStatus.OPEN
    done_on: date | None = None
    overdue_since: date | None = None


class Conclusion(Part):
    outcome: EscalationOutcome
    summary: str
    concluded_on: date


class Withdrawal(Part):
    solved_under_pressure: bool
    reason: str
    withdrawn_on: date


# Session proposal --------------------------------------------------------------------------


def is_available(professional: Mapping[str, Any], on: date) -> bool:
    """Available on ``on``: not marked absent, or absent only until before that day."""
    availability = professional.get("availability") or {}
    if availability.get("available", True):
        return True
    until = availability.get("absent_until")
    return until is not None and date.fromisoformat(str(until)) < on


def propose_invitations(
    organisations: Sequence[str],
    executives: Mapping[str, Sequence[Mapping[str, Any]]],
    deputies: Mapping[str, Mapping[str, Any]],
    on: date,
) -> tuple[list[Invitation], list[str]]:
    """Who to invite for a session on ``on``: every executive of each organisation, their
    deputy when they are absent; and the organisations nobody can represent.

    ``executives`` maps an organisation to its professionals with the role ``executive``
    (register read model documents); ``deputies`` maps a deputy id to their document.
    """
    invited: list[Invitation] = []
    seen: set[str] = set()
    uncovered: list[str] = []
    for org in organisations:
        covered = False
        for person in executives.get(org, ()):
            if is_available(person, on):
                chosen = Invitation(executive_id=person["_id"], organisation=org)
            else:
                deputy_id = (person.get("availability") or {}).get("deputy_id")
                deputy = deputies.get(deputy_id) if deputy_id else None
                if deputy is None or not is_available(deputy, on):
                    continue
                chosen = Invitation(
                    executive_id=deputy["_id"], organisation=org, deputy_for=person["_id"]
                )
            covered = True
            if chosen.executive_id not in seen:
                seen.add(chosen.executive_id)
                invited.append(chosen)
        if not covered:
            uncovered.append(org)
    return invited, uncovered


# The escalation ----------------------------------------------------------------------------


class Escalation(BaseModel):
    """One escalation to the LET. Free texts come from the Loket (BSN-guarded there)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    id: str
    case_id: str
    case_number: str
    request_id: str
    requested_by: str
    organisations_involved: list[str]
    justification: str
    question: str
    status: Status = Status.REQUESTED
    opened_at: datetime
    admissibility: Admissibility | None = None
    session: Session | None = None
    agreements: list[Agreement] = Field(default_factory=list)
    conclusion: Conclusion | None = None
    withdrawal: Withdrawal | None = None
    version: int = 1

    # Creation ------------------------------------------------------------------------------

    @classmethod
    def open(cls, request: EscalationRequested, at: datetime) -> tuple[Escalation, EventData]:
        escalation = cls(
            id=escalation_id_for(request.request_id),
            case_id=request.case_id,
            case_number=request.case_number,
            request_id=request.request_id,
            requested_by=request.requested_by,
            organisations_involved=list(dict.fromkeys(request.organisations_involved)),
            justification=request.justification,
            question=request.question,
            opened_at=at,
        )
        return escalation, ev.EscalationOpened(
            escalation_id=escalation.id,
            case_id=escalation.case_id,
            case_number=escalation.case_number,
            request_id=escalation.request_id,
            organisations_involved=tuple(escalation.organisations_involved),
        )

    # The one place the workflow is enforced ------------------------------------------------

    def _move(self, target: Status) -> None:
        if target not in ALLOWED_TRANSITIONS[self.status]:
            raise self._not_in_state(f"become {target.value}")
        self.status = target

    def _require(self, action: str, *statuses: Status) -> None:
        if self.status not in statuses:
            raise self._not_in_state(action, statuses)

    def _not_in_state(self, action: str, required: Sequence[Status] | None = None) -> NotInState:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[self.status])
        need = f"; it must be {' or '.join(sorted(required))}" if required else ""
        return NotInState(
            f"an escalation that is {self.status.value} cannot {action}{need}; "
            f"allowed next: {', '.join(allowed) or 'none'}",
            current_status=self.status.value,
            allowed=allowed,
            required_status=None if required is None else [s.value for s in required],
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    # Admissibility -------------------------------------------------------------------------

    def decide_admissibility(
        self, admitted: bool, reason: str | None, by: str, today: date
    ) -> list[EventData]:
        if not admitted and not (reason and reason.strip()):
            raise RuleViolation("reason", "a refusal needs a reason for the Loket")
        self._move(Status.ADMITTED if admitted else Status.REFUSED)
        self.admissibility = Admissibility(
            admitted=admitted, reason=reason, decided_by=by, decided_on=today
        )
        return [
            ev.EscalationAdmissibility(
                escalation_id=self.id, case_id=self.case_id, admitted=admitted, reason=reason
            )
        ]

    # Session -------------------------------------------------------------------------------

    def schedule(
        self,
        session_date: date,
        chair_id: str,
        invited: Sequence[Invitation],
        uncovered: Sequence[str],
        today: date,
    ) -> list[EventData]:
        if session_date < today:
            raise RuleViolation("session_date", "a session cannot be planned in the past")
        if not invited:
            raise RuleViolation(
                "executive_ids", "no executive of the organisations involved can be invited"
            )
        strangers = [i.organisation for i in invited if i.organisation not in self.involved]
        if strangers:
            raise RuleViolation(
                "executive_ids",
                f"executives of organisations not involved: {', '.join(sorted(set(strangers)))}",
            )
        self._move(Status.SCHEDULED)
        self.session = Session(
            session_date=session_date,
            chair_id=chair_id,
            invited=list(invited),
            uncovered_organisations=list(uncovered),
        )
        return [
            ev.SessionScheduled(
                escalation_id=self.id,
                case_id=self.case_id,
                session_date=session_date,
                chair_id=chair_id,
                invited_executive_ids=tuple(i.executive_id for i in invited),
            )
        ]

    def record_attendance(self, present: Sequence[str], today: date) -> list[EventData]:
        if self.status is Status.SCHEDULED:
            assert self.session is not None
            if today < self.session.session_date:
                raise RuleViolation(
                    "present", f"the session is on {self.session.session_date.isoformat()}"
                )
            invited = {i.executive_id for i in self.session.invited} | {self.session.chair_id}
            unknown = sorted(set(present) - invited)
            if unknown:
                raise RuleViolation("present", f"not invited: {', '.join(unknown)}")
        self._move(Status.HELD)
        assert self.session is not None
        self.session.present = list(dict.fromkeys(present))
        self.session.held_on = today
        return []

    # Agreements ----------------------------------------------------------------------------

    @property
    def involved(self) -> frozenset[str]:
        return frozenset(self.organisations_involved)

    def record_agreement(
        self, agreement_id: str, organisation: str, action: str, deadline: date, today: date
    ) -> list[EventData]:
        self._require("record an agreement", Status.HELD)
        if organisation not in self.involved:
            raise RuleViolation("organisation", f"{organisation} is not involved in this case")
        if deadline < today:
            raise RuleViolation("deadline", "the deadline lies in the past")
        agreement = Agreement(
            id=agreement_id, organisation=organisation, action=action, deadline=deadline
        )
        self.agreements.append(agreement)
        return [self._agreement_event(agreement)]

    def agreement(self, agreement_id: str) -> Agreement:
        for agreement in self.agreements:
            if agreement.id == agreement_id:
                return agreement
        raise NotFound(f"no agreement {agreement_id!r} in escalation {self.id}")

    def _move_agreement(self, agreement: Agreement, target: AgreementStatus) -> None:
        allowed = sorted(s.value for s in AGREEMENT_TRANSITIONS[agreement.status])
        if target.value not in allowed:
            raise NotInState(
                f"an agreement that is {agreement.status.value} cannot become {target.value}; "
                f"allowed next: {', '.join(allowed) or 'none'}",
                current_status=agreement.status.value,
                allowed=allowed,
            )
        agreement.status = target

    def complete_agreement(self, agreement_id: str, today: date) -> list[EventData]:
        self._require("complete an agreement", Status.HELD, Status.CONCLUDED)
        agreement = self.agreement(agreement_id)
        self._move_agreement(agreement, AgreementStatus.DONE)
        agreement.done_on = today
        return [self._agreement_event(agreement)]

    def mark_overdue(self, today: date) -> list[EventData]:
        """Every open agreement past its deadline becomes overdue: one reminder each."""
        events: list[EventData] = []
        for agreement in self.agreements:
            if agreement.status is AgreementStatus.OPEN and agreement.deadline < today:
                self._move_agreement(agreement, AgreementStatus.OVERDUE)
                agreement.overdue_since = today
                events.append(self._agreement_event(agreement))
        return events

    @computed_field  # type: ignore[prop-decorator]
    @property
    def next_deadline(self) -> date | None:
        """The earliest deadline of an agreement still open (what the reminder scan uses)."""
        open_ = [a.deadline for a in self.agreements if a.status is AgreementStatus.OPEN]
        return min(open_) if open_ else None

    def _agreement_event(self, agreement: Agreement) -> EventData:
        return ev.AgreementRecorded(
            escalation_id=self.id,
            case_id=self.case_id,
            agreement_id=agreement.id,
            organisation=agreement.organisation,
            action=agreement.action,
            deadline=agreement.deadline,
            status=agreement.status.value,
        )

    # Outcome and withdrawal ----------------------------------------------------------------

    def conclude(self, outcome: EscalationOutcome, summary: str, today: date) -> list[EventData]:
        if not summary.strip():
            raise RuleViolation("summary", "the outcome needs a summary for the Loket")
        self._move(Status.CONCLUDED)
        self.conclusion = Conclusion(outcome=outcome, summary=summary, concluded_on=today)
        return [
            ev.EscalationConcluded(
                escalation_id=self.id, case_id=self.case_id, outcome=outcome, summary=summary
            )
        ]

    def withdraw(self, solved_under_pressure: bool, reason: str, today: date) -> list[EventData]:
        self._move(Status.WITHDRAWN)
        self.withdrawal = Withdrawal(
            solved_under_pressure=solved_under_pressure, reason=reason, withdrawn_on=today
        )
        return [
            ev.EscalationWithdrawn(
                escalation_id=self.id,
                case_id=self.case_id,
                solved_under_pressure=solved_under_pressure,
                reason=reason,
            )
        ]

    # Figures -------------------------------------------------------------------------------

    @property
    def closed_on(self) -> date | None:
        if self.conclusion:
            return self.conclusion.concluded_on
        if self.withdrawal:
            return self.withdrawal.withdrawn_on
        if self.status is Status.REFUSED and self.admissibility:
            return self.admissibility.decided_on
        return None

    @property
    def result(self) -> str | None:
        """How it ended, for the figures: an outcome, or a withdrawal (under pressure)."""
        if self.conclusion:
            return self.conclusion.outcome.value
        if self.withdrawal:
            return (
                "withdrawn_solved_under_pressure"
                if self.withdrawal.solved_under_pressure
                else "withdrawn"
            )
        if self.status is Status.REFUSED:
            return "refused"
        return None

    def visible_to(self, organisation: str) -> bool:
        return organisation in self.involved
