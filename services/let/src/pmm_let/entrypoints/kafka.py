"""Kafka subscribers: translate the contract into a use-case call."""

from __future__ import annotations

from typing import Any

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.cases import EscalationRequested
from pmm_let.service import usecases as uc
from pmm_runtime.platform import Platform


def subscribe(platform: Platform, deps: uc.Deps, cases_topic: str) -> None:
    """The Loket's escalation requests open escalations; other case events are skipped."""

    async def on_requested(event: CloudEvent[Any]) -> None:
        await uc.open_escalation(deps, event.data, caused_by=str(event.id))

    platform.subscribe(
        cases_topic,
        handlers={EscalationRequested: on_requested},
        purpose="cases",
        description="The Loket's escalation requests open escalations (other case events "
        "are skipped)",
    )
