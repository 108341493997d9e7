"""Events of the overbruggingsprocedure (producer: ``overbrugging``).

Topic ``pmm.overbrugging.applications``; key and subject: the application id. Money is a
``Decimal`` in euros, serialised as a JSON string.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from pmm_contracts.envelope import EventData
from pmm_contracts.events.cases import CaseNumber, Money
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import ShortText


class BridgingForm(StrEnum):
    ADVANCE = "advance"  # voorschot
    GUARANTEE = "guarantee"  # garantstelling


class ApplicationReceived(EventData):
    EVENT_TYPE = "nl.maatwerk.bridging.received"

    application_id: str
    case_id: str
    case_number: CaseNumber
    request_id: str
    estimated_amount: Money


class ApplicationDecided(EventData):
    """Approved as advance or guarantee (amount, period), or rejected with a reason."""

    EVENT_TYPE = "nl.maatwerk.bridging.decided"

    application_id: str
    case_id: str
    approved: bool
    form: BridgingForm | None = None
    amount: Money | None = None
    budget_year: int | None = None
    period_end: date | None = None
    reason: ShortText | None = None


class LedgerEntryKind(StrEnum):
    COMMITMENT = "commitment"
    PAYMENT = "payment"
    RELEASE = "release"
    RECOVERY = "recovery"
    WRITE_OFF = "write_off"
    GUARANTEE_CALLED = "guarantee_called"


class LedgerBooked(EventData):
    """A money movement on the application (payment, repayment, release, write-off, ...)."""

    EVENT_TYPE = "nl.maatwerk.bridging.booked"

    application_id: str
    case_id: str
    entry_id: str
    kind: LedgerEntryKind
    amount: Money
    budget_year: int


class ResponsiblePartyDetermined(EventData):
    EVENT_TYPE = "nl.maatwerk.bridging.responsible_party_determined"

    application_id: str
    case_id: str
    responsible_party: OrgCode
    legal_ground: ShortText


class RecoveryRequested(EventData):
    EVENT_TYPE = "nl.maatwerk.bridging.recovery_requested"

    application_id: str
    case_id: str
    responsible_party: OrgCode
    amount: Money


class ApplicationClosed(EventData):
    """Fully recovered, released, or written off: nothing is outstanding any more."""

    EVENT_TYPE = "nl.maatwerk.bridging.closed"

    application_id: str
    case_id: str
    status: str = Field(examples=["recovered", "released", "written_off", "rejected"])


EVENTS: tuple[type[EventData], ...] = (
    ApplicationReceived,
    ApplicationDecided,
    LedgerBooked,
    ResponsiblePartyDetermined,
    RecoveryRequested,
    ApplicationClosed,
)
