"""Events of the Landelijk Maatwerkloket (producer: ``loket``; topic ``pmm.loket.cases``).

Key and subject: the case id. No personal data: the household is a pseudonymous reference
with its composition only, and every free text passes the BSN guard. The case file itself
stays in the Loket's database.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pmm_contracts.envelope import EventData
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import FreeText, ShortText
from pmm_contracts.vocabulary import (
    BottleneckSubtype,
    BottleneckType,
    LearningOrder,
    LifeDomain,
    SubmitterKind,
)

CaseNumber = Annotated[str, Field(pattern=r"^LMM-\d{4}-\d{4,}$", examples=["LMM-2026-0042"])]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class Urgency(StrEnum):
    ACUTE = "acute"  # bestaanszekerheid nu in gevaar
    THREATENED = "threatened"  # bestaanszekerheid bedreigd
    NONE = "none"


class Bottleneck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: BottleneckType
    subtype: BottleneckSubtype | None = None


class CaseSubmitted(EventData):
    EVENT_TYPE = "nl.maatwerk.case.submitted"

    case_id: str
    case_number: CaseNumber
    submitting_organisation: OrgCode
    submitter_kind: SubmitterKind
    life_domains: tuple[LifeDomain, ...]
    bottlenecks: tuple[Bottleneck, ...]
    organisations_involved: tuple[OrgCode, ...]
    urgency: Urgency
    adults: int = Field(ge=0)
    children: int = Field(ge=0)
    submitted_at: datetime
    intake_due: date


class CaseTriaged(EventData):
    """Accepted, or declined with a reason from the fixed list."""

    EVENT_TYPE = "nl.maatwerk.case.triaged"

    case_id: str
    case_number: CaseNumber
    accepted: bool
    decline_reason: str | None = None
    case_due: date | None = None


class CaseAssigned(EventData):
    EVENT_TYPE = "nl.maatwerk.case.assigned"

    case_id: str
    case_number: CaseNumber
    case_director_id: str
    previous_case_director_id: str | None = None


class CaseStatusChanged(EventData):
    """Any other transition of the case workflow (suspended, resumed, reopened, ...)."""

    EVENT_TYPE = "nl.maatwerk.case.status_changed"

    case_id: str
    case_number: CaseNumber
    from_status: str
    to_status: str
    reason: ShortText | None = None


class ConsultationRequested(EventData):
    EVENT_TYPE = "nl.maatwerk.case.consultation_requested"

    case_id: str
    consultation_id: str
    organisation: OrgCode
    professional_id: str | None = None
    question: FreeText
    due: date


class ConsultationAnswered(EventData):
    EVENT_TYPE = "nl.maatwerk.case.consultation_answered"

    case_id: str
    consultation_id: str
    organisation: OrgCode
    on_time: bool


class DeadlineWarning(EventData):
    """A deadline is near (``overdue`` false) or has passed (``overdue`` true)."""

    EVENT_TYPE = "nl.maatwerk.case.deadline_warning"

    case_id: str
    case_number: CaseNumber
    deadline: str = Field(examples=["intake", "consultation", "case"])
    reference: str | None = Field(default=None, description="e.g. the consultation id")
    due: date
    overdue: bool


class EscalationRequested(EventData):
    """The Loket asks the LET to convene the executives of the organisations involved."""

    EVENT_TYPE = "nl.maatwerk.case.escalation_requested"

    case_id: str
    case_number: CaseNumber
    request_id: str = Field(description="idempotency key of this request")
    organisations_involved: tuple[OrgCode, ...] = Field(min_length=1)
    justification: FreeText = Field(min_length=1)
    question: FreeText = Field(min_length=1)
    requested_by: str = Field(description="register id of the regievoerder")


class LegalFramework(StrEnum):
    WMO_2015 = "wmo_2015"
    JEUGDWET = "jeugdwet"
    ZVW = "zvw"
    WLZ = "wlz"
    PARTICIPATIEWET = "participatiewet"
    OTHER = "other"


class BridgingRequested(EventData):
    """The Loket asks the overbruggingsprocedure to pre-finance or guarantee a provision."""

    EVENT_TYPE = "nl.maatwerk.case.bridging_requested"

    case_id: str
    case_number: CaseNumber
    request_id: str = Field(description="idempotency key of this request")
    provision: ShortText
    provider: ShortText
    estimated_amount: Money
    candidate_payers: tuple[OrgCode, ...] = Field(min_length=2)
    legal_frameworks: tuple[LegalFramework, ...] = ()
    dispute: FreeText = Field(min_length=1)
    urgency: Urgency
    settle_attempt: FreeText = Field(
        min_length=1, description="how the Loket tried to settle the payer quickly"
    )
    requested_by: str


class CaseOutcome(StrEnum):
    SOLVED = "solved"
    PARTLY_SOLVED = "partly_solved"
    NOT_SOLVED = "not_solved"


class CaseClosed(EventData):
    EVENT_TYPE = "nl.maatwerk.case.closed"

    case_id: str
    case_number: CaseNumber
    outcome: CaseOutcome
    reason: ShortText | None = None
    submitted_at: datetime
    closed_at: datetime
    duration_days: int = Field(ge=0)


class LearningPoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    order: LearningOrder
    bottleneck: Bottleneck
    organisations: tuple[OrgCode, ...] = Field(min_length=1)
    regulation_reference: ShortText | None = None
    life_domains: tuple[LifeDomain, ...] = ()
    description: FreeText = Field(min_length=1)


class CaseEvaluated(EventData):
    """The evaluation after closing; the signalen service turns its points into signals."""

    EVENT_TYPE = "nl.maatwerk.case.evaluated"

    case_id: str
    case_number: CaseNumber
    submitter_kind: SubmitterKind
    submitting_organisation: OrgCode
    life_domains: tuple[LifeDomain, ...]
    bottlenecks: tuple[Bottleneck, ...]
    outcome: CaseOutcome
    submitted_at: datetime
    closed_at: datetime
    duration_days: int = Field(ge=0)
    learning_points: tuple[LearningPoint, ...]


class CaseAnonymised(EventData):
    """Retention: the case file was anonymised after the configured period."""

    EVENT_TYPE = "nl.maatwerk.case.anonymised"

    case_id: str
    case_number: CaseNumber


EVENTS: tuple[type[EventData], ...] = (
    CaseSubmitted,
    CaseTriaged,
    CaseAssigned,
    CaseStatusChanged,
    ConsultationRequested,
    ConsultationAnswered,
    DeadlineWarning,
    EscalationRequested,
    BridgingRequested,
    CaseClosed,
    CaseEvaluated,
    CaseAnonymised,
)
