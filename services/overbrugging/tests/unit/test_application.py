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
    ConditionsNotMet,
    ForbiddenTransition,
    Form,
    RuleViolation,
    Status,
    to_cents,
    to_euros,
)

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


@pytest.mark.parametrize(("start", "target"), list(product(Status, Status)))
def test_every_edge_of_the_table(start: Status, target: Status) -> None:
    a = application(start)
    if target in ALLOWED_TRANSITIONS[start]:
        a._move(target)
        assert a.status == target
    else:
        with pytest.raises(ForbiddenTransition):
            a._move(target)
        assert a.status == start


def test_a_missing_condition_blocks_approval() -> None:
    a = application()
    a.record_condition("need_established", True, "indicatie gesteld")
    with pytest.raises(ConditionsNotMet, match="provision_available"):
        a.approve(Form.ADVANCE, 100_00, 2026, None)
    with pytest.raises(RuleViolation, match="unknown condition"):
        a.record_condition("vibes", True, None)


def test_advance_paid_determined_recovered_in_parts() -> None:
    a = ready()
    a.approve(Form.ADVANCE, 1_000_00, 2026, None)
    with pytest.raises(RuleViolation):
        a.call_guarantee(1_000_00, TODAY)
    a.pay(1_000_00, TODAY)
    a.determine("gm0363", "Wmo 2015 art. 2.3.5", TODAY)
    assert a.request_recovery() == 1_000_00
    with pytest.raises(RuleViolation, match="outstanding"):
        a.repay(2_000_00)
    assert a.repay(400_00) is False
    assert a.outstanding_cents == 600_00
    assert a.repay(600_00) is True
    assert a.status == Status.RECOVERED


def test_guarantee_needs_a_period_and_is_released_or_called() -> None:
    with pytest.raises(RuleViolation, match="period_end"):
        ready().approve(Form.GUARANTEE, 500_00, 2026, None)
    g = ready()
    g.approve(Form.GUARANTEE, 500_00, 2026, date(2027, 6, 30))
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
