"""Commands of the LET: validated syntax (the use cases check meaning, the domain the rules)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pmm_contracts.events.escalations import EscalationOutcome
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import FreeText, ShortText

ProfessionalId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecideAdmissibility(Command):
    admitted: bool
    reason: ShortText | None = Field(default=None, description="required when refused")


class ScheduleSession(Command):
    session_date: date
    chair_id: ProfessionalId | None = Field(
        default=None, description="register id of the chair; default: the caller"
    )
    executive_ids: Annotated[tuple[ProfessionalId, ...], Field(min_length=1)] | None = Field(
        default=None, description="whom to invite; default: the proposal from the register"
    )


class RecordAttendance(Command):
    present: tuple[ProfessionalId, ...] = Field(description="register ids of those present")


class RecordAgreement(Command):
    organisation: OrgCode
    action: Annotated[FreeText, StringConstraints(min_length=1)]
    deadline: date


class Conclude(Command):
    outcome: EscalationOutcome
    summary: Annotated[FreeText, StringConstraints(min_length=1)]


class Withdraw(Command):
    solved_under_pressure: bool
    reason: ShortText
