"""Use cases of the overbruggingsprocedure: async functions taking their dependencies.

Every step goes through the runtime's change loop (``Changes.apply``). What a step books is
what its ``LedgerBooked`` events say (decision record overbrugging-0001):

- the commitment is booked *before* the application is saved (the loop's ``before_write``):
  the budget's conditional update decides whether the approval may happen at all;
- every other booking (payment, guarantee called, release, repayment, write-off) cannot
  fail on the budget: it is saved on the application as a pending booking in the same
  atomic write (``extra_push``) and booked after. Only the command whose write wins owes
  a booking, so two different commands on one application cannot both book; a crash in
  between leaves a pending booking that the next step on the application, a retry, or
  the periodic sweep books, once.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from pmm_contracts.envelope import EventData
from pmm_contracts.events import bridging as ev
from pmm_contracts.vocabulary import Role
from pmm_overbrugging.adapters.repository import AlreadyBooked, Booking, BridgingRepository
from pmm_overbrugging.domain.model import (
    Application,
    Form,
    InsufficientBudget,
    Status,
    to_cents,
    to_euros,
)
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Changes
from pmm_runtime.errors import Conflict, Forbidden, NotFound
from pmm_runtime.mongo import Document

NAMESPACE = uuid.UUID("6f1c2a7e-2b8f-4c55-9a53-3c1b0f0e7d21")
READERS = (Role.BUDGET_HOLDER, Role.PMM_STAFF, Role.CASE_DIRECTOR)
OWES_NOTHING = frozenset({Status.RECEIVED, Status.REJECTED, Status.APPROVED})
"""Statuses in which an application cannot owe a booking: the only booking before them, the
commitment, is booked before the approval is saved."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    repo: BridgingRepository
    changes: Changes
    now: Callable[[], datetime] = _now

    def today(self) -> date:
        return self.now().date()


def require(who: Identity, *roles: Role) -> None:
    if not who.has_any(*roles):
        raise Forbidden(f"requires one of the roles: {', '.join(r.value for r in roles)}")


# Reading ----------------------------------------------------------------------------------


async def get(deps: Deps, who: Identity, application_id: str) -> Application:
    require(who, *READERS)
    application = await deps.repo.get(application_id)
    if application is None:
        raise NotFound(f"no application {application_id!r}")
    return application


async def ledger(deps: Deps, who: Identity, application_id: str) -> list[Document]:
    """The application's ledger entries, oldest first; its commitment too when it was
    booked but the approval not saved (a crash, or a lost race, in between)."""
    await get(deps, who, application_id)
    return await deps.repo.entries(application_id, also=[commitment_id(application_id)])


async def search(
    deps: Deps,
    who: Identity,
    *,
    case_id: str | None = None,
    status: Status | None = None,
    skip: int = 0,
    limit: int = 50,
) -> tuple[int, list[Application]]:
    require(who, *READERS)
    return await deps.repo.search(case_id=case_id, status=status, skip=skip, limit=limit)


# From the Loket ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """The Loket's request to pre-finance or guarantee a provision."""

    case_id: str
    case_number: str
    request_id: str
    provision: str
    provider: str
    estimated_amount: Decimal
    candidate_payers: tuple[str, ...]
    dispute: str
    settle_attempt: str


def application_id(request_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, request_id))


async def receive(deps: Deps, request: Request, *, caused_by: str) -> bool:
    """Create the application of a bridging request; a replay creates nothing new (its id
    derives from the request id). The Loket's request already tells two conditions."""
    application = Application(
        id=application_id(request.request_id),
        case_id=request.case_id,
        case_number=request.case_number,
        request_id=request.request_id,
        provision=request.provision,
        provider=request.provider,
        estimated_cents=to_cents(request.estimated_amount),
        candidate_payers=list(request.candidate_payers),
        received_on=deps.today(),
        conditions={
            "financing_disputed": {
                "met": len(request.candidate_payers) >= 2,
                "note": request.dispute,
            },
            "settle_attempt": {"met": bool(request.settle_attempt), "note": request.settle_attempt},
        },
    )
    received = ev.ApplicationReceived(
        application_id=application.id,
        case_id=request.case_id,
        case_number=request.case_number,
        request_id=request.request_id,
        estimated_amount=request.estimated_amount,
    )
    return await deps.changes.create(
        deps.repo,
        application,
        [received],
        actor="service:loket",
        action="received",
        command_id=caused_by,
    )


