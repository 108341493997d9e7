"""The application workflow, edge by edge, and the money rules, on the pure domain."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import product

import pytest

from pmm_overbrugging.domain.model import (
    ALLOWED_TRANSITIONS,
    CONDITIONS,
    Application,
    ForbiddenTransition,
    Form,
    Status,
    to_cents,
    to_euros,
)
from pmm_runtime.errors import NotInState, RuleViolation

TODAY = date(2026, 11, 23)


def application(status: Status = Status.RECEIVED) -> Application:
    return Application(
        id="a1",
        case_id="c1",
        case_number="LMM-2026-0001",
        request_id="r1",
        provision="beschermd wonen",
        provider="zorgaanbieder",
        estimated_cents=500_000,
        candidate_payers=["gm0363", "vws"],
        received_on=TODAY,
        status=status,
    )


def ready() -> Application:
    a = application()
    for name in CONDITIONS:
        a.record_condition(name, True, None)
    return a


def test_every_status_is_in_the_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Status)
    assert not any(Status.RECEIVED in targets for targets in ALLOWED_TRANSITIONS.values())


AMOUNT = 100_00
GUARANTEED = {Status.CALLED, Status.RELEASED}


def reach(status: Status, form: Form) -> Application:
    """An application brought into ``status`` by the public commands only."""
    a = ready()
    if status == Status.RECEIVED:
        return a
    if status == Status.REJECTED:
        a.reject("no need")
        return a
    if status in GUARANTEED:
        form = Form.GUARANTEE
    elif status != Status.APPROVED:
        form = Form.ADVANCE
    a.approve(form, AMOUNT, 2026, date(2027, 6, 30) if form == Form.GUARANTEE else None)
    if status == Status.CALLED:
        a.call_guarantee(AMOUNT, TODAY)
    elif status == Status.RELEASED:
        a.release()
    elif status != Status.APPROVED:
        a.pay(AMOUNT, TODAY)
    if status in (Status.DETERMINED, Status.RECOVERY_REQUESTED, Status.RECOVERED):
        a.determine("gm0363", "Wmo 2015 art. 2.3.5", TODAY)
    if status in (Status.RECOVERY_REQUESTED, Status.RECOVERED):
        a.request_recovery()
    if status == Status.RECOVERED:
        a.repay(AMOUNT)
    if status == Status.WRITTEN_OFF:
        a.write_off("party insolvent")
    assert a.status == status
    return a


def command(a: Application, target: Status) -> None:
    """The public command whose purpose is to move ``a`` to ``target``."""
    match target:
        case Status.APPROVED:
            a.approve(Form.ADVANCE, AMOUNT, 2026, None)
        case Status.REJECTED:
            a.reject("no need")
        case Status.PAID:
            a.pay(AMOUNT, TODAY)
        case Status.CALLED:
            a.call_guarantee(AMOUNT, TODAY)
        case Status.RELEASED:
            a.release()
        case Status.DETERMINED:
            a.determine("vws", "Wlz", TODAY)
        case Status.RECOVERY_REQUESTED:
            a.request_recovery()
        case Status.RECOVERED:
            a.repay(a.outstanding_cents or AMOUNT)
        case Status.WRITTEN_OFF:
            a.write_off("party insolvent")


MOVES = [t for t in Status if t != Status.RECEIVED]  # nothing moves back to received


@pytest.mark.parametrize(("start", "target"), list(product(Status, MOVES)))
def test_every_edge_of_the_table_through_the_public_commands(start: Status, target: Status) -> None:
    a = reach(start, Form.GUARANTEE if target in GUARANTEED else Form.ADVANCE)
    if target in ALLOWED_TRANSITIONS[start]:
        command(a, target)
        assert a.status == target
    else:
        with pytest.raises(ForbiddenTransition) as refused:
            command(a, target)
        assert a.status == start
        problem = refused.value.problem()
        assert problem["status"] == 409
        assert problem["current_status"] == start.value
        assert problem["allowed"] == sorted(s.value for s in ALLOWED_TRANSITIONS[start])


def test_a_missing_condition_blocks_approval() -> None:
    a = application()
    a.record_condition("need_established", True, "indicatie gesteld")
    with pytest.raises(RuleViolation, match="provision_available") as missing:
        a.approve(Form.ADVANCE, 100_00, 2026, None)
    assert missing.value.field == "conditions"
    assert "urgency" in missing.value.problem()["missing"]
    with pytest.raises(RuleViolation, match="unknown condition") as unknown:
        a.record_condition("vibes", True, None)
    assert unknown.value.field == "vibes"


def test_conditions_are_assessed_before_the_decision() -> None:
    a = ready()
    a.approve(Form.ADVANCE, 100_00, 2026, None)
    with pytest.raises(NotInState) as late:
        a.record_condition("urgency", False, None)
    assert late.value.problem()["required_status"] == ["received"]


def test_advance_paid_determined_recovered_in_parts() -> None:
    a = ready()
    a.approve(Form.ADVANCE, 1_000_00, 2026, None)
    with pytest.raises(RuleViolation) as wrong_form:
        a.call_guarantee(1_000_00, TODAY)
    assert wrong_form.value.field == "form"
    with pytest.raises(RuleViolation) as partly:
        a.pay(500_00, TODAY)
    assert partly.value.field == "amount"
    a.pay(1_000_00, TODAY)
    a.determine("gm0363", "Wmo 2015 art. 2.3.5", TODAY)
    assert a.request_recovery() == 1_000_00
    with pytest.raises(RuleViolation, match="outstanding") as too_much:
        a.repay(2_000_00)
    assert too_much.value.field == "amount"
    assert a.repay(400_00) is False
    assert a.outstanding_cents == 600_00
    assert a.repay(600_00) is True
    assert a.status == Status.RECOVERED


def test_guarantee_needs_a_period_and_is_released_or_called() -> None:
    with pytest.raises(RuleViolation, match="period_end") as no_period:
        ready().approve(Form.GUARANTEE, 500_00, 2026, None)
    assert no_period.value.field == "period_end"
    g = ready()
    g.approve(Form.GUARANTEE, 500_00, 2026, date(2027, 6, 30))
    with pytest.raises(RuleViolation, match="full guarantee") as partial_call:
        g.call_guarantee(200_00, TODAY)
    assert partial_call.value.field == "amount"
    assert g.release() == 500_00
    assert g.status == Status.RELEASED


def test_write_off_takes_what_is_outstanding() -> None:
    a = ready()
    a.approve(Form.ADVANCE, 300_00, 2026, None)
    a.pay(300_00, TODAY)
    a.determine("vws", "Wlz", TODAY)
    a.request_recovery()
    a.repay(100_00)
    assert a.write_off("party insolvent") == 200_00
    assert a.outstanding_cents == 0


def test_money_conversion_is_exact() -> None:
    assert to_cents(Decimal("1234.565")) == 123457
    assert to_euros(123457) == Decimal("1234.57")
    assert to_cents(Decimal("0.1") + Decimal("0.2")) == 30
