"""The overbruggingsprocedure's domain: an application, its money, and its workflow.

Money is handled in whole cents (``int``) inside the service and the store (FerretDB has
no Decimal128); the edges convert from and to ``Decimal`` euros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from pmm_runtime import errors
from pmm_runtime.errors import RuleViolation


class Status(StrEnum):
    RECEIVED = "received"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"  # the advance (voorschot) has been paid out
    CALLED = "called"  # the guarantee (garantstelling) was called
    RELEASED = "released"  # the guarantee ended unused
    DETERMINED = "determined"  # the responsible party is known
    RECOVERY_REQUESTED = "recovery_requested"
    RECOVERED = "recovered"
    WRITTEN_OFF = "written_off"


ALLOWED_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset({Status.APPROVED, Status.REJECTED}),
    Status.APPROVED: frozenset({Status.PAID, Status.CALLED, Status.RELEASED}),
    Status.REJECTED: frozenset(),
    Status.PAID: frozenset({Status.DETERMINED, Status.WRITTEN_OFF}),
    Status.CALLED: frozenset({Status.DETERMINED, Status.WRITTEN_OFF}),
    Status.RELEASED: frozenset(),
    Status.DETERMINED: frozenset({Status.RECOVERY_REQUESTED, Status.WRITTEN_OFF}),
    Status.RECOVERY_REQUESTED: frozenset({Status.RECOVERED, Status.WRITTEN_OFF}),
    Status.RECOVERED: frozenset(),
    Status.WRITTEN_OFF: frozenset(),
}


class Form(StrEnum):
    ADVANCE = "advance"  # voorschot
    GUARANTEE = "guarantee"  # garantstelling


CONDITIONS = (
    "need_established",
    "provision_available",
    "financing_disputed",
    "urgency",
    "settle_attempt",
)
"""The checklist: every condition must be met before an approval."""


def _sources(wanted: Status) -> list[str]:
    return sorted(s.value for s, targets in ALLOWED_TRANSITIONS.items() if wanted in targets)


class ForbiddenTransition(errors.NotInState):
    """The workflow table does not allow this move (HTTP 409, naming the allowed next)."""

    def __init__(self, current: Status, wanted: Status) -> None:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[current])
        super().__init__(
            f"an application that is {current.value} cannot become "
            f"{wanted.value}; allowed next: {', '.join(allowed) or 'none'}",
            current_status=current.value,
            allowed=allowed,
            required_status=_sources(wanted),
        )


class InsufficientBudget(errors.Conflict):
    """The year's available budget does not cover the commitment (HTTP 409)."""


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_euros(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


@dataclass
class Application:
    id: str
    case_id: str
    case_number: str
    request_id: str
    provision: str
    provider: str
    estimated_cents: int
    candidate_payers: list[str]
    received_on: date
    status: Status = Status.RECEIVED
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    form: Form | None = None
    amount_cents: int = 0
    budget_year: int | None = None
    period_end: date | None = None
    reason: str | None = None
    paid_cents: int = 0
    paid_on: date | None = None
    recovered_cents: int = 0
    written_off_cents: int = 0
    responsible_party: str | None = None
    legal_ground: str | None = None
    determined_on: date | None = None
    version: int = 1

    def _allow(self, wanted: Status) -> None:
        """The workflow table is checked first, in one place, before any other rule."""
        if wanted not in ALLOWED_TRANSITIONS[self.status]:
            raise ForbiddenTransition(self.status, wanted)

    def record_condition(self, name: str, met: bool, note: str | None) -> None:
        if name not in CONDITIONS:
            raise RuleViolation(name, f"unknown condition {name!r}; one of {', '.join(CONDITIONS)}")
        if self.status != Status.RECEIVED:
            raise errors.NotInState(
                "conditions are assessed before the decision",
                current_status=self.status.value,
                allowed=[s.value for s in ALLOWED_TRANSITIONS[self.status]],
                required_status=[Status.RECEIVED.value],
            )
        self.conditions[name] = {"met": met, "note": note}

    def missing_conditions(self) -> list[str]:
        return [c for c in CONDITIONS if not self.conditions.get(c, {}).get("met")]

    def approve(self, form: Form, amount_cents: int, year: int, period_end: date | None) -> None:
        self._allow(Status.APPROVED)
        missing = self.missing_conditions()
        if missing:
            raise RuleViolation(
                "conditions", f"conditions not met: {', '.join(missing)}", missing=missing
            )
        if amount_cents <= 0:
            raise RuleViolation("amount", "amount must be positive")
        if form == Form.GUARANTEE and period_end is None:
            raise RuleViolation("period_end", "a guarantee needs a period_end")
        self.status = Status.APPROVED
        self.form, self.amount_cents, self.budget_year = form, amount_cents, year
        self.period_end = period_end

    def reject(self, reason: str) -> None:
        self._allow(Status.REJECTED)
        self.status = Status.REJECTED
        self.reason = reason

    def pay(self, amount_cents: int, today: date) -> None:
        self._allow(Status.PAID)
        if self.form != Form.ADVANCE:
            raise RuleViolation("form", "only an advance is paid out; a guarantee is called")
        if amount_cents != self.amount_cents:
            raise RuleViolation("amount", "the advance is paid in full, as approved")
        self.status = Status.PAID
        self.paid_cents, self.paid_on = amount_cents, today

    def call_guarantee(self, amount_cents: int, today: date) -> None:
        self._allow(Status.CALLED)
        if self.form != Form.GUARANTEE:
            raise RuleViolation("form", "only a guarantee is called")
        if amount_cents != self.amount_cents:
            raise RuleViolation("amount", "call the full guarantee, or release it")
        self.status = Status.CALLED
        self.paid_cents, self.paid_on = amount_cents, today

    def release(self) -> int:
        """Ends an unused guarantee; returns the cents that go back to the budget."""
        self._allow(Status.RELEASED)
        if self.form != Form.GUARANTEE:
            raise RuleViolation("form", "only a guarantee is released; an advance is paid")
        self.status = Status.RELEASED
        return self.amount_cents

    def determine(self, party: str, legal_ground: str, today: date) -> None:
        self._allow(Status.DETERMINED)
        self.status = Status.DETERMINED
        self.responsible_party, self.legal_ground, self.determined_on = party, legal_ground, today

    def request_recovery(self) -> int:
        self._allow(Status.RECOVERY_REQUESTED)
        self.status = Status.RECOVERY_REQUESTED
        return self.outstanding_cents

    @property
    def outstanding_cents(self) -> int:
        return self.paid_cents - self.recovered_cents - self.written_off_cents

    def repay(self, amount_cents: int) -> bool:
        """Books a (partial) repayment; True when fully recovered."""
        self._allow(Status.RECOVERED)  # repayments are booked once recovery was requested
        if not 0 < amount_cents <= self.outstanding_cents:
            raise RuleViolation(
                "amount",
                f"a repayment is between 0 and the outstanding "
                f"{to_euros(self.outstanding_cents)} euro",
            )
        self.recovered_cents += amount_cents
        if self.outstanding_cents == 0:
            self.status = Status.RECOVERED
            return True
        return False

    def write_off(self, reason: str) -> int:
        self._allow(Status.WRITTEN_OFF)
        amount = self.outstanding_cents
        self.status = Status.WRITTEN_OFF
        self.written_off_cents += amount
        self.reason = reason
        return amount
