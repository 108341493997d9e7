"""The case workflow table, walked edge by edge, and the Loket's pure rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import product

import pytest

from pmm_contracts.events.cases import Bottleneck, CaseOutcome, LearningPoint, Urgency
from pmm_contracts.vocabulary import BottleneckType, LearningOrder
from pmm_loket.domain.model import (
    ALLOWED_TRANSITIONS,
    Case,
    DeclineReason,
    ForbiddenTransition,
    Punctuality,
    RuleViolation,
    Status,
    WorkingDays,
    case_number,
    punctuality,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def case(status: Status = Status.SUBMITTED) -> Case:
    return Case(
        id="c1",
        number="LMM-2026-0001",
        status=status,
        submitting_organisation="gm0363",
        submitted_by="p1",
        submitter_kind="municipality",
        household={"reference": "hh-123456", "adults": 1, "children": 2},
        life_domains=["debts", "housing"],
        bottlenecks=[{"type": "laws_and_regulations", "subtype": "not_foreseen"}],
        organisations_involved=["uwv"],
        tried_locally="everything locally and regionally",
        question="who can help?",
        urgency=Urgency.THREATENED,
        legal_basis="consent",
        submitted_at=NOW,
        intake_due=date(2026, 11, 30),
        case_due=date(2027, 1, 18),
        case_director_id="d1",
    )


def point() -> LearningPoint:
    return LearningPoint(
        id="lp1",
        order=LearningOrder.THIRD,
        bottleneck=Bottleneck(type=BottleneckType.COOPERATION),
        organisations=("uwv",),
        description="exchange data earlier",
    )


def test_every_status_is_in_the_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Status)


@pytest.mark.parametrize(("start", "target"), list(product(Status, Status)))
def test_every_edge_of_the_table(start: Status, target: Status) -> None:
    c = case(start)
    if target in ALLOWED_TRANSITIONS[start]:
        c._move(target)
        assert c.status == target
    else:
        with pytest.raises(ForbiddenTransition) as caught:
            c._move(target)
        assert caught.value.problem_extra == {
            "current_status": start.value,
            "allowed": sorted(s.value for s in ALLOWED_TRANSITIONS[start]),
        }
        assert c.status == start


def test_triage_accept_sets_the_case_deadline_and_decline_needs_a_reason() -> None:
    c = case()
    (event,) = c.triage(True, None, date(2026, 11, 23), WorkingDays(), 8)
    assert c.status == Status.ACCEPTED
    assert c.case_due == date(2027, 1, 18)
    assert event.accepted is True  # type: ignore[attr-defined]
    with pytest.raises(RuleViolation, match="decline_reason"):
        case().triage(False, None, date(2026, 11, 23), WorkingDays(), 8)
    declined = case()
    declined.triage(False, DeclineReason.NOT_TRIED_LOCALLY, date(2026, 11, 23), WorkingDays(), 8)
    assert declined.status == Status.DECLINED


def test_escalation_only_while_in_progress() -> None:
    with pytest.raises(ForbiddenTransition):
        case(Status.ON_HOLD).escalate("r1", ["uwv"], "all tried", "who pays?", "d1")
    c = case(Status.IN_PROGRESS)
    events = c.escalate("r1", ["uwv"], "all tried", "who pays?", "d1")
    assert c.status == Status.ESCALATED
    assert type(events[-1]).__name__ == "EscalationRequested"
    assert c.escalation_update("refused", {"reason": "not admissible"})
    assert c.status == Status.IN_PROGRESS


def test_close_and_evaluate() -> None:
    c = case(Status.IN_PROGRESS)
    closed = c.close(
        CaseOutcome.PARTLY_SOLVED, "no housing available", datetime(2027, 1, 4, tzinfo=UTC)
    )
    assert closed[-1].duration_days == 42  # type: ignore[attr-defined]
    with pytest.raises(RuleViolation, match="at least one"):
        c.evaluate([])
    evaluated = c.evaluate([point()])
    assert c.status == Status.EVALUATED
    assert evaluated[-1].learning_points[0].id == "lp1"  # type: ignore[attr-defined]


def test_reopen_only_a_closed_case() -> None:
    with pytest.raises(ForbiddenTransition):
        case(Status.IN_PROGRESS).reopen("new facts")
    c = case(Status.IN_PROGRESS)
    c.close(CaseOutcome.SOLVED, None, NOW)
    c.reopen("new facts")
    assert c.status == Status.IN_PROGRESS
    assert c.outcome is None


def test_dutch_working_days_skip_weekends_and_public_holidays() -> None:
    days = WorkingDays()
    assert days.add(date(2026, 11, 20), 5) == date(2026, 11, 27)  # Fri + 5 = next Fri
    assert days.add(date(2026, 12, 23), 3) == date(2026, 12, 29)  # over Christmas
    assert days.add(date(2026, 4, 24), 2) == date(2026, 4, 29)  # over King's Day (Mon 27th)


def test_punctuality_on_time_late_and_beyond_three_times_the_term() -> None:
    start, due = date(2026, 1, 1), date(2026, 1, 11)  # a 10-day term
    assert punctuality(start, due, date(2026, 1, 11)) == Punctuality.ON_TIME
    assert punctuality(start, due, date(2026, 1, 20)) == Punctuality.LATE
    assert punctuality(start, due, date(2026, 2, 5)) == Punctuality.VERY_LATE


def test_deadline_warnings_are_sent_once_before_and_once_after() -> None:
    c = case(Status.SUBMITTED)
    near = c.deadline_warnings(date(2026, 11, 28), warn_days=2)
    assert [(e.deadline, e.overdue) for e in near] == [("intake", False)]  # type: ignore[attr-defined]
    assert c.deadline_warnings(date(2026, 11, 29), warn_days=2) == []
    late = c.deadline_warnings(date(2026, 12, 1), warn_days=2)
    assert [(e.deadline, e.overdue) for e in late] == [("intake", True)]  # type: ignore[attr-defined]


def test_case_numbers() -> None:
    assert case_number(2026, 7) == "LMM-2026-0007"
    assert case_number(2026, 12345) == "LMM-2026-12345"
