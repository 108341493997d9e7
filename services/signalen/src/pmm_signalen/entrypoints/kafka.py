"""Kafka subscribers: translate the contract into a use-case call.

A response that breaks a rule (not an assignee, a forbidden transition, a missing
explanation, an unknown signal) raises ``PermanentError``: it is dead-lettered at once and
nothing changes. A concurrent write is retried by the runtime.
"""

from __future__ import annotations

from typing import Any

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.signals import SignalResponse
from pmm_runtime.broker import PermanentError, current_delivery
from pmm_runtime.logging import get_logger
from pmm_signalen.domain.model import SignalError
from pmm_signalen.service import usecases as uc

log = get_logger(__name__)

RESPONSES_PREFIX = "pmm.signalen.responses."


def topic_organisation() -> str | None:
    """The organisation whose response topic the message came from.

    The responses are consumed by pattern, so the topic is the runtime's delivery of the
    message being handled.
    """
    topic = current_delivery().topic
    if topic.startswith(RESPONSES_PREFIX):
        return topic[len(RESPONSES_PREFIX) :]
    return None


def case_handler(deps: uc.Deps) -> Any:
    async def on_case_event(event: CloudEvent[Any]) -> None:
        created = await uc.on_case_event(deps, event)
        if created:
            log.info("signals created from evaluation", signals=created)

    return on_case_event


def response_handler(deps: uc.Deps) -> Any:
    async def on_response(event: CloudEvent[Any]) -> None:
        if not isinstance(event.data, SignalResponse):
            return
        try:
            signal = await uc.on_response(deps, event, topic_organisation())
        except uc.Conflict:
            raise  # transient: retried
        except SignalError as exc:
            log.warning("response refused", error=str(exc), error_class=type(exc).__name__)
            raise PermanentError(str(exc)) from exc
        log.info("response applied", signal_id=signal.id, status=signal.status.value)

    return on_response
