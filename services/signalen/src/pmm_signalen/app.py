"""create_app(settings): the one place that wires the signalen service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_contracts.cli import Durability
from pmm_contracts.events import signals as ev
from pmm_contracts.topics import SIGNALEN_SIGNALS
from pmm_runtime import kafka_security
from pmm_runtime.outbox import PendingOutbox
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel
from pmm_signalen.adapters.figures import FIGURES_PENDING, YearlyFigures
from pmm_signalen.adapters.repository import CaseRepository, SignalRepository
from pmm_signalen.adapters.topics import OrgTopics
from pmm_signalen.entrypoints import kafka
from pmm_signalen.entrypoints.http import router
from pmm_signalen.service import usecases as uc
from pmm_signalen.settings import SignalenSettings

TITLE = "Systeemleren (signalen)"
DESCRIPTION = (
    "Every evaluated case teaches the system something: its learning points become "
    "signals, classified by order and bottleneck and assigned (belegd) to the organisation "
    "or ministry that can act. Each organisation follows its own topic, answers with its "
    "follow-up, and is asked again when it stays silent. PMM reports yearly."
)


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
    cases = CaseRepository(platform.db["cases"], platform.writes)
    figures = YearlyFigures(
        platform.db["figures"],
        platform.db["measures"],
        [signals.collection, cases.collection],
        writes=platform.writes,
        pending=PendingOutbox(platform.db[FIGURES_PENDING], platform.writes),
    )
    org_topics = OrgTopics(
        kafka_security.connection(settings, client_id="pmm-signalen-topics"),
        Durability(settings.kafka_replication_factor, settings.kafka_min_insync_replicas),
    )
    deps = uc.Deps(
        signals=signals,
        cases=cases,
        figures=figures,
        changes=platform.changes,
        register=RegisterReadModel(platform),
        term_days=settings.followup_term_days,
        ensure_topics=org_topics.ensure,
        monitor_window_days=settings.monitor_window_days,
        monitor_threshold=settings.monitor_threshold,
    )
    platform.on_startup(signals.create_indexes)
    platform.on_startup(signals.rebuild_reminder_index)
    platform.on_startup(cases.create_indexes)
    platform.on_startup(cases.rebuild_director_index)
    platform.on_startup(figures.create_indexes)
    kafka.subscribe(
        platform, deps, cases_topic=settings.cases_topic, responses=settings.responses_pattern
    )
    platform.periodic(
        "follow-up-reminders", settings.reminder_scan_interval_s, lambda: uc.send_reminders(deps)
    )
    platform.periodic("yearly-figures", settings.figures_interval_s, figures.run_once)
    app = platform.http_app(title=TITLE, description=DESCRIPTION, routers=[router()])
    app.state.deps = deps
    return app
