"""The overbruggingsprocedure's subscriber: the Loket's bridging requests become
applications (dispatched by event type; the Loket's other case events are skipped)."""

from __future__ import annotations

from dataclasses import fields
from functools import partial

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.cases import BridgingRequested
from pmm_overbrugging.service import usecases as uc
from pmm_runtime.platform import Handlers, Platform


async def on_bridging_requested(deps: uc.Deps, event: CloudEvent[BridgingRequested]) -> None:
    request = uc.Request(**{f.name: getattr(event.data, f.name) for f in fields(uc.Request)})
    await uc.receive(deps, request, caused_by=str(event.id))


def handlers(deps: uc.Deps) -> Handlers:
    return {BridgingRequested: partial(on_bridging_requested, deps)}


def subscribe(platform: Platform, deps: uc.Deps, cases_topic: str) -> None:
    platform.subscribe(
        cases_topic,
        handlers=handlers(deps),
        purpose="bridging-requests",
        description="Bridging requests of the Loket become applications",
    )