# Steps ------------------------------------------------------------------------------------


def ledger_entry_id(application_id: str, kind: ev.LedgerEntryKind, command_id: str) -> str:
    """An application is committed at most once, whichever approval command wins: two
    concurrent approvals with different command ids then cannot both commit budget (the
    loser would leak its commitment). Every other entry is keyed by its command id."""
    if kind == ev.LedgerEntryKind.COMMITMENT:
        return commitment_id(application_id)
    return command_id


def commitment_id(application_id: str) -> str:
    return f"commitment:{application_id}"


def _bookings(events: Sequence[EventData]) -> list[Booking]:
    """What a step books: exactly what its ``LedgerBooked`` events announce."""
    return [
        Booking(e.entry_id, e.budget_year, e.kind.value, to_cents(e.amount))
        for e in events
        if isinstance(e, ev.LedgerBooked)
    ]


async def _book(deps: Deps, application_id: str, booking: Booking) -> None:
    """Book one pending booking (idempotent by its entry id) and mark it done."""
    with contextlib.suppress(AlreadyBooked):
        await deps.repo.book(booking, application_id)
    await deps.repo.booked(application_id, booking)


async def settle(deps: Deps, application_id: str) -> int:
    """Book what the application owes (its own step's booking, or one a crash left)."""
    owed = await deps.repo.pending_bookings(application_id)
    for booking in owed:
        await _book(deps, application_id, booking)
    return len(owed)


async def complete_pending_bookings(deps: Deps) -> int:
    """The periodic sweep: book what a step saved but did not book (it crashed between
    its two writes, and no later command on that application booked it either)."""
    done = 0
    for application_id, bookings, marker in await deps.repo.with_pending_bookings():
        for booking in bookings:
            await _book(deps, application_id, booking)
            done += 1
        await deps.repo.settled(marker)
    return done


async def _commit(deps: Deps, application_id: str, booking: Booking) -> None:
    """Commit budget for an approval, or raise ``InsufficientBudget``; once per application."""
    try:
        await deps.repo.book(booking, application_id)
    except LookupError as exc:
        raise InsufficientBudget(
            f"{to_euros(booking.cents)} euro exceeds the available budget of {booking.year} "
            "(or no budget is set for that year)"
        ) from exc
    except AlreadyBooked:
        # Committed by an earlier attempt (of this command, or of another approval of this
        # application): go on only with the same amount.
        if await deps.repo.entry_amount(booking.entry_id) != booking.cents:
            raise Conflict(
                f"{booking.entry_id} was booked with another amount; retry the original command"
            ) from None


async def _step(
    deps: Deps,
    who: Identity,
    application_id: str,
    command_id: str | None,
    action: str,
    change: Callable[[Application], list[EventData]],
    *,
    reason: str | None = None,
) -> Application:
    """One command through the change loop, with its booking (see the module doc)."""
    owed: list[Booking] = []

    async def commit_first(application: Application, events: Sequence[EventData]) -> None:
        owed.clear()  # every attempt derives its bookings again from its own events
        for booking in _bookings(events):
            if booking.kind == ev.LedgerEntryKind.COMMITMENT:
                await _commit(deps, application.id, booking)
            else:
                owed.append(booking)

    done = await deps.changes.apply(
        deps.repo,
        application_id,
        command_id,
        change,
        actor=who.actor,
        action=action,
        reason=reason,
        before_write=commit_first,
        extra_push=lambda _: deps.repo.owing(owed),
    )
    if owed or done.aggregate.status not in OWES_NOTHING:
        try:
            await settle(deps, application_id)
        except Exception:
            # Saved but not booked: the sweep books it (a killed process: its first
            # round after the restart scans for it).
            with contextlib.suppress(Exception):
                await deps.repo.announce_owing(application_id)
            raise
    return done.aggregate


