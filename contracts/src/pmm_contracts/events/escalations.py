"""Events of the Landelijk Escalatie Team (producer: ``let``; topic ``pmm.let.escalations``).

Key and subject: the escalation id. The Loket follows admission, refusal, withdrawal and
outcome to update its case.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from pmm_contracts.envelope import EventData
from pmm_contracts.events.cases import CaseNumber
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import FreeText, ShortText


class EscalationOpened(EventData):
    EVENT_TYPE = "nl.maatwerk.escalation.opened"

    escalation_id: str
    case_id: str
    case_number: CaseNumber
    request_id: str
    organisations_involved: tuple[OrgCode, ...]


class EscalationAdmissibility(EventData):
    """The chair admitted the escalation, or refused it with a reason."""

    EVENT_TYPE = "nl.maatwerk.escalation.admissibility_decided"

    escalation_id: str
    case_id: str
    admitted: bool
    reason: ShortText | None = None


class SessionScheduled(EventData):
    EVENT_TYPE = "nl.maatwerk.escalation.session_scheduled"

    escalation_id: str
    case_id: str
    session_date: date
    chair_id: str
    invited_executive_ids: tuple[str, ...]


class AgreementRecorded(EventData):
    """An agreement was made, became overdue, or was done (``status``)."""

    EVENT_TYPE = "nl.maatwerk.escalation.agreement"

    escalation_id: str
    case_id: str
    agreement_id: str
    organisation: OrgCode
    action: FreeText
    deadline: date
    status: str = Field(examples=["open", "overdue", "done"])


class EscalationOutcome(StrEnum):
    BREAKTHROUGH = "breakthrough"
    PARTIAL = "partial"
    NONE = "none"


class EscalationConcluded(EventData):
    EVENT_TYPE = "nl.maatwerk.escalation.concluded"

    escalation_id: str
    case_id: str
    outcome: EscalationOutcome
    summary: FreeText


class EscalationWithdrawn(EventData):
    """Withdrawn before the session; ``solved_under_pressure`` counts the escalation effect."""

    EVENT_TYPE = "nl.maatwerk.escalation.withdrawn"

    escalation_id: str
    case_id: str
    solved_under_pressure: bool
    reason: ShortText


EVENTS: tuple[type[EventData], ...] = (
    EscalationOpened,
    EscalationAdmissibility,
    SessionScheduled,
    AgreementRecorded,
    EscalationConcluded,
    EscalationWithdrawn,
)
