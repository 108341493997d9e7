"""The case workflow table, walked edge by edge, and the Loket's pure rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import product

import pytest
from pydantic import ValidationError

from pmm_contracts.events import cases as ev
from pmm_contracts.events.cases import Bottleneck, CaseOutcome, LearningPoint, Urgency
from pmm_contracts.vocabulary import BottleneckSubtype, BottleneckType, LearningOrder
from pmm_loket.domain.model import (
    ALLOWED_TRANSITIONS,
    ANONYMISED,
    Case,
    Consultation,
    DeclineReason,
    ForbiddenTransition,
    NotInState,
    Punctuality,
    RuleViolation,
    Status,
    WorkingDays,
    case_number,
    check_bottleneck,
    from_cents,
    late_limit,
    punctuality,
    to_cents,
)
from pmm_loket.service.commands import Household
from pmm_runtime import errors

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
        triaged_at=NOW,
        case_due=date(2027, 1, 18),
        case_director_id="d1",
        outcome="solved" if status in (Status.CLOSED, Status.EVALUATED) else None,
        closed_at=NOW if status in (Status.CLOSED, Status.EVALUATED) else None,
    )


def point() -> LearningPoint:
    return LearningPoint(
        id="lp1",
        order=LearningOrder.THIRD,
        bottleneck=Bottleneck(type=BottleneckType.COOPERATION),
        organisations=("uwv",),
        description="exchange data earlier",
    )


def consultation(due: date = date(2026, 11, 30)) -> Consultation:
    return Consultation(
        id="k1", organisation="uwv", question="can it restart?", requested_on=NOW.date(), due=due
    )


# The table ---------------------------------------------------------------------------------


def test_every_status_is_in_the_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Status)


def _conclude(c: Case) -> list[object]:
    c.escalation = {"request_id": "r1", "status": "admitted", "escalation_id": "e1"}
    return list(c.escalation_update("e1", "concluded", {"outcome": "agreement"}))


# The public command that aims at each status; several lead back to in progress.
COMMANDS: dict[Status, dict[str, Callable[[Case], list[object]]]] = {
    Status.ACCEPTED: {"triage": lambda c: list(c.triage(True, None, NOW, 8))},
    Status.DECLINED: {"triage": lambda c: list(c.triage(False, DeclineReason.DUPLICATE, NOW, 8))},
    Status.IN_PROGRESS: {
        "assign": lambda c: list(c.assign("d2")),
        "resume": lambda c: list(c.resume(NOW.date())),
        "reopen": lambda c: list(c.reopen("new facts")),
        "LET concluded": _conclude,
    },
    Status.ON_HOLD: {"suspend": lambda c: list(c.suspend("waits", date(2026, 12, 9), NOW.date()))},
    Status.ESCALATED: {
        "escalate": lambda c: list(c.escalate("r1", ["uwv"], "x" * 20, "who pays?", "d1"))
    },
    Status.CLOSED: {"close": lambda c: list(c.close(CaseOutcome.SOLVED, None, NOW))},
    Status.EVALUATED: {"evaluate": lambda c: list(c.evaluate([point()]))},
}
# Which command makes each allowed edge into in progress.
INTO_PROGRESS = {
    Status.ACCEPTED: "assign",
    Status.ON_HOLD: "resume",
    Status.CLOSED: "reopen",
    Status.ESCALATED: "LET concluded",
}


def test_no_command_leads_back_to_submitted() -> None:
    assert all(Status.SUBMITTED not in targets for targets in ALLOWED_TRANSITIONS.values())


@pytest.mark.parametrize(
    ("start", "target", "command"),
    [
        (start, target, name)
        for start, target in product(Status, Status)
        for name in COMMANDS.get(target, {})
        if target != Status.IN_PROGRESS
        or start not in INTO_PROGRESS
        or INTO_PROGRESS[start] == name
        if name != "LET concluded" or start == Status.ESCALATED  # an event, not a command
    ],
)
def test_every_edge_of_the_table_through_the_public_commands(
    start: Status, target: Status, command: str
) -> None:
    """Each command is tried from every status: it moves the case exactly where the table
    allows it, and elsewhere answers NotInState naming what is allowed, changing nothing."""
    c = case(start)
    run = COMMANDS[target][command]
    reassign = command == "assign" and start in {
        Status.IN_PROGRESS,
        Status.ON_HOLD,
        Status.ESCALATED,
    }
    if target in ALLOWED_TRANSITIONS[start] or reassign:
        events = run(c)
        assert c.status == (start if reassign else target)
        assert events  # every command records what it did
    else:
        with pytest.raises(errors.NotInState) as caught:
            run(c)
        assert caught.value.current_status == start.value
        assert caught.value.extra["allowed"] == sorted(s.value for s in ALLOWED_TRANSITIONS[start])
        assert c.status == start


def test_end_states_are_final_and_every_open_state_can_reach_closed() -> None:
    assert ALLOWED_TRANSITIONS[Status.DECLINED] == frozenset()
    assert ALLOWED_TRANSITIONS[Status.EVALUATED] == frozenset()
    reachable = {Status.SUBMITTED}
    while True:
        more = {t for s in reachable for t in ALLOWED_TRANSITIONS[s]} - reachable
        if not more:
            break
        reachable |= more
    assert reachable == set(Status)


# Intake ------------------------------------------------------------------------------------


def test_triage_accept_sets_the_case_deadline_and_decline_needs_a_reason() -> None:
    c = case()
    (event,) = c.triage(True, None, NOW, 8)
    assert c.status == Status.ACCEPTED
    assert c.case_due == date(2027, 1, 18)
    assert c.case_limit == date(2027, 5, 10)  # 3 x 8 weeks
    assert c.intake_result == "on_time"
    assert isinstance(event, ev.CaseTriaged)
    assert event.accepted
    with pytest.raises(RuleViolation, match="decline_reason"):
        case().triage(False, None, NOW, 8)
    with pytest.raises(RuleViolation, match="no decline_reason"):
        case().triage(True, DeclineReason.DUPLICATE, NOW, 8)
    declined = case()
    declined.triage(False, DeclineReason.NOT_TRIED_LOCALLY, datetime(2026, 12, 2, tzinfo=UTC), 8)
    assert declined.status == Status.DECLINED
    assert declined.decline_reason == "not_tried_locally"
    assert declined.intake_result == "late"


def test_assign_moves_an_accepted_case_in_progress_and_reassign_keeps_the_previous() -> None:
    c = case(Status.ACCEPTED)
    c.case_director_id = None
    (_first,) = c.assign("d1")
    assert c.status == Status.IN_PROGRESS
    (second,) = c.assign("d2")
    assert isinstance(second, ev.CaseAssigned)
    assert (second.case_director_id, second.previous_case_director_id) == ("d2", "d1")
    with pytest.raises(RuleViolation, match="already"):
        c.assign("d2")
    with pytest.raises(NotInState) as caught:
        case(Status.CLOSED).assign("d3")
    assert caught.value.extra["allowed"] == ["evaluated", "in_progress"]


def test_a_bottleneck_subtype_belongs_to_laws_and_regulations_only() -> None:
    check_bottleneck(
        Bottleneck(
            type=BottleneckType.LAWS_AND_REGULATIONS,
            subtype=BottleneckSubtype.INTERPRETATION_UNCLEAR,
        )
    )
    with pytest.raises(RuleViolation, match="laws_and_regulations"):
        check_bottleneck(
            Bottleneck(type=BottleneckType.ICT, subtype=BottleneckSubtype.NOT_FORESEEN)
        )


# Handling ----------------------------------------------------------------------------------


def test_consultations_only_while_handling_and_answered_once() -> None:
    with pytest.raises(NotInState):
        case(Status.SUBMITTED).request_consultation(consultation())
    with pytest.raises(RuleViolation, match="future"):
        case(Status.IN_PROGRESS).request_consultation(consultation(due=NOW.date()))
    c = case(Status.IN_PROGRESS)
    (asked,) = c.request_consultation(consultation())
    assert isinstance(asked, ev.ConsultationRequested)
    assert asked.due == date(2026, 11, 30)
    (answered,) = c.answer_consultation("k1", "yes", date(2026, 12, 1))
    assert isinstance(answered, ev.ConsultationAnswered)
    assert answered.on_time is False
    assert c.consultations[0].result == "late"
    with pytest.raises(RuleViolation, match="already"):
        c.answer_consultation("k1", "again", date(2026, 12, 1))


def test_suspend_needs_a_future_resume_date_and_resume_clears_it() -> None:
    c = case(Status.IN_PROGRESS)
    with pytest.raises(RuleViolation, match="future"):
        c.suspend("waiting for court", NOW.date(), NOW.date())
    (event,) = c.suspend("waiting for court", date(2026, 12, 10), NOW.date())
    assert c.status == Status.ON_HOLD
    assert c.on_hold is not None
    assert isinstance(event, ev.CaseStatusChanged)
    assert event.reason == "suspended"  # what was typed stays in the case file
    assert c.on_hold["reason"] == "waiting for court"
    c.resume(NOW.date(), "court decided")
    assert c.status == Status.IN_PROGRESS
    assert c.on_hold is None


def test_escalation_only_while_in_progress() -> None:
    with pytest.raises(ForbiddenTransition):
        case(Status.ON_HOLD).escalate("r1", ["uwv"], "all tried", "who pays?", "d1")
    c = case(Status.IN_PROGRESS)
    events = c.escalate("r1", ["uwv"], "all tried", "who pays?", "d1")
    assert c.status == Status.ESCALATED
    request = events[-1]
    assert isinstance(request, ev.EscalationRequested)
    assert request.request_id == "r1"


def test_the_lets_answers_apply_to_the_current_escalation_only() -> None:
    c = case(Status.IN_PROGRESS)
    assert c.escalation_update("e0", "refused", {}) == []  # no escalation: nothing happens
    c.escalate("r1", ["uwv"], "all tried", "who pays?", "d1")
    assert c.escalation_update("e1", "opened", {}, request_id="other") == []
    assert c.escalation is not None
    assert "escalation_id" not in c.escalation
    c.escalation_update("e1", "opened", {}, request_id="r1")
    c.escalation_update("e1", "admitted", {"reason": None})
    assert c.escalation_update("e9", "refused", {"reason": "x"}) == []  # someone else's
    assert c.status == Status.ESCALATED
    (back,) = c.escalation_update("e1", "concluded", {"outcome": "breakthrough"})
    assert isinstance(back, ev.CaseStatusChanged)
    assert back.reason == "LET: concluded"
    assert c.status == Status.IN_PROGRESS
    assert c.escalation["status"] == "concluded"
    assert c.escalation_update("e1", "withdrawn", {}) == []  # final already
    assert c.escalation["status"] == "concluded"


def test_bridging_keeps_money_in_cents_and_follows_the_application() -> None:
    with pytest.raises(NotInState):
        case(Status.ON_HOLD).request_bridging(bridging_request(), NOW.date())
    c = case(Status.IN_PROGRESS)
    c.request_bridging(bridging_request(), NOW.date())
    assert c.bridging[0]["estimated_amount_cents"] == 1_234_550
    c.bridging_update("a1", {"status": "received"}, request_id="r1")
    c.bridging_update("a1", {"status": "approved"}, booking=("payment", 50_000))
    c.bridging_update("a1", {}, booking=("payment", 25_000))
    assert c.bridging_update("a-unknown", {"status": "approved"}) == []
    assert c.bridging[0]["status"] == "paid"  # the payment shows in the case file
    assert c.bridging[0]["booked_cents"] == {"payment": 75_000}
    assert len(c.bridging) == 1
    assert from_cents(to_cents(Decimal("12345.50"))) == Decimal("12345.50")


def bridging_request() -> ev.BridgingRequested:
    return ev.BridgingRequested(
        case_id="c1",
        case_number="LMM-2026-0001",
        request_id="r1",
        provision="supported housing",
        provider="Zorg BV",
        estimated_amount=Decimal("12345.50"),
        candidate_payers=("gm0363", "zilveren"),
        dispute="Wmo or Wlz",
        urgency=Urgency.ACUTE,
        settle_attempt="two meetings",
        requested_by="d1",
    )


def test_close_needs_a_reason_unless_solved_and_computes_the_duration() -> None:
    with pytest.raises(RuleViolation, match="reason"):
        case(Status.IN_PROGRESS).close(CaseOutcome.NOT_SOLVED, None, NOW)
    c = case(Status.IN_PROGRESS)
    closed = c.close(
        CaseOutcome.PARTLY_SOLVED, "no housing available", datetime(2027, 1, 4, tzinfo=UTC)
    )
    assert isinstance(closed[-1], ev.CaseClosed)
    assert closed[-1].duration_days == 42
    assert c.case_result == "on_time"
    with pytest.raises(RuleViolation, match="at least one"):
        c.evaluate([])
    evaluated = c.evaluate([point()])
    assert c.status == Status.EVALUATED
    assert isinstance(evaluated[-1], ev.CaseEvaluated)
    assert evaluated[-1].learning_points[0].id == "lp1"


def test_evaluation_only_after_closing() -> None:
    with pytest.raises(ForbiddenTransition):
        case(Status.IN_PROGRESS).evaluate([point()])


def test_reopen_only_a_closed_case() -> None:
    with pytest.raises(ForbiddenTransition):
        case(Status.IN_PROGRESS).reopen("new facts")
    c = case(Status.IN_PROGRESS)
    c.close(CaseOutcome.SOLVED, None, NOW)
    c.reopen("new facts")
    assert c.status == Status.IN_PROGRESS
    assert c.outcome is None
    assert c.case_result is None


# Deadlines ---------------------------------------------------------------------------------


def test_dutch_working_days_skip_weekends_and_public_holidays() -> None:
    days = WorkingDays()
    assert days.add(date(2026, 11, 20), 5) == date(2026, 11, 27)  # Fri + 5 = next Fri
    assert days.add(date(2026, 12, 23), 3) == date(2026, 12, 29)  # over Christmas
    assert days.add(date(2026, 4, 24), 2) == date(2026, 4, 29)  # over King's Day (Mon 27th)
    # Easter 2027: Good Friday (26 March) is a working day under the Algemene termijnenwet;
    # Easter Monday is not
    assert days.is_working_day(date(2027, 3, 26))
    assert days.add(date(2027, 3, 25), 1) == date(2027, 3, 26)
    assert days.add(date(2027, 3, 26), 1) == date(2027, 3, 30)
    assert not days.is_working_day(date(2027, 5, 5))  # Liberation Day
    assert days.add(date(2027, 5, 4), 1) == date(2027, 5, 7)  # 5 May, then Ascension Day
    assert days.add(date(2027, 5, 5), 1) == date(2027, 5, 7)  # Ascension Day
    assert not days.is_working_day(date(2027, 5, 17))  # Whit Monday


def test_punctuality_on_time_late_and_beyond_three_times_the_term() -> None:
    start, due = date(2026, 1, 1), date(2026, 1, 11)  # a 10-day term
    assert late_limit(start, due) == date(2026, 1, 31)
    assert punctuality(start, due, date(2026, 1, 11)) == Punctuality.ON_TIME
    assert punctuality(start, due, date(2026, 1, 20)) == Punctuality.LATE
    assert punctuality(start, due, date(2026, 1, 31)) == Punctuality.LATE
    assert punctuality(start, due, date(2026, 2, 1)) == Punctuality.VERY_LATE


def test_deadline_warnings_are_sent_once_before_and_once_after() -> None:
    c = case(Status.SUBMITTED)
    near = c.deadline_warnings(date(2026, 11, 28), warn_days=2)
    assert [(e.deadline, e.overdue) for e in near] == [("intake", False)]  # type: ignore[attr-defined]
    assert c.deadline_warnings(date(2026, 11, 29), warn_days=2) == []
    late = c.deadline_warnings(date(2026, 12, 1), warn_days=2)
    assert [(e.deadline, e.overdue) for e in late] == [("intake", True)]  # type: ignore[attr-defined]
    assert c.deadline_warnings(date(2026, 12, 2), warn_days=2) == []


def test_an_overdue_consultation_and_a_passed_resume_date_raise_reminders() -> None:
    c = case(Status.IN_PROGRESS)
    c.request_consultation(consultation(due=date(2026, 11, 30)))
    (reminder,) = c.deadline_warnings(date(2026, 12, 1), warn_days=0)
    assert isinstance(reminder, ev.DeadlineWarning)
    assert (reminder.deadline, reminder.reference, reminder.overdue) == ("consultation", "k1", True)
    c.answer_consultation("k1", "late answer", date(2026, 12, 2))
    c.suspend("waiting", date(2026, 12, 4), date(2026, 12, 2))
    (resume,) = c.deadline_warnings(date(2026, 12, 5), warn_days=0)
    assert (resume.deadline, resume.overdue) == ("resume", True)  # type: ignore[attr-defined]


def test_case_numbers() -> None:
    assert case_number(2026, 7) == "LMM-2026-0007"
    assert case_number(2026, 12345) == "LMM-2026-12345"


# Retention (AVG, DESIGN.md §4) -------------------------------------------------------------


def test_avg_retention_anonymises_the_case_file_but_keeps_the_counts() -> None:
    with pytest.raises(NotInState):
        case(Status.IN_PROGRESS).anonymise(NOW)
    c = case(Status.IN_PROGRESS)
    c.request_consultation(consultation())
    c.answer_consultation("k1", "the answer names a person", NOW.date())
    c.add_note("called the mother", "pmm:d1", NOW)
    c.close(CaseOutcome.SOLVED, None, NOW)
    (event,) = c.anonymise(NOW)
    assert isinstance(event, ev.CaseAnonymised)
    assert c.household == {"reference": ANONYMISED, "adults": 1, "children": 2}
    assert c.tried_locally == c.question == c.legal_basis == ANONYMISED
    assert c.notes == []
    assert c.consultations[0].answer == c.consultations[0].question == ANONYMISED
    assert c.life_domains == ["debts", "housing"]
    assert c.outcome == "solved"
    assert c.anonymise(NOW) == []  # once


@pytest.mark.parametrize("reference", ["123456782", "hh-123456782", "hh-1234-56782", "x111222333y"])
def test_a_household_reference_may_not_hide_a_bsn(reference: str) -> None:
    with pytest.raises(ValidationError, match="eleven-test"):
        Household(reference=reference, adults=1, children=0)


def test_a_household_is_a_pseudonymous_reference_with_its_composition_only() -> None:
    assert Household(reference="hh-7f3a9c21", adults=2, children=3).adults == 2
    with pytest.raises(ValidationError, match="Extra inputs"):
        Household.model_validate(
            {"reference": "hh-7f3a9c21", "adults": 1, "children": 0, "name": "J. Jansen"}
        )


def test_the_due_date_index_names_the_first_day_a_warning_is_due() -> None:
    c = case(Status.IN_PROGRESS)  # the case deadline runs: due 2027-01-18
    assert c.next_warning_on(2) == date(2027, 1, 16)
    c.deadline_warnings(date(2027, 1, 16), 2)  # the near warning
    assert c.next_warning_on(2) == date(2027, 1, 19)
    c.deadline_warnings(date(2027, 1, 19), 2)  # the reminder once it passed
    assert c.next_warning_on(2) is None
    late = case(Status.IN_PROGRESS)
    late.deadline_warnings(date(2027, 2, 1), 2)  # first seen when overdue: the near is skipped
    assert late.next_warning_on(2) is None
    assert case(Status.DECLINED).next_warning_on(2) is None


def test_the_case_clock_stands_still_while_on_hold_over_a_weekend_and_a_holiday() -> None:
    c = case(Status.IN_PROGRESS)
    assert c.case_due == date(2027, 1, 18)
    c.suspend("waits for the court", date(2027, 3, 30), date(2027, 3, 25))  # Thursday
    c.resume(date(2027, 3, 30))  # Tuesday, after Good Friday, Easter and Easter Monday
    assert c.paused_days == 5
    assert c.case_due == date(2027, 1, 23)  # the term moves on by the days on hold
    c.suspend("again", date(2027, 4, 2), date(2027, 4, 1))
    c.resume(date(2027, 4, 1))  # the same day: nothing paused
    assert c.paused_days == 5
