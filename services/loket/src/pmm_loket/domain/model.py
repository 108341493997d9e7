"""The Loket's domain: a stuck case from submission to evaluation.

Pure and synchronous. The workflow is one table (``ALLOWED_TRANSITIONS``), enforced in one
place (``Case._move``); every method checks its rule, changes state and returns the
event data it causes; the use cases wrap them in envelopes and store state and events in
one atomic write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import holidays

from pmm_contracts.envelope import EventData
from pmm_contracts.events import cases as ev
from pmm_contracts.events.cases import CaseOutcome, LearningPoint, Urgency


class Status(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    ESCALATED = "escalated"
    CLOSED = "closed"
    EVALUATED = "evaluated"


ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SUBMITTED: frozenset({Status.ACCEPTED, Status.DECLINED}),
    Status.ACCEPTED: frozenset({Status.IN_PROGRESS}),
    Status.DECLINED: frozenset(),
    Status.IN_PROGRESS: frozenset({Status.ON_HOLD, Status.ESCALATED, Status.CLOSED}),
    Status.ON_HOLD: frozenset({Status.IN_PROGRESS}),
    Status.ESCALATED: frozenset({Status.IN_PROGRESS, Status.CLOSED}),
    Status.CLOSED: frozenset({Status.EVALUATED, Status.IN_PROGRESS}),  # reopen
    Status.EVALUATED: frozenset(),
}
"""The case workflow. A forbidden move raises ``ForbiddenTransition`` (HTTP 409)."""


class DeclineReason(StrEnum):
    NOT_TRIED_LOCALLY = "not_tried_locally"
    OUT_OF_SCOPE = "out_of_scope"
    DUPLICATE = "duplicate"
    WITHDRAWN = "withdrawn"


class LoketError(Exception):
    problem_extra: dict[str, Any] | None = None


class ForbiddenTransition(LoketError):
    def __init__(self, current: Status, wanted: Status) -> None:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[current])
        super().__init__(
            f"a case that is {current.value} cannot become {wanted.value}; "
            f"allowed next: {', '.join(allowed) or 'none'}"
        )
        self.problem_extra = {"current_status": current.value, "allowed": allowed}


class RuleViolation(LoketError):
    """A business rule of the Loket (HTTP 422)."""


# Working days ------------------------------------------------------------------------------


class WorkingDays:
    """Dutch working days: Monday to Friday, not on a public holiday (``holidays`` NL)."""

    def __init__(self) -> None:
        self._holidays = holidays.country_holidays("NL")

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays

    def add(self, start: date, days: int) -> date:
        current = start
        added = 0
        while added < days:
            current += timedelta(days=1)
            if self.is_working_day(current):
                added += 1
        return current


def case_number(year: int, sequence: int) -> str:
    return f"LMM-{year}-{sequence:04d}"


class Punctuality(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    VERY_LATE = "very_late"  # beyond 3x the term


def punctuality(start: date, due: date, end: date) -> Punctuality:
    """On time, late, or late beyond three times the term (``end`` = closed or today)."""
    if end <= due:
        return Punctuality.ON_TIME
    term = max((due - start).days, 1)
    return Punctuality.VERY_LATE if (end - start).days > 3 * term else Punctuality.LATE


# The case ----------------------------------------------------------------------------------


@dataclass
class Consultation:
    id: str
    organisation: str
    question: str
    due: date
    professional_id: str | None = None
    answer: str | None = None
    answered_on: date | None = None
    reminded: bool = False


@dataclass
class Case:
    id: str
    number: str
    status: Status
    submitting_organisation: str
    submitted_by: str
    submitter_kind: str
    household: dict[str, Any]
    life_domains: list[str]
    bottlenecks: list[dict[str, Any]]
    organisations_involved: list[str]
    tried_locally: str
    question: str
    urgency: Urgency
    legal_basis: str
    submitted_at: datetime
    intake_due: date
    case_due: date | None = None
    case_director_id: str | None = None
    decline_reason: str | None = None
    consultations: list[Consultation] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    on_hold: dict[str, Any] | None = None
    escalation: dict[str, Any] | None = None
    bridging: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None
    close_reason: str | None = None
    closed_at: datetime | None = None
    learning_points: list[dict[str, Any]] = field(default_factory=list)
    warnings_sent: list[str] = field(default_factory=list)
    version: int = 1

    def _move(self, wanted: Status, reason: str | None = None) -> ev.CaseStatusChanged:
        if wanted not in ALLOWED_TRANSITIONS[self.status]:
            raise ForbiddenTransition(self.status, wanted)
        event = ev.CaseStatusChanged(
            case_id=self.id,
            case_number=self.number,
            from_status=self.status.value,
            to_status=wanted.value,
            reason=reason,
        )
        self.status = wanted
        return event

    # Intake ---------------------------------------------------------------------------------

    def triage(
        self,
        accepted: bool,
        decline_reason: DeclineReason | None,
        today: date,
        working_days: WorkingDays,
        case_weeks: int,
    ) -> list[EventData]:
        if accepted:
            self._move(Status.ACCEPTED)
            self.case_due = today + timedelta(weeks=case_weeks)
        else:
            if decline_reason is None:
                raise RuleViolation("a declined case needs a decline_reason")
            self._move(Status.DECLINED)
            self.decline_reason = decline_reason.value
        return [
            ev.CaseTriaged(
                case_id=self.id,
                case_number=self.number,
                accepted=accepted,
                decline_reason=self.decline_reason,
                case_due=self.case_due,
            )
        ]

    def assign(self, case_director_id: str) -> list[EventData]:
        previous = self.case_director_id
        if self.status == Status.ACCEPTED:
            self._move(Status.IN_PROGRESS)
        elif self.status not in (Status.IN_PROGRESS, Status.ON_HOLD, Status.ESCALATED):
            raise ForbiddenTransition(self.status, Status.IN_PROGRESS)
        if previous == case_director_id:
            raise RuleViolation("the case is assigned to this regievoerder already")
        self.case_director_id = case_director_id
        return [
            ev.CaseAssigned(
                case_id=self.id,
                case_number=self.number,
                case_director_id=case_director_id,
                previous_case_director_id=previous,
            )
        ]

    # Handling -------------------------------------------------------------------------------

    def _require_handling(self) -> None:
        if self.status not in (Status.IN_PROGRESS, Status.ESCALATED, Status.ON_HOLD):
            raise RuleViolation(f"a case that is {self.status.value} is not being handled")

    def request_consultation(self, consultation: Consultation) -> list[EventData]:
        self._require_handling()
        self.consultations.append(consultation)
        return [
            ev.ConsultationRequested(
                case_id=self.id,
                consultation_id=consultation.id,
                organisation=consultation.organisation,
                professional_id=consultation.professional_id,
                question=consultation.question,
                due=consultation.due,
            )
        ]

    def answer_consultation(
        self, consultation_id: str, answer: str, today: date
    ) -> list[EventData]:
        consultation = next((c for c in self.consultations if c.id == consultation_id), None)
        if consultation is None:
            raise RuleViolation(f"no consultation {consultation_id!r} on this case")
        if consultation.answer is not None:
            raise RuleViolation("this consultation has been answered already")
        consultation.answer, consultation.answered_on = answer, today
        return [
            ev.ConsultationAnswered(
                case_id=self.id,
                consultation_id=consultation.id,
                organisation=consultation.organisation,
                on_time=today <= consultation.due,
            )
        ]

    def suspend(self, reason: str, expected_resume: date) -> list[EventData]:
        event = self._move(Status.ON_HOLD, reason)
        self.on_hold = {"reason": reason, "expected_resume": expected_resume.isoformat()}
        return [event]

    def resume(self) -> list[EventData]:
        event = self._move(Status.IN_PROGRESS)
        self.on_hold = None
        return [event]

    def reopen(self, reason: str) -> list[EventData]:
        if self.status != Status.CLOSED:
            raise ForbiddenTransition(self.status, Status.IN_PROGRESS)
        event = self._move(Status.IN_PROGRESS, reason)
        self.outcome = self.close_reason = None
        self.closed_at = None
        return [event]

    def escalate(
        self,
        request_id: str,
        organisations: list[str],
        justification: str,
        question: str,
        requested_by: str,
    ) -> list[EventData]:
        if self.status != Status.IN_PROGRESS:
            raise ForbiddenTransition(self.status, Status.ESCALATED)
        request = ev.EscalationRequested(
            case_id=self.id,
            case_number=self.number,
            request_id=request_id,
            organisations_involved=tuple(organisations),
            justification=justification,
            question=question,
            requested_by=requested_by,
        )
        event = self._move(Status.ESCALATED)
        self.escalation = {"request_id": request_id, "status": "requested"}
        return [event, request]

    def escalation_update(self, status: str, detail: dict[str, Any]) -> list[EventData]:
        """The LET's answer: refused, concluded or withdrawn brings the case back."""
        if self.escalation is None:
            raise RuleViolation("no escalation on this case")
        self.escalation = {**self.escalation, **detail, "status": status}
        if status in ("refused", "concluded", "withdrawn") and self.status == Status.ESCALATED:
            return [self._move(Status.IN_PROGRESS, f"LET: {status}")]
        return []

    def request_bridging(self, request: ev.BridgingRequested) -> list[EventData]:
        if self.status not in (Status.IN_PROGRESS, Status.ESCALATED):
            raise RuleViolation("a bridging request needs a case in progress")
        self.bridging.append(
            {
                "request_id": request.request_id,
                "status": "requested",
                "estimated_amount": str(request.estimated_amount),
            }
        )
        return [request]

    def bridging_update(
        self, request_id: str | None, application_id: str, detail: dict[str, Any]
    ) -> None:
        for item in self.bridging:
            if item.get("application_id") == application_id or (
                request_id and item["request_id"] == request_id
            ):
                item.update(detail, application_id=application_id)
                return
        self.bridging.append({"request_id": request_id, "application_id": application_id, **detail})

    def close(self, outcome: CaseOutcome, reason: str | None, now: datetime) -> list[EventData]:
        event = self._move(Status.CLOSED, reason)
        self.outcome, self.close_reason, self.closed_at = outcome.value, reason, now
        return [
            event,
            ev.CaseClosed(
                case_id=self.id,
                case_number=self.number,
                outcome=outcome,
                reason=reason,
                submitted_at=self.submitted_at,
                closed_at=now,
                duration_days=self.duration_days,
            ),
        ]

    @property
    def duration_days(self) -> int:
        end = self.closed_at or self.submitted_at
        return max((end.date() - self.submitted_at.date()).days, 0)  # calendar days

    def evaluate(self, points: list[LearningPoint]) -> list[EventData]:
        if not points:
            raise RuleViolation("an evaluation has at least one learning point")
        event = self._move(Status.EVALUATED)
        if self.closed_at is None or self.outcome is None:
            raise RuleViolation("only a closed case is evaluated")
        self.learning_points = [p.model_dump(mode="json") for p in points]
        return [
            event,
            ev.CaseEvaluated(
                case_id=self.id,
                case_number=self.number,
                submitter_kind=self.submitter_kind,
                submitting_organisation=self.submitting_organisation,
                life_domains=tuple(self.life_domains),
                bottlenecks=tuple(ev.Bottleneck.model_validate(b) for b in self.bottlenecks),
                outcome=CaseOutcome(self.outcome),
                submitted_at=self.submitted_at,
                closed_at=self.closed_at,
                duration_days=self.duration_days,
                learning_points=tuple(points),
            ),
        ]

    # Deadlines ------------------------------------------------------------------------------

    def deadline_warnings(self, today: date, warn_days: int) -> list[EventData]:
        """Warnings for deadlines that are near or passed, each sent once."""
        found: list[tuple[str, str | None, date]] = []
        if self.status == Status.SUBMITTED:
            found.append(("intake", None, self.intake_due))
        if (
            self.status in (Status.IN_PROGRESS, Status.ON_HOLD, Status.ESCALATED, Status.ACCEPTED)
            and self.case_due
        ):
            found.append(("case", None, self.case_due))
            found.extend(
                ("consultation", c.id, c.due) for c in self.consultations if c.answer is None
            )
        events: list[EventData] = []
        for deadline, reference, due in found:
            overdue = today > due
            if not overdue and (due - today).days > warn_days:
                continue
            key = f"{deadline}:{reference or ''}:{'overdue' if overdue else 'near'}"
            if key in self.warnings_sent:
                continue
            self.warnings_sent.append(key)
            events.append(
                ev.DeadlineWarning(
                    case_id=self.id,
                    case_number=self.number,
                    deadline=deadline,
                    reference=reference,
                    due=due,
                    overdue=overdue,
                )
            )
        return events
