"""Commands of the HTTP API: syntax is checked here (a 422 names the field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pmm_contracts.events.register import OrgCode
from pmm_contracts.events.signals import ResponseStatus
from pmm_contracts.privacy import FreeText, ShortText
from pmm_contracts.vocabulary import LearningOrder
from pmm_signalen.domain.model import SignalStatus


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Respond(Command):
    """An organisation's follow-up on a signal assigned to it."""

    status: ResponseStatus
    explanation: FreeText | None = Field(default=None, description="the measure, or why none")
    forward_to: OrgCode | None = None


class AddAssignee(Command):
    organisation: OrgCode
    reason: ShortText


class Reassign(Command):
    from_organisation: OrgCode
    to_organisation: OrgCode
    reason: ShortText


class Merge(Command):
    into: str = Field(min_length=1, description="id of the signal this duplicate merges into")
    reason: ShortText


class ListQuery(BaseModel):
    """Filters of ``GET /signals`` (paging is the runtime's ``page``/``page_size``)."""

    organisation: OrgCode | None = None
    status: SignalStatus | None = None
    order: LearningOrder | None = None
    year: int | None = Field(default=None, ge=2000, le=2100)


ExportFormat = Literal["json", "csv"]
ReportFormat = Literal["json", "csv", "html"]
