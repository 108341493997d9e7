"""Use cases of the overbruggingsprocedure: async functions taking their dependencies."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pmm_contracts import new_event
from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events import bridging as ev
from pmm_contracts.events.cases import BridgingRequested
from pmm_contracts.topics import OVERBRUGGING_APPLICATIONS
from pmm_contracts.vocabulary import Role
from pmm_overbrugging.adapters.repository import AlreadyBooked, BridgingRepository
from pmm_overbrugging.domain.model import (
    Application,
    BridgingError,
    Form,
    InsufficientBudget,
    RuleViolation,
    Status,
    to_cents,
    to_euros,
)
from pmm_runtime.auth import Identity
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import Outgoing, audit_entry

NAMESPACE = uuid.UUID("6f1c2a7e-2b8f-4c55-9a53-3c1b0f0e7d21")


class NotFound(BridgingError):
    pass


class Forbidden(BridgingError):
    pass


class Conflict(BridgingError):
    pass


@dataclass(frozen=True)
class Deps:
    repo: BridgingRepository
    source: str
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    notify: Callable[[], None] = lambda: None

    def today(self) -> date:
        return self.now().date()


def require(who: Identity, *roles: Role) -> None:
    if not who.has_any(*roles):
        raise Forbidden(f"requires one of the roles: {', '.join(r.value for r in roles)}")


def _event(deps: Deps, application: Application, data: EventData) -> Outgoing:
    return Outgoing(
        OVERBRUGGING_APPLICATIONS, new_event(data, subject=application.id, source=deps.source)
    )


async def get(deps: Deps, application_id: str) -> Application:
    application = await deps.repo.get(application_id)
    if application is None:
        raise NotFound(f"no application {application_id!r}")
    return application


# From the Loket ---------------------------------------------------------------------------


async def on_case_event(deps: Deps, event: CloudEvent[Any]) -> None:
    """Create an application from a bridging request; a replay creates nothing new."""
    data = event.data
    if not isinstance(data, BridgingRequested):
        return
    application = Application(
        id=str(uuid.uuid5(NAMESPACE, data.request_id)),
        case_id=data.case_id,
        case_number=data.case_number,
        request_id=data.request_id,
        provision=data.provision,
        provider=data.provider,
        estimated_cents=to_cents(data.estimated_amount),
        candidate_payers=list(data.candidate_payers),
        received_on=deps.today(),
    )
    application.conditions = {
        "financing_disputed": {"met": len(data.candidate_payers) >= 2, "note": data.dispute},
        "settle_attempt": {"met": bool(data.settle_attempt), "note": data.settle_attempt},
    }
    received = ev.ApplicationReceived(
        application_id=application.id,
        case_id=data.case_id,
        case_number=data.case_number,
        request_id=data.request_id,
        estimated_amount=data.estimated_amount,
    )
    created = await deps.repo.add(
        application,
        [_event(deps, application, received)],
        audit_entry(actor="service:loket", action="received"),
        caused_by=str(event.id),
    )
    if created:
        deps.notify()


# Steps ------------------------------------------------------------------------------------


def ledger_entry_id(application_id: str, kind: str, command_id: str) -> str:
    """An application is committed at most once, whichever approval command wins: two
    concurrent approvals with different command ids then cannot both commit budget (the
    loser would leak its commitment). Every other entry is keyed by its command id."""
    return f"commitment:{application_id}" if kind == "commitment" else command_id


async def _book(deps: Deps, application_id: str, booking: Document) -> None:
    """Book one pending booking (idempotent by its entry id) and mark it done."""
    with contextlib.suppress(AlreadyBooked):
        await deps.repo.book(
            command_id=booking["entry_id"],
            year=booking["year"],
            kind=booking["kind"],
            amount_cents=booking["cents"],
            application_id=application_id,
        )
    await deps.repo.booked(application_id, booking)


async def complete_pending_bookings(deps: Deps) -> int:
    """The periodic sweep: book what a step saved but did not book (it crashed between
    its two writes, and no later command on that application booked it either)."""
    done = 0
    for application_id, bookings in await deps.repo.with_pending_bookings():
        for booking in bookings:
            await _book(deps, application_id, booking)
            done += 1
    return done


async def _step(
    deps: Deps,
    who: Identity,
    application_id: str,
    command_id: str,
    action: str,
    change: Callable[[Application], tuple[list[EventData], tuple[str, int] | None]],
    reason: str | None = None,
) -> Application:
    """One command: domain change, budget and ledger booking, and the application's new
    state with its events, each step idempotent by ``command_id``.

    A commitment is booked *before* the application is saved: the budget's conditional
    update decides whether the approval may happen at all. Every other booking (payment,
    release, recovery, write-off) cannot fail on the budget, so the application is saved
    *first* with the booking it owes (``_pending_bookings``, same atomic write) and booked
    after: two different commands on one application cannot both book, since only the one
    whose save wins owes a booking, and a crash in between leaves a pending booking that
    the next command on the application, a retry, or the periodic sweep books."""
    for _ in range(5):
        application, applied, pending = await deps.repo.get_with_applied(application_id)
        if application is None:
            raise NotFound(f"no application {application_id!r}")
        for booking in pending:
            await _book(deps, application.id, booking)
        if command_id in applied:
            return application  # a retried command changes nothing
        before = {"status": application.status.value}
        events, booking_owed = change(application)
        owed: Document | None = None
        if booking_owed is not None:
            kind, cents = booking_owed
            year = application.budget_year or deps.today().year
            entry_id = ledger_entry_id(application.id, kind, command_id)
            if kind == "commitment":
                await _commit(deps, application.id, entry_id, year, cents)
            else:
                owed = {"entry_id": entry_id, "year": year, "kind": kind, "cents": cents}
        expected = application.version
        application.version += 1
        saved = await deps.repo.save(
            application,
            expected,
            [_event(deps, application, e) for e in events],
            audit_entry(
                actor=who.actor,
                action=action,
                reason=reason,
                old=before,
                new={"status": application.status.value, "command_id": command_id},
            ),
            caused_by=command_id,
            pending_booking=owed,
        )
        if saved:
            if owed is not None:
                await _book(deps, application.id, owed)
            deps.notify()
            return application
    raise Conflict(f"application {application_id} kept changing; try again")


async def _commit(deps: Deps, application_id: str, entry_id: str, year: int, cents: int) -> None:
    """Commit budget for an approval, or raise ``InsufficientBudget``; once per application."""
    try:
        await deps.repo.book(
            command_id=entry_id,
            year=year,
            kind="commitment",
            amount_cents=cents,
            application_id=application_id,
        )
    except LookupError as exc:
        raise InsufficientBudget(
            f"{to_euros(cents)} euro exceeds the available budget of {year} "
            "(or no budget is set for that year)"
        ) from exc
    except AlreadyBooked:
        # Committed by an earlier attempt (of this command, or of another approval of this
        # application): go on only with the same amount.
        if await deps.repo.entry_amount(entry_id) != cents:
            raise Conflict(
                f"{entry_id} was booked with another amount; retry the original command"
            ) from None


async def record_conditions(
    deps: Deps, who: Identity, application_id: str, conditions: dict[str, tuple[bool, str | None]]
) -> Application:
    require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF)

    def change(a: Application) -> tuple[list[EventData], None]:
        for name, (met, note) in conditions.items():
            a.record_condition(name, met, note)
        return [], None

    return await _step(
        deps, who, application_id, f"conditions:{uuid.uuid4()}", "conditions.recorded", change
    )


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

    def change(a: Application) -> tuple[list[EventData], tuple[str, int]]:
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
            ev.LedgerBooked(
                application_id=a.id,
                case_id=a.case_id,
                entry_id=ledger_entry_id(a.id, "commitment", command_id),
                kind=ev.LedgerEntryKind.COMMITMENT,
                amount=to_euros(cents),
                budget_year=year,
            ),
        ], ("commitment", cents)

    return await _step(deps, who, application_id, command_id, "decided.approved", change)


async def reject(
    deps: Deps, who: Identity, application_id: str, command_id: str, reason: str
) -> Application:
    require(who, Role.BUDGET_HOLDER)

    def change(a: Application) -> tuple[list[EventData], None]:
        a.reject(reason)
        return [
            ev.ApplicationDecided(
                application_id=a.id, case_id=a.case_id, approved=False, reason=reason
            ),
            ev.ApplicationClosed(application_id=a.id, case_id=a.case_id, status="rejected"),
        ], None

    return await _step(
        deps, who, application_id, command_id, "decided.rejected", change, reason=reason
    )


def _booked(
    a: Application, command_id: str, kind: ev.LedgerEntryKind, cents: int
) -> ev.LedgerBooked:
    return ev.LedgerBooked(
        application_id=a.id,
        case_id=a.case_id,
        entry_id=command_id,
        kind=kind,
        amount=to_euros(cents),
        budget_year=a.budget_year or 0,
    )


async def pay(
    deps: Deps, who: Identity, application_id: str, command_id: str, amount: Decimal
) -> Application:
    require(who, Role.BUDGET_HOLDER)
    cents = to_cents(amount)

    def change(a: Application) -> tuple[list[EventData], tuple[str, int]]:
        a.pay(cents, deps.today())
        return [_booked(a, command_id, ev.LedgerEntryKind.PAYMENT, cents)], ("payment", cents)

    return await _step(deps, who, application_id, command_id, "paid", change)


async def call_guarantee(
    deps: Deps, who: Identity, application_id: str, command_id: str, amount: Decimal
) -> Application:
    require(who, Role.BUDGET_HOLDER)
    cents = to_cents(amount)

    def change(a: Application) -> tuple[list[EventData], tuple[str, int]]:
        a.call_guarantee(cents, deps.today())
        unused = a.amount_cents - cents
        if unused:
            raise RuleViolation("call the full guarantee, or release it")
        return [_booked(a, command_id, ev.LedgerEntryKind.GUARANTEE_CALLED, cents)], (
            "guarantee_called",
            cents,
        )

    return await _step(deps, who, application_id, command_id, "guarantee.called", change)


async def release(deps: Deps, who: Identity, application_id: str, command_id: str) -> Application:
    require(who, Role.BUDGET_HOLDER)

    def change(a: Application) -> tuple[list[EventData], tuple[str, int]]:
        cents = a.release()
        return [
            _booked(a, command_id, ev.LedgerEntryKind.RELEASE, cents),
            ev.ApplicationClosed(application_id=a.id, case_id=a.case_id, status="released"),
        ], ("release", cents)

    return await _step(deps, who, application_id, command_id, "guarantee.released", change)


async def determine(
    deps: Deps, who: Identity, application_id: str, party: str, legal_ground: str
) -> Application:
    require(who, Role.BUDGET_HOLDER, Role.PMM_STAFF)

    def change(a: Application) -> tuple[list[EventData], None]:
        a.determine(party, legal_ground, deps.today())
        return [
            ev.ResponsiblePartyDetermined(
                application_id=a.id,
                case_id=a.case_id,
                responsible_party=party,
                legal_ground=legal_ground,
            )
        ], None

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

    def change(a: Application) -> tuple[list[EventData], None]:
        cents = a.request_recovery()
        assert a.responsible_party is not None
        return [
            ev.RecoveryRequested(
                application_id=a.id,
                case_id=a.case_id,
                responsible_party=a.responsible_party,
                amount=to_euros(cents),
            )
        ], None

    return await _step(
        deps, who, application_id, f"recovery:{application_id}", "recovery.requested", change
    )


async def repay(
    deps: Deps, who: Identity, application_id: str, command_id: str, amount: Decimal
) -> Application:
    require(who, Role.BUDGET_HOLDER)
    cents = to_cents(amount)

    def change(a: Application) -> tuple[list[EventData], tuple[str, int]]:
        done = a.repay(cents)
        events: list[EventData] = [_booked(a, command_id, ev.LedgerEntryKind.RECOVERY, cents)]
        if done:
            events.append(
                ev.ApplicationClosed(application_id=a.id, case_id=a.case_id, status="recovered")
            )
        return events, ("recovery", cents)

    return await _step(deps, who, application_id, command_id, "repayment.booked", change)


async def write_off(
    deps: Deps, who: Identity, application_id: str, command_id: str, reason: str
) -> Application:
    require(who, Role.BUDGET_HOLDER)

    def change(a: Application) -> tuple[list[EventData], tuple[str, int]]:
        cents = a.write_off(reason)
        return [
            _booked(a, command_id, ev.LedgerEntryKind.WRITE_OFF, cents),
            ev.ApplicationClosed(application_id=a.id, case_id=a.case_id, status="written_off"),
        ], ("write_off", cents)

    return await _step(deps, who, application_id, command_id, "written_off", change, reason=reason)


# Budget and figures -------------------------------------------------------------------------


async def set_budget(deps: Deps, who: Identity, year: int, total: Decimal) -> dict[str, Any]:
    require(who, Role.BUDGET_HOLDER)
    result = await deps.repo.set_budget(year, to_cents(total))
    if result is None:
        raise Conflict("the total cannot go below what is committed, or it changed meanwhile")
    return await figures(deps, year)


async def figures(deps: Deps, year: int) -> dict[str, Any]:
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
    applications = [a for a in await deps.repo.all() if a.budget_year == year]
    outstanding = [a for a in applications if a.outstanding_cents > 0]
    paid = sum(a.paid_cents for a in applications)
    recovered = sum(a.recovered_cents for a in applications)
    days = [
        (a.determined_on - a.paid_on).days for a in applications if a.determined_on and a.paid_on
    ]
    today = deps.today()
    return {
        "year": year,
        "total": str(to_euros(budget["total_cents"])),
        "available": str(to_euros(budget["available_cents"])),
        "committed": str(to_euros(budget["committed_cents"])),
        "paid": str(to_euros(budget["paid_cents"])),
        "recovered": str(to_euros(budget["recovered_cents"])),
        "written_off": str(to_euros(budget["written_off_cents"])),
        "ledger_consistent": committed_from_ledger == budget["committed_cents"]
        and budget["available_cents"] + budget["committed_cents"] + budget["written_off_cents"]
        == budget["total_cents"],
        "outstanding_advances": [
            {
                "application_id": a.id,
                "amount": str(to_euros(a.outstanding_cents)),
                "age_days": (today - a.paid_on).days if a.paid_on else None,
            }
            for a in outstanding
        ],
        "recovery_rate": round(recovered / paid, 4) if paid else None,
        "average_days_payment_to_determination": round(sum(days) / len(days), 1) if days else None,
        "applications": len(applications),
        "status_counts": {
            s.value: sum(1 for a in applications if a.status == s)
            for s in Status
            if any(a.status == s for a in applications)
        },
    }
