"""The escalation workflow table walked edge by edge, the agreement table, and the LET's
pure rules: admissibility, session proposal, agreements, outcome and withdrawal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from pmm_contracts.events import escalations as ev
from pmm_contracts.events.cases import EscalationRequested
from pmm_contracts.events.escalations import EscalationOutcome
from pmm_let.domain.model import (
    AGREEMENT_TRANSITIONS,
    ALLOWED_TRANSITIONS,
    Agreement,
    AgreementStatus,
    Escalation,
    Invitation,
    Status,
    escalation_id_for,
    propose_invitations,
)
from pmm_runtime.errors import NotFound, NotInState, RuleViolation

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TODAY = NOW.date()


def request(**extra: Any) -> EscalationRequested:
    values: dict[str, Any] = {
        "case_id": "c-1",
        "case_number": "LMM-2026-0042",
        "request_id": "r-1",
        "organisations_involved": ("uwv", "gm0363", "uwv"),
        "justification": "every route tried; the benefit and the rent stay stuck",
        "question": "will UWV and the municipality agree on who pays the arrears?",
        "requested_by": "pmm-regie-1",
    }
    values.update(extra)
    return EscalationRequested(**values)


def escalation(status: Status = Status.REQUESTED) -> Escalation:
    e, _ = Escalation.open(request(), NOW)
    e.status = status
    if status in (Status.SCHEDULED, Status.HELD):
        e.session = _session()
    return e


def _session() -> Any:
    from pmm_let.domain.model import Session

    return Session(
        session_date=TODAY,
        chair_id="chair-1",
        invited=[Invitation(executive_id="x-uwv", organisation="uwv")],
    )


def held() -> Escalation:
    return escalation(Status.HELD)


# The workflow table ------------------------------------------------------------------------


def test_every_status_is_in_the_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Status)
    assert set(AGREEMENT_TRANSITIONS) == set(AgreementStatus)


@pytest.mark.parametrize("start", list(AgreementStatus))
def test_the_agreement_table_through_its_commands(start: AgreementStatus) -> None:
    """Done by ``complete_agreement``, overdue by ``mark_overdue``: each only along the table."""
    e = held()
    late = TODAY + timedelta(days=1)
    e.agreements.append(
        Agreement(id="a1", organisation="uwv", action="restart", deadline=TODAY, status=start)
    )
    reminders = e.mark_overdue(late)
    overdue_allowed = AgreementStatus.OVERDUE in AGREEMENT_TRANSITIONS[start]
    assert len(reminders) == (1 if overdue_allowed and start is AgreementStatus.OPEN else 0)
    now = e.agreements[0].status
    if AgreementStatus.DONE in AGREEMENT_TRANSITIONS[now]:
        e.complete_agreement("a1", late)
        assert e.agreements[0].status is AgreementStatus.DONE
    else:
        with pytest.raises(NotInState) as caught:
            e.complete_agreement("a1", late)
        assert caught.value.extra["current_status"] == now.value
        assert caught.value.extra["allowed"] == sorted(s.value for s in AGREEMENT_TRANSITIONS[now])


def test_the_public_methods_go_through_the_table() -> None:
    e = escalation(Status.CONCLUDED)
    with pytest.raises(NotInState):
        e.withdraw(True, "solved", TODAY)
    with pytest.raises(NotInState):
        escalation(Status.HELD).withdraw(True, "solved", TODAY)
    with pytest.raises(NotInState):
        escalation(Status.SCHEDULED).conclude(EscalationOutcome.NONE, "no", TODAY)
    with pytest.raises(NotInState):
        escalation(Status.ADMITTED).decide_admissibility(True, None, "chair-1", TODAY)


# Opening -----------------------------------------------------------------------------------


def test_the_id_is_derived_from_the_request_so_a_replay_is_the_same_escalation() -> None:
    a, opened = Escalation.open(request(), NOW)
    b, _ = Escalation.open(request(), NOW + timedelta(hours=1))
    assert a.id == b.id == escalation_id_for("r-1")
    assert Escalation.open(request(request_id="r-2"), NOW)[0].id != a.id
    assert isinstance(opened, ev.EscalationOpened)
    assert opened.organisations_involved == ("uwv", "gm0363")  # duplicates dropped
    assert a.status is Status.REQUESTED


# Admissibility -----------------------------------------------------------------------------


def test_admission_and_refusal_travel_back_to_the_loket() -> None:
    e = escalation()
    (event,) = e.decide_admissibility(True, None, "chair-1", TODAY)
    assert isinstance(event, ev.EscalationAdmissibility)
    assert event.admitted
    assert e.status is Status.ADMITTED
    assert e.admissibility is not None

    refused = escalation()
    (event,) = refused.decide_admissibility(False, "not tried at the Loket", "chair-1", TODAY)
    assert isinstance(event, ev.EscalationAdmissibility)
    assert not event.admitted
    assert event.reason == "not tried at the Loket"
    assert refused.status is Status.REFUSED
    assert refused.result == "refused"


def test_a_refusal_needs_a_reason_and_changes_nothing_without_one() -> None:
    e = escalation()
    with pytest.raises(RuleViolation) as caught:
        e.decide_admissibility(False, None, "chair-1", TODAY)
    assert caught.value.field == "reason"
    assert caught.value.problem()["errors"][0]["field"] == "reason"
    assert e.status is Status.REQUESTED
    assert e.admissibility is None


# Session -----------------------------------------------------------------------------------


def person(pid: str, org: str, *, absent_until: date | None = None, deputy: str | None = None):
    availability: dict[str, Any] = {"available": absent_until is None}
    if absent_until:
        availability |= {"absent_until": absent_until.isoformat(), "deputy_id": deputy}
    return {"_id": pid, "organisation": org, "roles": ["executive"], "availability": availability}


def test_the_proposal_invites_executives_and_deputies_of_absent_ones() -> None:
    later = TODAY + timedelta(days=30)
    executives = {
        "uwv": [person("x-uwv", "uwv", absent_until=later, deputy="d-uwv")],
        "gm0363": [person("x-gm", "gm0363")],
        "svb": [person("x-svb", "svb", absent_until=later)],  # absent, no deputy
    }
    deputies = {"d-uwv": {"_id": "d-uwv", "organisation": "uwv", "availability": {}}}
    invited, uncovered = propose_invitations(
        ["uwv", "gm0363", "svb", "duo"], executives, deputies, TODAY + timedelta(days=7)
    )
    assert invited == [
        Invitation(executive_id="d-uwv", organisation="uwv", deputy_for="x-uwv"),
        Invitation(executive_id="x-gm", organisation="gm0363"),
    ]
    assert uncovered == ["svb", "duo"]


def test_an_absence_that_ends_before_the_session_does_not_need_a_deputy() -> None:
    executives = {"uwv": [person("x-uwv", "uwv", absent_until=TODAY, deputy="d-uwv")]}
    invited, uncovered = propose_invitations(["uwv"], executives, {}, TODAY + timedelta(days=1))
    assert [i.executive_id for i in invited] == ["x-uwv"]
    assert uncovered == []


def test_scheduling_checks_date_and_invitations() -> None:
    e = escalation(Status.ADMITTED)
    invited = [Invitation(executive_id="x-uwv", organisation="uwv")]
    with pytest.raises(RuleViolation) as caught:
        e.schedule(TODAY - timedelta(days=1), "chair-1", invited, [], TODAY)
    assert caught.value.field == "session_date"
    with pytest.raises(RuleViolation) as caught:
        e.schedule(TODAY, "chair-1", [], ["uwv"], TODAY)
    assert caught.value.field == "executive_ids"
    stranger = [Invitation(executive_id="x-duo", organisation="duo")]
    with pytest.raises(RuleViolation):
        e.schedule(TODAY, "chair-1", stranger, [], TODAY)
    assert e.status is Status.ADMITTED
    assert e.session is None

    (event,) = e.schedule(TODAY + timedelta(days=14), "chair-1", invited, ["gm0363"], TODAY)
    assert isinstance(event, ev.SessionScheduled)
    assert event.invited_executive_ids == ("x-uwv",)
    assert event.chair_id == "chair-1"
    assert e.status is Status.SCHEDULED
    assert e.session is not None
    assert e.session.uncovered_organisations == ["gm0363"]


def test_attendance_only_on_or_after_the_session_date_and_of_invited_people() -> None:
    e = escalation(Status.ADMITTED)
    e.schedule(
        TODAY + timedelta(days=2),
        "chair-1",
        [Invitation(executive_id="x-uwv", organisation="uwv")],
        [],
        TODAY,
    )
    with pytest.raises(RuleViolation):
        e.record_attendance(["x-uwv"], TODAY)
    with pytest.raises(RuleViolation) as caught:
        e.record_attendance(["x-uwv", "someone"], TODAY + timedelta(days=2))
    assert caught.value.field == "present"
    assert e.status is Status.SCHEDULED
    assert e.record_attendance(["x-uwv", "chair-1"], TODAY + timedelta(days=2)) == []
    assert e.status is Status.HELD
    assert e.session is not None
    assert e.session.present == ["x-uwv", "chair-1"]


# Agreements --------------------------------------------------------------------------------


def test_agreements_only_after_the_session_for_an_involved_organisation() -> None:
    with pytest.raises(NotInState) as caught:
        escalation(Status.SCHEDULED).record_agreement("a1", "uwv", "pay", TODAY, TODAY)
    assert caught.value.extra == {
        "current_status": "scheduled",
        "allowed": ["held", "withdrawn"],
        "required_status": ["held"],
    }
    e = held()
    with pytest.raises(RuleViolation) as rule:
        e.record_agreement("a1", "duo", "pay", TODAY, TODAY)
    assert rule.value.field == "organisation"
    with pytest.raises(RuleViolation) as rule:
        e.record_agreement("a1", "uwv", "pay", TODAY - timedelta(days=1), TODAY)
    assert rule.value.field == "deadline"
    assert e.agreements == []

    (event,) = e.record_agreement("a1", "uwv", "restart the benefit", TODAY, TODAY)
    assert isinstance(event, ev.AgreementRecorded)
    assert event.status == "open"
    assert e.next_deadline == TODAY


def test_an_overdue_agreement_raises_one_reminder_and_can_still_be_done() -> None:
    e = held()
    e.record_agreement("a1", "uwv", "restart the benefit", TODAY, TODAY)
    e.record_agreement("a2", "gm0363", "pay the arrears", TODAY + timedelta(days=9), TODAY)
    assert e.mark_overdue(TODAY) == []  # on the deadline day it is not late yet
    tomorrow = TODAY + timedelta(days=1)
    (reminder,) = e.mark_overdue(tomorrow)
    assert isinstance(reminder, ev.AgreementRecorded)
    assert (reminder.agreement_id, reminder.status) == ("a1", "overdue")
    assert e.mark_overdue(tomorrow) == []  # no second reminder
    assert e.next_deadline == TODAY + timedelta(days=9)

    (done,) = e.complete_agreement("a1", tomorrow)
    assert isinstance(done, ev.AgreementRecorded)
    assert done.status == "done"
    with pytest.raises(NotInState):
        e.complete_agreement("a1", tomorrow)
    with pytest.raises(NotFound):
        e.complete_agreement("nope", tomorrow)


def test_agreements_are_followed_up_after_the_outcome() -> None:
    e = held()
    e.record_agreement("a1", "uwv", "restart the benefit", TODAY, TODAY)
    e.conclude(EscalationOutcome.PARTIAL, "UWV restarts; the rest stays open", TODAY)
    (done,) = e.complete_agreement("a1", TODAY)
    assert isinstance(done, ev.AgreementRecorded)
    assert done.status == "done"
    with pytest.raises(NotInState):
        e.record_agreement("a2", "uwv", "more", TODAY, TODAY)


# Outcome and withdrawal --------------------------------------------------------------------


def test_the_outcome_goes_back_to_the_loket_with_a_summary() -> None:
    e = held()
    with pytest.raises(RuleViolation) as caught:
        e.conclude(EscalationOutcome.BREAKTHROUGH, "  ", TODAY)
    assert caught.value.field == "summary"
    assert e.status is Status.HELD
    (event,) = e.conclude(EscalationOutcome.BREAKTHROUGH, "the municipality pays", TODAY)
    assert isinstance(event, ev.EscalationConcluded)
    assert event.outcome is EscalationOutcome.BREAKTHROUGH
    assert e.result == "breakthrough"
    assert e.closed_on == TODAY


@pytest.mark.parametrize("start", [Status.REQUESTED, Status.ADMITTED, Status.SCHEDULED])
def test_withdrawal_before_the_session_is_counted_apart(start: Status) -> None:
    e = escalation(start)
    (event,) = e.withdraw(True, "solved under escalation pressure", TODAY)
    assert isinstance(event, ev.EscalationWithdrawn)
    assert event.solved_under_pressure
    assert e.result == "withdrawn_solved_under_pressure"
    other = escalation(start)
    other.withdraw(False, "the household moved abroad", TODAY)
    assert other.result == "withdrawn"


def test_free_text_with_a_bsn_is_refused_by_the_contract() -> None:
    with pytest.raises(ValidationError):
        ev.EscalationWithdrawn(
            escalation_id="e",
            case_id="c",
            solved_under_pressure=True,
            reason="solved for 111222333",  # passes the eleven-test
        )
