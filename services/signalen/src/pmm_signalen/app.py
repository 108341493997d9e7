"""create_app(settings): the one place that wires the signalen service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_contracts.events import signals as ev
from pmm_contracts.topics import SIGNALEN_SIGNALS
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel
from pmm_signalen.adapters.figures import YearlyFigures
from pmm_signalen.adapters.repository import CaseRepository, SignalRepository
from pmm_signalen.adapters.topics import OrgTopics
from pmm_signalen.domain import model
from pmm_signalen.entrypoints.http import router
from pmm_signalen.entrypoints.kafka import case_handler, response_handler
from pmm_signalen.service import usecases as uc
from pmm_signalen.settings import SignalenSettings

TITLE = "Systeemleren (signalen)"
DESCRIPTION = (
    "Every evaluated case teaches the system something: its learning points become "
    "signals, classified by order and bottleneck and assigned (belegd) to the organisation "
    "or ministry that can act. Each organisation follows its own topic, answers with its "
    "follow-up, and is asked again when it stays silent. PMM reports yearly."
)

ERROR_STATUSES: dict[type[Exception], int] = {
    model.ForbiddenTransition: 409,
    model.SignalMerged: 409,
    model.RuleViolation: 422,
    model.NotAnAssignee: 403,
    uc.NotFound: 404,
    uc.Forbidden: 403,
    uc.Conflict: 409,
}


def create_app(settings: SignalenSettings | None = None) -> FastAPI:
    settings = settings or SignalenSettings()
    platform = Platform(settings)
    platform.publisher(
        SIGNALEN_SIGNALS,
        events=[ev.SignalChanged],
        description="Every signal's life cycle (created, assigned, reassigned, merged, answered)",
    )
    # Per-organisation topics (pmm.signalen.assigned.<org>) are not known up front: the
    # relay publishes SignalAssigned and FollowUpRequested on them through the broker.
    signals = SignalRepository(platform.store("signals"))
    cases = CaseRepository(platform.db["cases"])
    figures = YearlyFigures(
        platform.db["figures"], platform.db["measures"], [signals.collection, cases.collection]
    )
    org_topics = OrgTopics(settings.kafka_bootstrap)
    deps = uc.Deps(
        signals=signals,
        cases=cases,
        figures=figures,
        source=settings.source,
        register=RegisterReadModel(platform),
        term_days=settings.followup_term_days,
        ensure_topics=org_topics.ensure,
        notify=platform.relay.notify,
        monitor_window_days=settings.monitor_window_days,
        monitor_threshold=settings.monitor_threshold,
    )
    platform.on_startup(signals.create_indexes)
    platform.on_startup(cases.create_indexes)
    platform.on_startup(figures.create_indexes)
    platform.subscribe(
        settings.cases_topic,
        handler=case_handler(deps),
        purpose="cases",
        description="Submitted, closed and evaluated cases: the report's figures; each "
        "learning point of an evaluation becomes a signal (other case events are skipped)",
    )
    platform.subscribe(
        handler=response_handler(deps),
        pattern=settings.responses_pattern,
        purpose="responses",
        description="Every organisation's follow-up (pmm.signalen.responses.<org>)",
    )
    platform.periodic(
        "follow-up-reminders", settings.reminder_scan_interval_s, lambda: uc.send_reminders(deps)
    )
    platform.periodic("yearly-figures", settings.figures_interval_s, figures.run_once)
    app = platform.http_app(
        title=TITLE, description=DESCRIPTION, routers=[router()], error_statuses=ERROR_STATUSES
    )
    app.state.deps = deps
    return app
