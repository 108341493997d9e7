"""The Loket's subscribers: the LET's and the overbruggingsprocedure's events, translated
into updates of the case they are about (dispatched by event type)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events import bridging as bev
from pmm_contracts.events import escalations as lev
from pmm_contracts.topics import LET_ESCALATIONS, OVERBRUGGING_APPLICATIONS
from pmm_loket.domain.model import to_cents
from pmm_loket.service import usecases as uc
from pmm_runtime.platform import Platform

Handlers = Mapping[type[EventData], Callable[[CloudEvent[Any]], Awaitable[None]]]


# The LET ----------------------------------------------------------------------------------


async def _escalation(
    deps: uc.Deps,
    event: CloudEvent[Any],
    status: str,
    detail: dict[str, Any],
    request_id: str | None = None,
) -> None:
    data = event.data
    await uc.apply_external(
        deps,
        event,
        data.case_id,
        "let." + status,
        lambda case: case.escalation_update(data.escalation_id, status, detail, request_id),
    )


async def on_opened(deps: uc.Deps, event: CloudEvent[lev.EscalationOpened]) -> None:
    await _escalation(deps, event, "opened", {}, event.data.request_id)


async def on_admissibility(deps: uc.Deps, event: CloudEvent[lev.EscalationAdmissibility]) -> None:
    data = event.data
    status = "admitted" if data.admitted else "refused"
    await _escalation(deps, event, status, {"reason": data.reason})


async def on_concluded(deps: uc.Deps, event: CloudEvent[lev.EscalationConcluded]) -> None:
    data = event.data
    detail = {"outcome": data.outcome.value, "summary": data.summary}
    await _escalation(deps, event, "concluded", detail)


async def on_withdrawn(deps: uc.Deps, event: CloudEvent[lev.EscalationWithdrawn]) -> None:
    data = event.data
    detail = {"solved_under_pressure": data.solved_under_pressure, "reason": data.reason}
    await _escalation(deps, event, "withdrawn", detail)


def escalation_handlers(deps: uc.Deps) -> Handlers:
    """Sessions and agreements are the LET's own business: not handled here."""
    return {
        lev.EscalationOpened: partial(on_opened, deps),
        lev.EscalationAdmissibility: partial(on_admissibility, deps),
        lev.EscalationConcluded: partial(on_concluded, deps),
        lev.EscalationWithdrawn: partial(on_withdrawn, deps),
    }


# The overbruggingsprocedure --------------------------------------------------------------


async def _bridging(
    deps: uc.Deps,
    event: CloudEvent[Any],
    detail: dict[str, Any],
    *,
    request_id: str | None = None,
    booking: tuple[str, int] | None = None,
) -> None:
    data = event.data
    await uc.apply_external(
        deps,
        event,
        data.case_id,
        "overbrugging." + event.type.rsplit(".", 1)[-1],
        lambda case: case.bridging_update(
            data.application_id, detail, request_id=request_id, booking=booking
        ),
    )


async def on_received(deps: uc.Deps, event: CloudEvent[bev.ApplicationReceived]) -> None:
    await _bridging(deps, event, {"status": "received"}, request_id=event.data.request_id)


async def on_decided(deps: uc.Deps, event: CloudEvent[bev.ApplicationDecided]) -> None:
    data = event.data
    detail = {
        "status": "approved" if data.approved else "rejected",
        "form": data.form.value if data.form else None,
        "approved_amount_cents": to_cents(data.amount) if data.amount is not None else None,
        "decision_reason": data.reason,
    }
    await _bridging(deps, event, detail)


async def on_booked(deps: uc.Deps, event: CloudEvent[bev.LedgerBooked]) -> None:
    data = event.data
    await _bridging(deps, event, {}, booking=(data.kind.value, to_cents(data.amount)))


async def on_determined(deps: uc.Deps, event: CloudEvent[bev.ResponsiblePartyDetermined]) -> None:
    await _bridging(deps, event, {"responsible_party": event.data.responsible_party})


async def on_recovery(deps: uc.Deps, event: CloudEvent[bev.RecoveryRequested]) -> None:
    await _bridging(deps, event, {"recovery_requested_cents": to_cents(event.data.amount)})


async def on_closed(deps: uc.Deps, event: CloudEvent[bev.ApplicationClosed]) -> None:
    await _bridging(deps, event, {"status": event.data.status})


def bridging_handlers(deps: uc.Deps) -> Handlers:
    return {
        bev.ApplicationReceived: partial(on_received, deps),
        bev.ApplicationDecided: partial(on_decided, deps),
        bev.LedgerBooked: partial(on_booked, deps),
        bev.ResponsiblePartyDetermined: partial(on_determined, deps),
        bev.RecoveryRequested: partial(on_recovery, deps),
        bev.ApplicationClosed: partial(on_closed, deps),
    }


def subscribe(platform: Platform, deps: uc.Deps) -> None:
    platform.subscribe(
        LET_ESCALATIONS,
        handlers=escalation_handlers(deps),
        purpose="escalations",
        description="The LET's admission, outcome and withdrawal update cases",
    )
    platform.subscribe(
        OVERBRUGGING_APPLICATIONS,
        handlers=bridging_handlers(deps),
        purpose="bridging",
        description="Bridging decisions and payments update cases",
    )
