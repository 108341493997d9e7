"""Kafka subscribers: each event type has its handler, which translates the contract into
a use-case call (``platform.subscribe(topic, handlers={EventType: fn})``).

A response that breaks a rule (not an assignee, a forbidden transition, a missing
explanation, an unknown signal) raises ``PermanentError``: it is dead-lettered at once and
nothing changes. A signal that kept changing meanwhile (``Conflict``) is retried by the
runtime.
"""

from __future__ import annotations

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events import cases
from pmm_contracts.events.signals import FollowUpRequested, SignalAssigned, SignalResponse
from pmm_runtime.broker import PermanentError, current_delivery
from pmm_runtime.errors import Conflict, NotInState, PlatformError
from pmm_runtime.logging import get_logger
from pmm_runtime.platform import Handlers, Platform
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


def subscribe(platform: Platform, deps: uc.Deps, *, cases_topic: str, responses: str) -> None:
    async def on_evaluated(event: CloudEvent[cases.CaseEvaluated]) -> None:
        created = await uc.evaluate(deps, event.id, event.data)
        if created:
            log.info("signals created from evaluation", signals=created)

    async def on_response(event: CloudEvent[SignalResponse]) -> None:
        try:
            signal = await uc.on_response(deps, event.id, event.data, topic_organisation())
        except NotInState as exc:
            raise _refused(exc) from exc
        except Conflict:
            raise  # kept changing meanwhile: transient, retried
        except PlatformError as exc:
            raise _refused(exc) from exc
        log.info("response applied", signal_id=signal.id, status=signal.status.value)

    handlers: Handlers = {
        cases.CaseSubmitted: lambda event: uc.record_submission(deps, event.data),
        cases.CaseAssigned: lambda event: uc.record_director(deps, event.data),
        cases.CaseClosed: lambda event: uc.record_closing(deps, event.data),
        cases.CaseEvaluated: on_evaluated,
    }
    platform.subscribe(
        cases_topic,
        handlers=handlers,
        purpose="cases",
        description="Submitted, assigned, closed and evaluated cases: the report's figures "
        "and each case's regievoerders; each learning point of an evaluation becomes a "
        "signal (other case events are skipped)",
    )
    platform.subscribe(
        handlers={SignalResponse: on_response},
        pattern=responses,
        address="pmm.signalen.responses.{org}",
        purpose="responses",
        description="Every organisation's follow-up (pmm.signalen.responses.<org>)",
    )
    platform.document(
        "pmm.signalen.assigned.{org}",
        action="send",
        events=[SignalAssigned, FollowUpRequested],
        description="The signals assigned to one organisation, and the requests to follow "
        "them up; read only by that organisation",
    )


def _refused(exc: PlatformError) -> PermanentError:
    log.warning("response refused", error=str(exc), error_class=type(exc).__name__)
    return PermanentError(str(exc))
