"""The follow-up workflow table walked edge by edge, and the rules of a signal: creation
from an evaluation, answers, forwards, reassignment, reminders and merging."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from itertools import product
from typing import Any

import pytest

from pmm_contracts.events import signals as ev
from pmm_contracts.events.cases import Bottleneck, CaseEvaluated, CaseOutcome, LearningPoint
from pmm_contracts.events.signals import ResponseStatus
from pmm_contracts.vocabulary import (
    BottleneckSubtype,
    BottleneckType,
    LearningOrder,
    LifeDomain,
    SubmitterKind,
)
from pmm_runtime.errors import Forbidden, NotInState, RuleViolation
from pmm_signalen.domain.model import (
    ALLOWED_TRANSITIONS,
    AssignmentStatus,
    Signal,
    SignalStatus,
    signal_id_for,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TERM = 42
EVENT_ID = uuid.UUID("0b7e2d4e-0000-4000-8000-000000000001")


def point(pid: str = "lp-1", orgs: tuple[str, ...] = ("uwv",), **extra: Any) -> LearningPoint:
    values: dict[str, Any] = {
        "id": pid,
        "order": LearningOrder.THIRD,
        "bottleneck": Bottleneck(
            type=BottleneckType.LAWS_AND_REGULATIONS, subtype=BottleneckSubtype.NOT_FORESEEN
        ),
        "organisations": orgs,
        "regulation_reference": "Participatiewet art. 18",
        "description": "the benefit stops when a household moves between municipalities",
    }
    values.update(extra)
    return LearningPoint(**values)


def evaluation(*points: LearningPoint) -> CaseEvaluated:
    return CaseEvaluated(
        case_id="c-1",
        case_number="LMM-2026-0042",
        submitter_kind=SubmitterKind.MUNICIPALITY,
        submitting_organisation="gm0363",
        life_domains=(LifeDomain.INCOME, LifeDomain.HOUSING),
        bottlenecks=(Bottleneck(type=BottleneckType.COOPERATION),),
        outcome=CaseOutcome.SOLVED,
        submitted_at=NOW - timedelta(days=60),
        closed_at=NOW - timedelta(days=2),
        duration_days=58,
        learning_points=points or (point(),),
    )


def signal(*orgs: str) -> Signal:
    lp = point(orgs=orgs or ("uwv",))
    created, _ = Signal.from_learning_point(evaluation(lp), EVENT_ID, lp, at=NOW, term_days=TERM)
    return created


def answer(s: Signal, org: str, status: ResponseStatus, **extra: Any) -> list[Any]:
    defaults: dict[str, Any] = {"explanation": None, "forward_to": None}
    if status in (ResponseStatus.MEASURE_TAKEN, ResponseStatus.NO_ACTION):
        defaults["explanation"] = "werkinstructie aangepast"
    if status is ResponseStatus.FORWARDED:
        defaults["forward_to"] = "svb"
    defaults.update(extra)
    return s.answer(org, status, at=NOW, term_days=TERM, via="http", **defaults)


# The workflow table ------------------------------------------------------------------------


def test_every_status_is_in_the_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(AssignmentStatus)


def _move_to(s: Signal, target: AssignmentStatus) -> None:
    """Drive the uwv assignment to ``target`` through the public commands."""
    if target is AssignmentStatus.WITHDRAWN:
        s.reassign("uwv", "svb", at=NOW, term_days=TERM, by="pmm:staff")
    else:
        answer(s, "uwv", ResponseStatus(target.value))


def _in_status(status: AssignmentStatus) -> Signal:
    """A signal whose uwv assignment reached ``status`` through the public commands."""
    s = signal("uwv")
    if status is not AssignmentStatus.ASSIGNED:
        _move_to(s, status)
    item = next(a for a in s.assignments if a.organisation == "uwv")
    assert item.status is status
    return s


TARGETS = [s for s in AssignmentStatus if s is not AssignmentStatus.ASSIGNED]


@pytest.mark.parametrize(("start", "target"), list(product(AssignmentStatus, TARGETS)))
def test_every_edge_of_the_workflow(start: AssignmentStatus, target: AssignmentStatus) -> None:
    s = _in_status(start)
    if start is AssignmentStatus.WITHDRAWN and target is not AssignmentStatus.WITHDRAWN:
        with pytest.raises(Forbidden):  # a withdrawn organisation is no assignee
            _move_to(s, target)
        return
    if target in ALLOWED_TRANSITIONS[start]:
        _move_to(s, target)
        item = next(a for a in s.assignments if a.organisation == "uwv")
        assert item.status is target
    else:
        before = s.model_dump()
        with pytest.raises((NotInState, RuleViolation)) as caught:
            _move_to(s, target)
        if isinstance(caught.value, NotInState):
            assert caught.value.extra["current_status"] == start.value
            assert caught.value.extra["allowed"] == sorted(
                a.value for a in ALLOWED_TRANSITIONS[start]
            )
            assert start.value not in caught.value.extra["required_status"]
        else:  # a reassignment needs an open assignment: the final statuses have none
            assert caught.value.field == "from_organisation"
        assert s.model_dump() == before  # nothing changed


def test_no_command_moves_an_assignment_back_to_assigned() -> None:
    assert "assigned" not in {r.value for r in ResponseStatus}
    s = _in_status(AssignmentStatus.RECEIVED)
    with pytest.raises(RuleViolation) as caught:  # nor does assigning it again
        s.add_assignee("uwv", at=NOW, term_days=TERM, by="pmm:staff")
    assert caught.value.field == "organisation"


def test_no_edge_leads_back_to_assigned() -> None:
    assert all(AssignmentStatus.ASSIGNED not in targets for targets in ALLOWED_TRANSITIONS.values())


def test_closed_statuses_are_final() -> None:
    for status in (
        AssignmentStatus.MEASURE_TAKEN,
        AssignmentStatus.NO_ACTION,
        AssignmentStatus.FORWARDED,
        AssignmentStatus.WITHDRAWN,
    ):
        assert ALLOWED_TRANSITIONS[status] == frozenset()


# Creation ----------------------------------------------------------------------------------


def test_signal_id_is_derived_from_the_evaluation_and_learning_point() -> None:
    assert signal_id_for(EVENT_ID, "lp-1") == signal_id_for(str(EVENT_ID), "lp-1")
    assert signal_id_for(EVENT_ID, "lp-1") != signal_id_for(EVENT_ID, "lp-2")
    assert signal("uwv").id == signal_id_for(EVENT_ID, "lp-1")


def test_creation_assigns_each_organisation_once_with_an_anonymised_event() -> None:
    lp = point(orgs=("uwv", "szw", "uwv"))
    s, events = Signal.from_learning_point(evaluation(lp), EVENT_ID, lp, at=NOW, term_days=TERM)
    assert [a.organisation for a in s.assignments] == ["uwv", "szw"]
    assigned = [e for e in events if isinstance(e, ev.SignalAssigned)]
    assert [e.organisation for e in assigned] == ["uwv", "szw"]
    payload = assigned[0].model_dump(mode="json")
    assert "case_id" not in payload
    assert "case_number" not in payload
    assert payload["respond_by"] == (NOW.date() + timedelta(days=TERM)).isoformat()
    assert s.year == 2026
    assert s.status is SignalStatus.OPEN
    assert s.life_domains == [LifeDomain.INCOME, LifeDomain.HOUSING]  # the case's, by default


# Answers -----------------------------------------------------------------------------------


def test_an_answer_from_a_non_assignee_is_refused_and_changes_nothing() -> None:
    s = signal("uwv")
    before = s.model_dump()
    with pytest.raises(Forbidden):
        answer(s, "duo", ResponseStatus.RECEIVED)
    assert s.model_dump() == before


@pytest.mark.parametrize("status", [ResponseStatus.MEASURE_TAKEN, ResponseStatus.NO_ACTION])
def test_a_measure_or_no_action_needs_an_explanation(status: ResponseStatus) -> None:
    s = signal("uwv")
    with pytest.raises(RuleViolation) as caught:
        answer(s, "uwv", status, explanation="  ")
    assert caught.value.field == "explanation"


def test_a_forward_needs_another_organisation_and_assigns_it() -> None:
    s = signal("uwv")
    with pytest.raises(RuleViolation) as caught:
        answer(s, "uwv", ResponseStatus.FORWARDED, forward_to=None)
    assert caught.value.field == "forward_to"
    with pytest.raises(RuleViolation):
        answer(s, "uwv", ResponseStatus.FORWARDED, forward_to="uwv")
    with pytest.raises(RuleViolation):
        answer(s, "uwv", ResponseStatus.RECEIVED, forward_to="svb")
    events = answer(s, "uwv", ResponseStatus.FORWARDED, forward_to="svb")
    assert [type(e) for e in events] == [ev.SignalAssigned, ev.SignalChanged]
    assert s.organisations == ["svb"]
    new = s.assignment("svb")
    assert new is not None
    assert new.assigned_by == "uwv"
    assert new.is_open


def test_answers_close_the_signal_when_every_assignment_is_concluded() -> None:
    s = signal("uwv", "szw")
    answer(s, "uwv", ResponseStatus.RECEIVED)
    answer(s, "uwv", ResponseStatus.MEASURE_TAKEN)
    assert s.status is SignalStatus.OPEN
    answer(s, "szw", ResponseStatus.NO_ACTION, explanation="no policy room this year")
    assert s.status is SignalStatus.CLOSED
    uwv = s.assignment("uwv")
    assert uwv is not None
    assert [a.status for a in uwv.answers] == [
        AssignmentStatus.RECEIVED,
        AssignmentStatus.MEASURE_TAKEN,
    ]


def test_an_interim_answer_starts_a_new_term() -> None:
    s = signal("uwv")
    later = NOW + timedelta(days=10)
    s.answer("uwv", ResponseStatus.IN_PROGRESS, None, None, at=later, term_days=TERM, via="kafka")
    item = s.assignment("uwv")
    assert item is not None
    assert item.respond_by == later.date() + timedelta(days=TERM)


# PMM staff ---------------------------------------------------------------------------------


def test_reassign_withdraws_and_assigns_elsewhere() -> None:
    s = signal("uwv")
    events = s.reassign("uwv", "svb", at=NOW, term_days=TERM, by="pmm:staff")
    assert [e.organisation for e in events if isinstance(e, ev.SignalAssigned)] == ["svb"]
    assert s.organisations == ["svb"]
    with pytest.raises(RuleViolation) as caught:
        s.reassign("uwv", "duo", at=NOW, term_days=TERM, by="pmm:staff")
    assert caught.value.field == "from_organisation"
    with pytest.raises(RuleViolation):
        s.reassign("svb", "svb", at=NOW, term_days=TERM, by="pmm:staff")


def test_add_assignee_refuses_an_organisation_already_assigned() -> None:
    s = signal("uwv")
    s.add_assignee("szw", at=NOW, term_days=TERM, by="pmm:staff")
    assert s.organisations == ["uwv", "szw"]
    with pytest.raises(RuleViolation) as caught:
        s.add_assignee("szw", at=NOW, term_days=TERM, by="pmm:staff")
    assert caught.value.field == "organisation"


def test_merge_moves_open_assignments_and_is_repeatable() -> None:
    target, duplicate = signal("uwv"), signal("uwv", "szw")
    duplicate.id = "dup"
    answer(duplicate, "uwv", ResponseStatus.MEASURE_TAKEN)
    events = target.absorb(duplicate, at=NOW, term_days=TERM, by="pmm:staff")
    assert [e.organisation for e in events if isinstance(e, ev.SignalAssigned)] == ["szw"]
    assert target.merged_from == ["dup"]
    assert target.absorb(duplicate, at=NOW, term_days=TERM, by="pmm:staff") == []
    duplicate.mark_merged(target.id)
    assert duplicate.status is SignalStatus.MERGED
    assert duplicate.merged_into == target.id
    szw = duplicate.assignment("szw")
    assert szw is not None
    assert szw.status is AssignmentStatus.WITHDRAWN
    with pytest.raises(NotInState) as caught:
        answer(duplicate, "szw", ResponseStatus.RECEIVED)
    assert caught.value.extra["merged_into"] == target.id
    assert caught.value.current_status == "merged"
    with pytest.raises(NotInState):
        duplicate.mark_merged(target.id)
    with pytest.raises(RuleViolation):
        target.absorb(target, at=NOW, term_days=TERM, by="pmm:staff")


# Reminders ---------------------------------------------------------------------------------


def test_reminders_go_to_silent_open_assignments_only_and_count() -> None:
    s = signal("uwv", "szw")
    answer(s, "szw", ResponseStatus.NO_ACTION, explanation="not ours")
    due = NOW.date() + timedelta(days=TERM)
    assert s.remind(due, TERM) == []  # on the day itself: not yet late
    events = s.remind(due + timedelta(days=1), TERM)
    assert [(e.organisation, e.reminder) for e in events] == [("uwv", 1)]
    assert isinstance(events[0], ev.FollowUpRequested)
    assert s.remind(due + timedelta(days=2), TERM) == []  # a new term started
    second = s.remind(due + timedelta(days=TERM + 2), TERM)
    assert [e.reminder for e in second] == [2]
    uwv = s.assignment("uwv")
    assert uwv is not None
    assert uwv.reminders == 2
    assert uwv.last_reminder_on == due + timedelta(days=TERM + 2)


def test_next_due_is_the_earliest_open_term() -> None:
    s = signal("uwv")
    assert s.next_due == NOW.date() + timedelta(days=TERM)
    answer(s, "uwv", ResponseStatus.MEASURE_TAKEN)
    assert s.next_due is None
    assert isinstance(s.next_due, date | None)
