"""The overbruggingsprocedure's use cases with the real domain and the real store (no
broker needed: events are checked in the outbox, where the relay would find them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pmm_contracts import new_event
from pmm_contracts.events.cases import BridgingRequested, CaseClosed, CaseOutcome, Urgency
from pmm_overbrugging.adapters.repository import BridgingRepository
from pmm_overbrugging.domain.model import CONDITIONS, Form, InsufficientBudget, Status
from pmm_overbrugging.entrypoints import kafka
from pmm_overbrugging.service import usecases as uc
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Changes
from pmm_runtime.errors import Conflict, Forbidden, NotFound, NotInState, RuleViolation
from pmm_runtime.platform import Platform, dispatch

LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
YEAR = 2026
HOLDER = Identity("b1", "pmm", frozenset({"budget_holder"}))
STAFF = Identity("s1", "pmm", frozenset({"pmm_staff"}))
DIRECTOR = Identity("regie-1", "pmm", frozenset({"case_director"}))
PROFESSIONAL = Identity("p1", "gm0363", frozenset({"maatwerk_professional"}))


@dataclass
class Clock:
    at: datetime

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
async def deps(make_settings: Callable[..., OverbruggingSettings]) -> AsyncIterator[uc.Deps]:
    settings = make_settings(OverbruggingSettings)
    platform = Platform(settings, configure_logs=False)
    repo = BridgingRepository(
        platform.store("applications"), platform.db["budgets"], platform.db["ledger"]
    )
    await repo.create_indexes()
    yield uc.Deps(
        repo=repo, changes=Changes(source=settings.source, now=Clock(MONDAY)), now=Clock(MONDAY)
    )
    await platform.mongo.close()


def bridging_requested(case_id: str = "case-1", request_id: str | None = None) -> Any:
    data = BridgingRequested(
        case_id=case_id,
        case_number="LMM-2026-0042",
        request_id=request_id or uuid.uuid4().hex,
        provision="beschermd wonen",
        provider="Zorgaanbieder Noord",
        estimated_amount=Decimal("4250.00"),
        candidate_payers=("gm0363", "vws"),
        dispute="Wmo 2015 or Wlz: both parties point at the other",
        urgency=Urgency.ACUTE,
        settle_attempt="regievoerder called both parties twice",
        requested_by="d1",
    )
    return new_event(data, subject=case_id, source=LOKET)


async def received(deps: uc.Deps, case_id: str = "case-1") -> str:
    event = bridging_requested(case_id)
    await dispatch(kafka.handlers(deps))(event)
    return uc.application_id(event.data.request_id)


async def ready(deps: uc.Deps, case_id: str = "case-1") -> str:
    application_id = await received(deps, case_id)
    conditions = {name: (True, None) for name in CONDITIONS}
    await uc.record_conditions(deps, STAFF, application_id, conditions)
    return application_id


async def outbox_types(deps: uc.Deps, application_id: str) -> list[str]:
    document = await deps.repo.store.get(application_id)
    assert document is not None
    return [e["value"]["type"].rsplit(".", 1)[-1] for e in document["_outbox"]]


async def budget(deps: uc.Deps, total: str = "10000.00") -> None:
    await uc.set_budget(deps, HOLDER, YEAR, Decimal(total))


async def test_a_bridging_request_becomes_one_application_and_a_replay_creates_nothing(
    deps: uc.Deps,
) -> None:
    event = bridging_requested("case-7")
    handle = dispatch(kafka.handlers(deps))
    for _ in range(2):  # redelivered
        await handle(event)
    closed = new_event(
        CaseClosed(
            case_id="case-7",
            case_number="LMM-2026-0042",
            outcome=CaseOutcome.SOLVED,
            submitted_at=MONDAY,
            closed_at=MONDAY,
            duration_days=0,
        ),
        subject="case-7",
        source=LOKET,
    )
    await handle(closed)  # another case event: skipped
    application = await uc.get(deps, STAFF, uc.application_id(event.data.request_id))
    assert application.status == Status.RECEIVED
    assert application.estimated_cents == 4250_00
    assert application.received_on == MONDAY.date()
    # the Loket's request already tells that financing is disputed and settling was tried
    assert application.missing_conditions() == [
        "need_established",
        "provision_available",
        "urgency",
    ]
    assert await outbox_types(deps, application.id) == ["received"]
    total, _ = await uc.search(deps, STAFF)
    assert total == 1


async def test_an_advance_paid_determined_and_recovered_in_parts(deps: uc.Deps) -> None:
    await budget(deps)
    a = await ready(deps)
    approved = await uc.approve(
        deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("4000.00"), YEAR, None
    )
    assert approved.status == Status.APPROVED
    later = replace(deps, now=Clock(MONDAY + timedelta(days=10)))
    await uc.pay(deps, HOLDER, a, "pay-1", Decimal("4000.00"))
    await uc.determine(later, HOLDER, a, "gm0363", "Wmo 2015 art. 2.3.5 lid 3")
    await uc.request_recovery(later, HOLDER, a)
    await uc.repay(later, HOLDER, a, "repay-1", Decimal("1500.00"))
    done = await uc.repay(later, HOLDER, a, "repay-2", Decimal("2500.00"))
    assert done.status == Status.RECOVERED
    assert await outbox_types(deps, a) == [
        "received",
        "decided",
        "booked",
        "booked",
        "responsible_party_determined",
        "recovery_requested",
        "booked",
        "booked",
        "closed",
    ]
    figures = await uc.figures(deps, STAFF, YEAR)
    assert figures.committed == Decimal("0.00")
    assert figures.available == Decimal("10000.00")
    assert figures.paid == Decimal("4000.00")
    assert figures.recovered == Decimal("4000.00")
    assert figures.ledger_consistent is True
    assert figures.recovery_rate == 1.0
    assert figures.average_days_payment_to_determination == 10.0
    assert figures.status_counts == {"recovered": 1}
    assert [e["kind"] for e in await uc.ledger(deps, DIRECTOR, a)] == [
        "commitment",
        "payment",
        "recovery",
        "recovery",
    ]
    assert await deps.repo.pending_bookings(a) == []


async def test_every_step_is_audited_with_actor_action_command_and_what_changed(
    deps: uc.Deps,
) -> None:
    await budget(deps)
    a = await ready(deps)
    await uc.approve(deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("100.00"), YEAR, None)
    document = await deps.repo.store.get(a)
    assert document is not None
    entry = document["_audit"][-1]
    assert (entry["actor"], entry["action"], entry["command_id"]) == (
        HOLDER.actor,
        "decided.approved",
        "approve-1",
    )
    assert entry["old"]["status"] == "received"
    assert entry["new"]["status"] == "approved"
    assert entry["new"]["amount_cents"] == 100_00


async def test_a_guarantee_released_returns_its_money_and_one_called_is_paid(
    deps: uc.Deps,
) -> None:
    await budget(deps, "1000.00")
    end = date(2027, 6, 30)
    released, called = await ready(deps, "case-1"), await ready(deps, "case-2")
    for a in (released, called):
        await uc.approve(deps, HOLDER, a, f"approve-{a}", Form.GUARANTEE, Decimal("400"), YEAR, end)
    assert (await uc.figures(deps, HOLDER, YEAR)).available == Decimal("200.00")
    with pytest.raises(RuleViolation) as partly:
        await uc.call_guarantee(deps, HOLDER, called, "call-1", Decimal("100.00"))
    assert partly.value.field == "amount"
    await uc.call_guarantee(deps, HOLDER, called, "call-1", Decimal("400.00"))
    closed = await uc.release(deps, HOLDER, released, "release-1")
    assert closed.status == Status.RELEASED
    assert (await outbox_types(deps, released))[-2:] == ["booked", "closed"]
    figures = await uc.figures(deps, HOLDER, YEAR)
    assert figures.available == Decimal("600.00")
    assert figures.committed == Decimal("400.00")
    assert figures.paid == Decimal("400.00")
    assert figures.ledger_consistent is True
    assert [o.application_id for o in figures.outstanding_advances] == [called]


async def test_a_write_off_leaves_the_budget_for_good(deps: uc.Deps) -> None:
    await budget(deps, "1000.00")
    a = await ready(deps)
    await uc.approve(deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("300.00"), YEAR, None)
    await uc.pay(deps, HOLDER, a, "pay-1", Decimal("300.00"))
    await uc.determine(deps, STAFF, a, "vws", "Wlz")
    await uc.request_recovery(deps, HOLDER, a)
    await uc.repay(deps, HOLDER, a, "repay-1", Decimal("100.00"))
    written = await uc.write_off(deps, HOLDER, a, "write-off-1", "party insolvent")
    assert written.written_off_cents == 200_00
    figures = await uc.figures(deps, HOLDER, YEAR)
    assert figures.written_off == Decimal("200.00")
    assert figures.committed == Decimal("0.00")
    assert figures.available == Decimal("800.00")
    assert figures.ledger_consistent is True


async def test_an_approval_beyond_the_budget_saves_and_books_nothing(deps: uc.Deps) -> None:
    await budget(deps, "100.00")
    a = await ready(deps)
    with pytest.raises(InsufficientBudget) as refused:
        await uc.approve(deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("100.01"), YEAR, None)
    assert refused.value.problem()["status"] == 409
    assert (await uc.get(deps, HOLDER, a)).status == Status.RECEIVED
    assert await deps.repo.ledger_sums(YEAR) == {}
    with pytest.raises(InsufficientBudget):  # no budget at all for that year
        await uc.approve(deps, HOLDER, a, "approve-2", Form.ADVANCE, Decimal("1"), 2031, None)
    approved = await uc.approve(
        deps, HOLDER, a, "approve-3", Form.ADVANCE, Decimal("100.00"), YEAR, None
    )
    assert approved.status == Status.APPROVED
    assert (await uc.figures(deps, HOLDER, YEAR)).available == Decimal("0.00")


async def test_a_retried_command_books_nothing_twice(deps: uc.Deps) -> None:
    await budget(deps)
    a = await ready(deps)
    for _ in range(2):
        await uc.approve(deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("100.00"), YEAR, None)
        await uc.pay(deps, HOLDER, a, "pay-1", Decimal("100.00"))
    assert await deps.repo.ledger_sums(YEAR) == {"commitment": 100_00, "payment": 100_00}
    assert await outbox_types(deps, a) == ["received", "decided", "booked", "booked"]
    figures = await uc.figures(deps, HOLDER, YEAR)
    assert (figures.committed, figures.paid) == (Decimal("100.00"), Decimal("100.00"))


async def test_a_booking_left_by_a_crash_is_booked_by_the_next_step(
    deps: uc.Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    await budget(deps)
    a = await ready(deps)
    await uc.approve(deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("100.00"), YEAR, None)
    book = deps.repo.book

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("process killed between the save and the booking")

    monkeypatch.setattr(deps.repo, "book", crash)
    with pytest.raises(RuntimeError):
        await uc.pay(deps, HOLDER, a, "pay-1", Decimal("100.00"))
    monkeypatch.setattr(deps.repo, "book", book)
    assert [b.kind for b in await deps.repo.pending_bookings(a)] == ["payment"]
    await uc.determine(deps, HOLDER, a, "gm0363", "Wmo 2015")  # a step that books nothing
    assert await deps.repo.pending_bookings(a) == []
    assert await deps.repo.ledger_sums(YEAR) == {"commitment": 100_00, "payment": 100_00}
    assert await uc.complete_pending_bookings(deps) == 0  # nothing left for the sweep


async def test_each_role_does_only_its_own_steps(deps: uc.Deps) -> None:
    await budget(deps)
    a = await ready(deps)
    with pytest.raises(Forbidden):
        await uc.approve(deps, STAFF, a, "approve-1", Form.ADVANCE, Decimal("1"), YEAR, None)
    with pytest.raises(Forbidden):
        await uc.set_budget(deps, STAFF, YEAR, Decimal("1"))
    with pytest.raises(Forbidden):
        await uc.get(deps, PROFESSIONAL, a)
    with pytest.raises(Forbidden):
        await uc.figures(deps, DIRECTOR, YEAR)
    assert (await uc.get(deps, DIRECTOR, a)).id == a
    with pytest.raises(NotFound):
        await uc.get(deps, HOLDER, "no-such-application")
    with pytest.raises(NotFound):
        await uc.pay(deps, HOLDER, "no-such-application", "pay-1", Decimal("1"))


async def test_rules_name_their_field_and_workflow_errors_their_status(deps: uc.Deps) -> None:
    await budget(deps)
    a = await received(deps)
    with pytest.raises(RuleViolation) as missing:
        await uc.approve(deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("1"), YEAR, None)
    assert missing.value.field == "conditions"
    assert missing.value.problem()["missing"] == [
        "need_established",
        "provision_available",
        "urgency",
    ]
    with pytest.raises(NotInState) as early:
        await uc.pay(deps, HOLDER, a, "pay-1", Decimal("1"))
    problem = early.value.problem()
    assert (problem["status"], problem["current_status"]) == (409, "received")
    assert problem["required_status"] == ["approved"]
    await uc.reject(deps, HOLDER, a, "reject-1", "the provision is not available")
    assert await outbox_types(deps, a) == ["received", "decided", "closed"]
    with pytest.raises(NotInState):
        await uc.record_conditions(deps, STAFF, a, {"urgency": (True, None)})


async def test_the_budget_cannot_go_below_what_is_committed(deps: uc.Deps) -> None:
    with pytest.raises(NotFound):
        await uc.figures(deps, HOLDER, YEAR)
    await budget(deps, "500.00")
    a = await ready(deps)
    await uc.approve(deps, HOLDER, a, "approve-1", Form.ADVANCE, Decimal("400.00"), YEAR, None)
    with pytest.raises(Conflict):
        await uc.set_budget(deps, HOLDER, YEAR, Decimal("300.00"))
    raised = await uc.set_budget(deps, HOLDER, YEAR, Decimal("800.00"))
    assert (raised.total, raised.available) == (Decimal("800.00"), Decimal("400.00"))
    lowered = await uc.set_budget(deps, HOLDER, YEAR, Decimal("400.00"))
    assert lowered.available == Decimal("0.00")


async def test_applications_are_found_by_case_and_status_page_by_page(deps: uc.Deps) -> None:
    await budget(deps)
    first = [await ready(deps, "case-a") for _ in range(3)]
    other = await received(deps, "case-b")
    await uc.approve(
        deps, HOLDER, first[0], "approve-1", Form.ADVANCE, Decimal("10.00"), YEAR, None
    )
    total, page = await uc.search(deps, DIRECTOR, case_id="case-a", skip=0, limit=2)
    assert total == 3
    assert len(page) == 2
    _, rest = await uc.search(deps, DIRECTOR, case_id="case-a", skip=2, limit=2)
    assert {a.id for a in page + rest} == set(first)
    total, found = await uc.search(deps, DIRECTOR, status=Status.APPROVED)
    assert (total, [a.id for a in found]) == (1, [first[0]])
    total, found = await uc.search(deps, DIRECTOR, case_id="case-b", status=Status.RECEIVED)
    assert (total, [a.id for a in found]) == (1, [other])
    assert (await uc.search(deps, DIRECTOR, case_id="case-b", status=Status.APPROVED))[0] == 0
    with pytest.raises(Forbidden):
        await uc.search(deps, PROFESSIONAL)
