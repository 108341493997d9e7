"""What the HTTP API answers (typed, so OpenAPI shows every response).

An organisation sees a signal as the anonymised lesson and its follow-up (``SignalView``:
no case id, no case number); PMM staff and the case's regievoerders also see which case it
came from (``CaseSignalView``). Which one a caller gets is decided in the use cases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from pmm_signalen.domain.model import Lesson, Signal


class SignalView(Lesson):
    """A signal as an assigned organisation sees it: the lesson, never the case."""

    organisations: list[str]


class CaseSignalView(SignalView):
    """A signal with its case reference: for PMM staff and the case's regievoerders."""

    case_id: str
    case_number: str


AnySignalView = CaseSignalView | SignalView


def view(signal: Signal, *, with_case: bool) -> SignalView:
    data = signal.model_dump() | {"organisations": signal.organisations}
    return (CaseSignalView if with_case else SignalView).model_validate(data)


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    reason: str | None = None
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    command_id: str | None = None


class Candidate(BaseModel):
    """A recurring bottleneck: a candidate for order-3 (system change) attention."""

    bottleneck_type: str
    bottleneck_subtype: str | None
    regulation_reference: str | None
    organisation: str
    cases: int


class Monitor(BaseModel):
    window_days: int
    threshold: int
    since: str
    candidates_for_order_3: list[Candidate]


class ExportRow(BaseModel):
    """An anonymised signal for other initiatives that collect bottlenecks: no case."""

    signal_id: str
    year: int
    order: str
    bottleneck_type: str
    bottleneck_subtype: str | None
    life_domains: list[str]
    regulation_reference: str | None
    description: str
    organisations: list[str]
    status: str
    follow_up: dict[str, str]
    created_at: str

    @classmethod
    def of(cls, signal: Signal) -> ExportRow:
        subtype = signal.bottleneck.subtype
        return cls(
            signal_id=signal.id,
            year=signal.year,
            order=signal.order.value,
            bottleneck_type=signal.bottleneck.type.value,
            bottleneck_subtype=subtype.value if subtype else None,
            life_domains=[d.value for d in signal.life_domains],
            regulation_reference=signal.regulation_reference,
            description=signal.description,
            organisations=list(dict.fromkeys(signal.organisations)),
            status=signal.status.value,
            follow_up={a.organisation: a.status.value for a in signal.assignments},
            created_at=signal.created_at.isoformat(),
        )


EXPORT_FIELDS = tuple(ExportRow.model_fields)
