"""Events of systeemleren (producer: ``signalen``, and each organisation for its answers).

``SignalAssigned`` and ``FollowUpRequested`` travel on ``pmm.signalen.assigned.<org>``,
``SignalResponse`` on ``pmm.signalen.responses.<org>``; key and subject: the signal id.
Signals are anonymised lessons, never case files.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from pmm_contracts.envelope import EventData
from pmm_contracts.events.cases import Bottleneck
from pmm_contracts.events.register import OrgCode
from pmm_contracts.privacy import FreeText, ShortText
from pmm_contracts.vocabulary import LearningOrder, LifeDomain


class SignalAssigned(EventData):
    EVENT_TYPE = "nl.maatwerk.signal.assigned"

    signal_id: str
    organisation: OrgCode
    order: LearningOrder
    bottleneck: Bottleneck
    life_domains: tuple[LifeDomain, ...] = ()
    regulation_reference: ShortText | None = None
    description: FreeText
    respond_by: date


class FollowUpRequested(EventData):
    """PMM asks again: the organisation stayed silent past the term."""

    EVENT_TYPE = "nl.maatwerk.signal.followup_requested"

    signal_id: str
    organisation: OrgCode
    reminder: int = Field(ge=1)
    respond_by: date


class ResponseStatus(StrEnum):
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    MEASURE_TAKEN = "measure_taken"
    NO_ACTION = "no_action"
    FORWARDED = "forwarded"


class SignalResponse(EventData):
    """An organisation's follow-up on a signal assigned to it."""

    EVENT_TYPE = "nl.maatwerk.signal.response"

    signal_id: str
    organisation: OrgCode
    status: ResponseStatus
    explanation: FreeText | None = Field(
        default=None, description="the measure taken, or why no action"
    )
    forward_to: OrgCode | None = None


class SignalChanged(EventData):
    """PMM's own record of a signal's life cycle (created, reassigned, merged, answered)."""

    EVENT_TYPE = "nl.maatwerk.signal.changed"

    signal_id: str
    change: str = Field(examples=["created", "assigned", "reassigned", "merged", "answered"])
    organisations: tuple[OrgCode, ...] = ()
    status: str | None = None


EVENTS: tuple[type[EventData], ...] = (
    SignalAssigned,
    FollowUpRequested,
    SignalResponse,
    SignalChanged,
)
