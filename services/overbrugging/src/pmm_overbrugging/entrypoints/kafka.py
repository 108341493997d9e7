"""The overbruggingsprocedure's subscriber: the Loket's bridging requests become
applications (dispatched by event type; the Loket's other case events are skipped)."""

from __future__ import annotations

from functools import partial

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.cases import BridgingRequested
from pmm_contracts.topics import LOKET_CASES
from pmm_overbrugging.service import usecases as uc
from pmm_runtime.platform import Handlers, Platform


async def on_bridging_requested(deps: uc.Deps, event: CloudEvent[BridgingRequested]) -> None:
    data = event.data
    request = uc.Request(
        case_id=data.case_id,
        case_number=data.case_number,
        request_id=data.request_id,
        provision=data.provision,
        provider=data.provider,
        estimated_amount=data.estimated_amount,
        candidate_payers=tuple(data.candidate_payers),
        dispute=data.dispute,
        settle_attempt=data.settle_attempt,
    )
    await uc.receive(deps, request, caused_by=str(event.id))


def handlers(deps: uc.Deps) -> Handlers:
    return {BridgingRequested: partial(on_bridging_requested, deps)}


def subscribe(platform: Platform, deps: uc.Deps) -> None:
    platform.subscribe(
        LOKET_CASES,
        handlers=handlers(deps),
        purpose="bridging-requests",
        description="Bridging requests of the Loket become applications",
    )
