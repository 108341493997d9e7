"""The Loket's domain: a stuck case from submission to evaluation.

Pure and synchronous. The workflow is one table (``ALLOWED_TRANSITIONS``), enforced in one
place (``Case._move``); every method checks its rule, changes state and returns the
event data it causes; the use cases wrap them in envelopes and store state and events in
one atomic write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import holidays

from pmm_contracts.envelope import EventData
from pmm_contracts.events import cases as ev
from pmm_contracts.events.cases import CaseOutcome, LearningPoint, Urgency
from pmm_contracts.vocabulary import BottleneckType
from pmm_runtime import errors
from pmm_runtime.errors import RuleViolation


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


class ForbiddenTransition(errors.NotInState):
    """The workflow table does not allow this move (HTTP 409, naming the allowed next)."""

    def __init__(self, current: Status, wanted: Status) -> None:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[current])
        super().__init__(
            f"a case that is {current.value} cannot become {wanted.value}; "
            f"allowed next: {', '.join(allowed) or 'none'}",
            current_status=current.value,
            allowed=allowed,
        )


# Working days ------------------------------------------------------------------------------


NOT_A_DAY_OFF = frozenset({"Good Friday"})
"""In the ``holidays`` NL public calendar but not a day off under the Algemene termijnenwet
(art. 3), which government deadlines follow."""


class WorkingDays:
    """Dutch working days for legal terms (Algemene termijnenwet): Monday to Friday, not on
    New Year's Day, Easter and Whit Monday, Ascension Day, Christmas, King's Day or
    Liberation Day (5 May, in the library's optional category). Good Friday is a working
    day for most government bodies."""

    def __init__(self) -> None:
        calendar = holidays.country_holidays("NL", categories=("public", "optional"))
        self._holidays = {day for day, name in calendar.items() if name not in NOT_A_DAY_OFF}
        self._calendar = calendar

    def _days_off(self, day: date) -> bool:
        if day.year not in self._calendar.years:
            self._calendar.get(day)  # loads that year
            self._holidays |= {d for d, name in self._calendar.items() if name not in NOT_A_DAY_OFF}
        return day in self._holidays

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and not self._days_off(day)

    def add(self, start: date, days: int) -> date:
        current = start
        added = 0
        while added < days:
            current += timedelta(days=1)
            if self.is_working_day(current):
                added += 1
        return current


BOOKING_STATUS = {"payment": "paid", "guarantee_called": "paid", "recovery": "recovering"}
"""The overbrugging status a money movement shows in the case file (received, approved,
paid, determined, recovering, then closed as recovered, released or written off)."""
FINAL_BRIDGING = frozenset({"recovered", "released", "written_off", "rejected"})
_BRIDGING_ORDER = ("requested", "received", "approved", "paid", "determined", "recovering")


def _bridging_rank(status: str | None) -> int:
    """Where an overbrugging status stands: a status never moves back (final ones last)."""
    if status is None:
        return -1
    if status in FINAL_BRIDGING:
        return len(_BRIDGING_ORDER)
    return _BRIDGING_ORDER.index(status) if status in _BRIDGING_ORDER else 0


def case_number(year: int, sequence: int) -> str:
    return f"LMM-{year}-{sequence:04d}"


class Punctuality(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    VERY_LATE = "very_late"  # beyond 3x the term


def late_limit(start: date, due: date) -> date:
    """The last day that counts as merely late: the start plus three times the term."""
    return start + 3 * max(due - start, timedelta(days=1))


def punctuality(start: date, due: date, end: date) -> Punctuality:
    """On time, late, or late beyond three times the term (``end`` = done, or today)."""
    if end <= due:
        return Punctuality.ON_TIME
    return Punctuality.VERY_LATE if end > late_limit(start, due) else Punctuality.LATE


OPEN_STATUSES: frozenset[Status] = frozenset(
    {Status.SUBMITTED, Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD, Status.ESCALATED}
)
HANDLING_STATUSES: frozenset[Status] = frozenset(
    {Status.IN_PROGRESS, Status.ON_HOLD, Status.ESCALATED}
)


def check_bottleneck(bottleneck: ev.Bottleneck) -> None:
    """Subtypes exist only for laws and regulations (DESIGN.md §1)."""
    if bottleneck.subtype is not None and bottleneck.type != BottleneckType.LAWS_AND_REGULATIONS:
        raise RuleViolation(
            "bottlenecks",
            f"bottleneck subtype {bottleneck.subtype.value} belongs to laws_and_regulations, "
            f"not to {bottleneck.type.value}",
        )


class NotInState(errors.NotInState):
    """The action is not possible in the case's current status (HTTP 409)."""

    def __init__(self, action: str, current: Status, required: frozenset[Status]) -> None:
        needed = sorted(s.value for s in required)
        super().__init__(
            f"{action} needs a case that is {' or '.join(needed) or 'not anonymised'}; "
            f"this one is {current.value}",
            current_status=current.value,
            allowed=[s.value for s in ALLOWED_TRANSITIONS[current]],
            required_status=needed,
        )


# The case ----------------------------------------------------------------------------------


@dataclass
class Consultation:
    """A question to an organisation (its ambassador or maatwerk professional)."""

    id: str
    organisation: str
    question: str
    requested_on: date
    due: date
    professional_id: str | None = None
    deputy_for: str | None = None
    asked_by: str | None = None  # the regievoerder who asked (actor), to call back
    answer: str | None = None
    answered_on: date | None = None
    result: str | None = None  # punctuality once answered

    @property
    def limit(self) -> date:
        return late_limit(self.requested_on, self.due)

    def punctuality(self, today: date) -> Punctuality:
        return punctuality(self.requested_on, self.due, self.answered_on or today)


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
    intake_limit: date | None = None
    intake_result: str | None = None  # punctuality of the triage, once triaged
    triaged_at: datetime | None = None
    case_due: date | None = None
    case_limit: date | None = None
    case_result: str | None = None  # punctuality of the case, once closed
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
    reopen_reason: str | None = None
    anonymised_at: datetime | None = None
    paused_days: int = 0  # calendar days on hold: the case clock stood still
    version: int = 1

    def _move(self, wanted: Status, reason: str | None = None) -> ev.CaseStatusChanged:
        """The one place where the workflow table is enforced.

        ``reason`` goes into the event, so it is a fixed system text, never what a person
        typed: free-text reasons stay in the case file and its audit trail.
        """
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

    def _require(self, action: str, statuses: frozenset[Status]) -> None:
        if self.status not in statuses:
            raise NotInState(action, self.status, statuses)

    # Intake ---------------------------------------------------------------------------------

    def triage(
        self,
        accepted: bool,
        decline_reason: DeclineReason | None,
        now: datetime,
        case_weeks: int,
    ) -> list[EventData]:
        today = now.date()
        if accepted:
            if decline_reason is not None:
                raise RuleViolation("decline_reason", "an accepted case has no decline_reason")
            self._move(Status.ACCEPTED)
            self.case_due = today + timedelta(weeks=case_weeks)
            self.case_limit = late_limit(today, self.case_due)
        else:
            if decline_reason is None:
                raise RuleViolation("decline_reason", "a declined case needs a decline_reason")
            self._move(Status.DECLINED)
            self.decline_reason = decline_reason.value
        self.triaged_at = now
        self.intake_result = punctuality(self.submitted_at.date(), self.intake_due, today).value
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
        """Assign (accepted → in progress) or reassign a case that is being handled."""
        previous = self.case_director_id
        if self.status == Status.ACCEPTED:
            self._move(Status.IN_PROGRESS)
        else:
            self._require("assigning a regievoerder", HANDLING_STATUSES | {Status.ACCEPTED})
        if previous == case_director_id:
            raise RuleViolation(
                "case_director_id", "the case is assigned to this regievoerder already"
            )
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

    def request_consultation(self, consultation: Consultation) -> list[EventData]:
        self._require("a consultation", HANDLING_STATUSES)
        if consultation.due <= consultation.requested_on:
            raise RuleViolation("due", "the due date of a consultation lies in the future")
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
            raise UnknownPart(f"no consultation {consultation_id!r} on this case")
        if consultation.answer is not None:
            raise RuleViolation("answer", "this consultation has been answered already")
        consultation.answer, consultation.answered_on = answer, today
        consultation.result = consultation.punctuality(today).value
        return [
            ev.ConsultationAnswered(
                case_id=self.id,
                consultation_id=consultation.id,
                organisation=consultation.organisation,
                on_time=today <= consultation.due,
            )
        ]

    def add_note(self, text: str, by: str, now: datetime) -> list[EventData]:
        if self.anonymised_at is not None:
            raise NotInState("a note", self.status, frozenset())
        self.notes.append({"at": now.isoformat(), "by": by, "text": text})
        return []  # a note is part of the case file: it never leaves the Loket

    def suspend(self, reason: str, expected_resume: date, today: date) -> list[EventData]:
        if expected_resume <= today:
            raise RuleViolation("expected_resume", "the expected resume date lies in the future")
        event = self._move(Status.ON_HOLD, "suspended")
        self.on_hold = {
            "reason": reason,
            "expected_resume": expected_resume.isoformat(),
            "since": today.isoformat(),
        }
        return [event]

    def resume(self, today: date, reason: str | None = None) -> list[EventData]:
        """Back in progress. The case clock stood still while on hold: the 8-week term (and
        its late limit) moves on by the calendar days the case was suspended, so the
        punctuality figures leave that time out."""
        since = (self.on_hold or {}).get("since")
        event = self._move(Status.IN_PROGRESS, "resumed")
        if since is not None:
            paused = max((today - date.fromisoformat(since)).days, 0)
            self.paused_days += paused
            if self.case_due is not None:
                self.case_due += timedelta(days=paused)
            if self.case_limit is not None:
                self.case_limit += timedelta(days=paused)
        self.on_hold = None
        return [event]

    def reopen(self, reason: str) -> list[EventData]:
        if self.status != Status.CLOSED:  # in_progress is reachable from elsewhere too
            raise ForbiddenTransition(self.status, Status.IN_PROGRESS)
        event = self._move(Status.IN_PROGRESS, "reopened")
        self.reopen_reason = reason
        self.outcome = self.close_reason = self.case_result = None
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
        if self.status != Status.IN_PROGRESS:  # only while in progress (issue 4)
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
        event = self._move(Status.ESCALATED, "escalation to the LET requested")
        self.escalation = {
            "request_id": request_id,
            "status": "requested",
            "organisations": organisations,
            "justification": justification,
        }
        return [event, request]

    def escalation_update(
        self,
        escalation_id: str,
        status: str,
        detail: dict[str, Any],
        request_id: str | None = None,
    ) -> list[EventData]:
        """The LET's answer. Refused, concluded or withdrawn brings the case back in progress.

        An event of an earlier escalation of this case (or of none) changes nothing.
        """
        current = self.escalation
        if current is None:
            return []
        if status == "opened":
            if request_id != current["request_id"]:
                return []
        elif current.get("escalation_id") not in (None, escalation_id):
            return []
        if current.get("status") in ESCALATION_FINAL:
            return []
        self.escalation = {**current, **detail, "escalation_id": escalation_id, "status": status}
        if status in ESCALATION_FINAL and self.status == Status.ESCALATED:
            return [self._move(Status.IN_PROGRESS, f"LET: {status}")]
        return []

    def request_bridging(self, request: ev.BridgingRequested, today: date) -> list[EventData]:
        self._require("a bridging request", frozenset({Status.IN_PROGRESS, Status.ESCALATED}))
        self.bridging.append(
            {
                "request_id": request.request_id,
                "status": "requested",
                "requested_on": today.isoformat(),
                "provision": request.provision,
                "provider": request.provider,
                "candidate_payers": list(request.candidate_payers),
                "estimated_amount_cents": to_cents(request.estimated_amount),
                "booked_cents": {},
            }
        )
        return [request]

    def bridging_update(
        self,
        application_id: str,
        detail: dict[str, Any],
        *,
        request_id: str | None = None,
        booking: tuple[str, int] | None = None,
    ) -> list[EventData]:
        """Decisions and money movements of the overbruggingsprocedure (amounts in cents)."""
        item = next(
            (
                b
                for b in self.bridging
                if b.get("application_id") == application_id
                or (request_id is not None and b["request_id"] == request_id)
            ),
            None,
        )
        if item is None:
            return []  # not an application of this case's requests
        if _bridging_rank(detail.get("status")) < _bridging_rank(item.get("status")):
            detail = {k: v for k, v in detail.items() if k != "status"}  # a late redelivery
        item.update(detail, application_id=application_id)
        if booking is not None:
            kind, cents = booking
            booked = item.setdefault("booked_cents", {})
            booked[kind] = booked.get(kind, 0) + cents
            if kind in BOOKING_STATUS and item.get("status") not in FINAL_BRIDGING:
                item["status"] = BOOKING_STATUS[kind]
        elif "responsible_party" in detail and item.get("status") not in FINAL_BRIDGING:
            item["status"] = "determined"
        return []

    def close(self, outcome: CaseOutcome, reason: str | None, now: datetime) -> list[EventData]:
        if outcome != CaseOutcome.SOLVED and not reason:
            raise RuleViolation(
                "reason",
                "a case that is not (fully) solved is closed with a reason, "
                "e.g. scarcity of housing or care beds",
            )
        event = self._move(Status.CLOSED, "closed")
        self.outcome, self.close_reason, self.closed_at = outcome.value, reason, now
        if self.case_due is not None and self.triaged_at is not None:
            self.case_result = punctuality(self.triaged_at.date(), self.case_due, now.date()).value
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
        """Calendar days from submission to closing."""
        end = self.closed_at or self.submitted_at
        return max((end.date() - self.submitted_at.date()).days, 0)

    def evaluate(self, points: list[LearningPoint]) -> list[EventData]:
        if not points:
            raise RuleViolation("learning_points", "an evaluation has at least one learning point")
        for point in points:
            check_bottleneck(point.bottleneck)
        event = self._move(Status.EVALUATED)
        if self.closed_at is None or self.outcome is None:  # pragma: no cover - by the table
            raise NotInState("an evaluation", self.status, frozenset({Status.CLOSED}))
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

    def open_deadlines(self) -> list[tuple[str, str | None, date]]:
        """(deadline, reference, due) of every deadline that is still running."""
        found: list[tuple[str, str | None, date]] = []
        if self.status == Status.SUBMITTED:
            found.append(("intake", None, self.intake_due))
        if self.status in OPEN_STATUSES and self.case_due is not None:
            found.append(("case", None, self.case_due))
        if self.status in HANDLING_STATUSES:
            found.extend(
                ("consultation", c.id, c.due) for c in self.consultations if c.answer is None
            )
        if self.status == Status.ON_HOLD and self.on_hold:
            found.append(("resume", None, date.fromisoformat(self.on_hold["expected_resume"])))
        return found

    def next_warning_on(self, warn_days: int) -> date | None:
        """The first day on which ``deadline_warnings`` has something to send (the due-date
        index of the deadline scan), or ``None`` when no deadline runs."""
        days: list[date] = []
        for deadline, reference, due in self.open_deadlines():
            base = f"{deadline}:{reference or ''}:{due.isoformat()}"
            if f"{base}:overdue" in self.warnings_sent:
                continue  # both sent, or the near one skipped once overdue
            if f"{base}:near" not in self.warnings_sent:
                days.append(due - timedelta(days=warn_days))
            else:
                days.append(due + timedelta(days=1))
        return min(days) if days else None

    def deadline_warnings(self, today: date, warn_days: int) -> list[EventData]:
        """A warning when a deadline is near and a reminder when it passed, each sent once."""
        events: list[EventData] = []
        for deadline, reference, due in self.open_deadlines():
            overdue = today > due
            if not overdue and (due - today).days > warn_days:
                continue
            key = (
                f"{deadline}:{reference or ''}:{due.isoformat()}:{'overdue' if overdue else 'near'}"
            )
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

    # Retention ------------------------------------------------------------------------------

    def anonymise(self, now: datetime) -> list[EventData]:
        """AVG retention: strip the case file, keep what the yearly report counts."""
        self._require(
            "anonymisation", frozenset({Status.CLOSED, Status.EVALUATED, Status.DECLINED})
        )
        if self.anonymised_at is not None:
            return []
        self.household = {
            "reference": ANONYMISED,
            "adults": self.household.get("adults", 0),
            "children": self.household.get("children", 0),
        }
        self.tried_locally = self.question = self.legal_basis = ANONYMISED
        self.notes = []
        self.reopen_reason = None
        for consultation in self.consultations:
            consultation.question = ANONYMISED
            consultation.answer = ANONYMISED if consultation.answer is not None else None
        if self.escalation:
            self.escalation = {k: v for k, v in self.escalation.items() if k != "justification"}
        self.anonymised_at = now
        return [ev.CaseAnonymised(case_id=self.id, case_number=self.number)]


ANONYMISED = "[geanonimiseerd]"
ESCALATION_FINAL = frozenset({"refused", "concluded", "withdrawn"})


class UnknownPart(errors.NotFound):
    """A consultation (or other part) that the case does not have (HTTP 404)."""


def to_cents(amount: Decimal) -> int:
    """Money is stored as integer cents (the store has no Decimal128)."""
    return int((amount * 100).to_integral_value())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))