async def record_conditions(
    deps: Deps,
    who: Identity,
    application_id: str,
    conditions: Mapping[str, tuple[bool, str | None]],
) -> Application:
    require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF)

    def change(a: Application) -> list[EventData]:
        for name, (met, note) in conditions.items():
            a.record_condition(name, met, note)
        return []

    return await _step(deps, who, application_id, None, "conditions.recorded", change)


async def approve(
    deps: Deps,
    who: Identity,
    application_id: str,
    command_id: str,
    form: Form,
    amount: Decimal,
    year: int,
    period_end: date | None,
) -> Application:
    require(who, Role.BUDGET_HOLDER)
    cents = to_cents(amount)

    def change(a: Application) -> list[EventData]:
        a.approve(form, cents, year, period_end)
        return [
            ev.ApplicationDecided(
                application_id=a.id,
                case_id=a.case_id,
                approved=True,
                form=ev.BridgingForm(form),
                amount=to_euros(cents),
                budget_year=year,
                period_end=period_end,
            ),
            _booked(a, command_id, ev.LedgerEntryKind.COMMITMENT, cents),
        ]

    return await _step(deps, who, application_id, command_id, "decided.approved", change)


async def reject(
    deps: Deps, who: Identity, application_id: str, command_id: str, reason: str
) -> Application:
    require(who, Role.BUDGET_HOLDER)

    def change(a: Application) -> list[EventData]:
        a.reject(reason)
        return [
            ev.ApplicationDecided(
                application_id=a.id, case_id=a.case_id, approved=False, reason=reason
            ),
            _closed(a),
        ]

    return await _step(
        deps, who, application_id, command_id, "decided.rejected", change, reason=reason
    )


def _booked(
    a: Application, command_id: str, kind: ev.LedgerEntryKind, cents: int
) -> ev.LedgerBooked:
    return ev.LedgerBooked(
        application_id=a.id,
        case_id=a.case_id,
        entry_id=ledger_entry_id(a.id, kind, command_id),
        kind=kind,
        amount=to_euros(cents),
        budget_year=a.budget_year or 0,
    )


def _closed(a: Application) -> ev.ApplicationClosed:
    return ev.ApplicationClosed(application_id=a.id, case_id=a.case_id, status=a.status.value)


async def pay(
    deps: Deps, who: Identity, application_id: str, command_id: str, amount: Decimal
) -> Application:
    require(who, Role.BUDGET_HOLDER)
    cents = to_cents(amount)

    def change(a: Application) -> list[EventData]:
        a.pay(cents, deps.today())
        return [_booked(a, command_id, ev.LedgerEntryKind.PAYMENT, cents)]

    return await _step(deps, who, application_id, command_id, "paid", change)


async def call_guarantee(
    deps: Deps, who: Identity, application_id: str, command_id: str, amount: Decimal
) -> Application:
    require(who, Role.BUDGET_HOLDER)
    cents = to_cents(amount)

    def change(a: Application) -> list[EventData]:
        a.call_guarantee(cents, deps.today())
        return [_booked(a, command_id, ev.LedgerEntryKind.GUARANTEE_CALLED, cents)]

    return await _step(deps, who, application_id, command_id, "guarantee.called", change)


async def release(deps: Deps, who: Identity, application_id: str, command_id: str) -> Application:
    require(who, Role.BUDGET_HOLDER)

    def change(a: Application) -> list[EventData]:
        cents = a.release()
        return [_booked(a, command_id, ev.LedgerEntryKind.RELEASE, cents), _closed(a)]

    return await _step(deps, who, application_id, command_id, "guarantee.released", change)


async def determine(
    deps: Deps, who: Identity, application_id: str, party: str, legal_ground: str
) -> Application:
    require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF)

    def change(a: Application) -> list[EventData]:
        a.determine(party, legal_ground, deps.today())
        return [
            ev.ResponsiblePartyDetermined(
                application_id=a.id,
                case_id=a.case_id,
                responsible_party=party,
                legal_ground=legal_ground,
            )
        ]

    return await _step(
        deps,
        who,
        application_id,
        f"determine:{application_id}",
        "responsible_party.determined",
        change,
    )


async def request_recovery(deps: Deps, who: Identity, application_id: str) -> Application:
    require(who, Role.BUDGET_HOLDER)

    def change(a: Application) -> list[EventData]:
        cents = a.request_recovery()
        assert a.responsible_party is not None
        return [
            ev.RecoveryRequested(
                application_id=a.id,
                case_id=a.case_id,
                responsible_party=a.responsible_party,
                amount=to_euros(cents),
            )
        ]

    return await _step(
        deps, who, application_id, f"recovery:{application_id}", "recovery.requested", change
    )


async def repay(
    deps: Deps, who: Identity, application_id: str, command_id: str, amount: Decimal
) -> Application:
    require(who, Role.BUDGET_HOLDER)
    cents = to_cents(amount)

    def change(a: Application) -> list[EventData]:
        done = a.repay(cents)
        booked = _booked(a, command_id, ev.LedgerEntryKind.RECOVERY, cents)
        return [booked, _closed(a)] if done else [booked]

    return await _step(deps, who, application_id, command_id, "repayment.booked", change)


async def write_off(
    deps: Deps, who: Identity, application_id: str, command_id: str, reason: str
) -> Application:
    require(who, Role.BUDGET_HOLDER)

    def change(a: Application) -> list[EventData]:
        cents = a.write_off(reason)
        return [_booked(a, command_id, ev.LedgerEntryKind.WRITE_OFF, cents), _closed(a)]

    return await _step(deps, who, application_id, command_id, "written_off", change, reason=reason)


# Budget and figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutstandingAdvance:
    application_id: str
    amount: Decimal
    age_days: int | None


@dataclass(frozen=True)
class BudgetFigures:
    """A year's budget: its counters in euros, the ledger check and the figures of the
    applications decided on it."""

    year: int
    total: Decimal
    available: Decimal
    committed: Decimal
    paid: Decimal
    recovered: Decimal
    written_off: Decimal
    ledger_consistent: bool
    outstanding_advances: list[OutstandingAdvance]
    recovery_rate: float | None
    average_days_payment_to_determination: float | None
    applications: int
    status_counts: dict[str, int]


async def set_budget(deps: Deps, who: Identity, year: int, total: Decimal) -> BudgetFigures:
    require(who, Role.BUDGET_HOLDER)
    result = await deps.repo.set_budget(year, to_cents(total))
    if result is None:
        raise Conflict("the total cannot go below what is committed, or it changed meanwhile")
    return await figures(deps, who, year)


async def figures(deps: Deps, who: Identity, year: int) -> BudgetFigures:
    require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF)
    budget = await deps.repo.budget(year)
    if budget is None:
        raise NotFound(f"no budget for {year}")
    sums = await deps.repo.ledger_sums(year)
    committed_from_ledger = (
        sums.get("commitment", 0)
        - sums.get("release", 0)
        - sums.get("recovery", 0)
        - sums.get("write_off", 0)
    )
    applications = await deps.repo.of_year(year)
    paid = sum(a.paid_cents for a in applications)
    recovered = sum(a.recovered_cents for a in applications)
    days = [
        (a.determined_on - a.paid_on).days for a in applications if a.determined_on and a.paid_on
    ]
    today = deps.today()
    counts: dict[str, int] = {}
    for a in applications:
        counts[a.status.value] = counts.get(a.status.value, 0) + 1
    return BudgetFigures(
        year=year,
        total=to_euros(budget["total_cents"]),
        available=to_euros(budget["available_cents"]),
        committed=to_euros(budget["committed_cents"]),
        paid=to_euros(budget["paid_cents"]),
        recovered=to_euros(budget["recovered_cents"]),
        written_off=to_euros(budget["written_off_cents"]),
        ledger_consistent=committed_from_ledger == budget["committed_cents"]
        and budget["available_cents"] + budget["committed_cents"] + budget["written_off_cents"]
        == budget["total_cents"],
        outstanding_advances=[
            OutstandingAdvance(
                application_id=a.id,
                amount=to_euros(a.outstanding_cents),
                age_days=(today - a.paid_on).days if a.paid_on else None,
            )
            for a in applications
            if a.outstanding_cents > 0
        ],
        recovery_rate=round(recovered / paid, 4) if paid else None,
        average_days_payment_to_determination=round(sum(days) / len(days), 1) if days else None,
        applications=len(applications),
        status_counts={s.value: counts[s.value] for s in Status if s.value in counts},
    )
