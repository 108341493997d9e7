"""A running signalen service fed with the Loket's case events over the real broker, and
helpers to produce those events and read the per-organisation topics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pmm_contracts import new_event
from pmm_contracts.cli import provision
from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.cases import (
    Bottleneck,
    CaseClosed,
    CaseEvaluated,
    CaseOutcome,
    CaseSubmitted,
    LearningPoint,
    Urgency,
)
from pmm_contracts.events.register import OrganisationState
from pmm_contracts.topics import (
    LOKET_CASES,
    REGISTER_ORGANISATIONS,
    org_topics,
    signals_assigned_topic,
)
from pmm_contracts.vocabulary import (
    BottleneckType,
    LearningOrder,
    LifeDomain,
    OrganisationKind,
    Role,
    SubmitterKind,
)
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, create_topics, eventually, read_topic
from pmm_runtime.testing import publish_events as publish
from pmm_signalen.app import create_app
from pmm_signalen.domain.model import signal_id_for
from pmm_signalen.settings import SignalenSettings

LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"
REGISTER = "urn:nld:oin:00000001234567890000:systeem:register"
WAIT_S = 90
"""Bound of each wait for the consumers: the shared development machine is often loaded
(a new consumer group joining and replaying the register's topics took 30-40 s at a load
average of 10 on two cores)."""


def learning_point(
    pid: str,
    orgs: tuple[str, ...],
    *,
    order: LearningOrder = LearningOrder.THIRD,
    btype: BottleneckType = BottleneckType.LAWS_AND_REGULATIONS,
    regulation: str | None = "Participatiewet art. 18",
) -> LearningPoint:
    return LearningPoint(
        id=pid,
        order=order,
        bottleneck=Bottleneck(type=btype),
        organisations=orgs,
        regulation_reference=regulation,
        description=f"lesson {pid}: the rules did not foresee this household's move",
    )


@dataclass
class World:
    client: httpx.AsyncClient
    app: Any
    bootstrap: str
    unique: str
    issuer: LocalIssuer
    org_a: str
    org_b: str
    cases_topic: str = LOKET_CASES
    cases: int = 0
    seen: dict[str, int] = field(default_factory=dict)

    @property
    def deps(self) -> Any:
        return self.app.state.deps

    def staff(self) -> dict[str, str]:
        return bearer(self.issuer, "pmm", Role.PMM_STAFF, subject=f"staff-{self.unique}")

    def org(self, code: str, role: str = Role.AMBASSADOR) -> dict[str, str]:
        return bearer(self.issuer, code, role, subject=f"amb-{code}")

    async def send(self, *events: CloudEvent[Any]) -> None:
        await publish(self.bootstrap, self.cases_topic, *events)

    def case_events(
        self,
        points: tuple[LearningPoint, ...],
        *,
        closed_at: datetime | None = None,
        kind: SubmitterKind = SubmitterKind.MUNICIPALITY,
        duration_days: int = 56,
        domains: tuple[LifeDomain, ...] = (LifeDomain.INCOME, LifeDomain.HOUSING),
    ) -> tuple[CloudEvent[CaseSubmitted], CloudEvent[CaseClosed], CloudEvent[CaseEvaluated]]:
        self.cases += 1
        case_id = f"case-{self.unique}-{self.cases}"
        number = f"LMM-2026-{self.cases:04d}"
        closed = closed_at or datetime.now(UTC)
        submitted = closed - timedelta(days=duration_days)
        bottlenecks = tuple(dict.fromkeys(p.bottleneck for p in points)) or (
            Bottleneck(type=BottleneckType.COOPERATION),
        )
        sub = CaseSubmitted(
            case_id=case_id,
            case_number=number,
            submitting_organisation="gm0363",
            submitter_kind=kind,
            life_domains=domains,
            bottlenecks=bottlenecks,
            organisations_involved=("gm0363",),
            urgency=Urgency.THREATENED,
            adults=1,
            children=2,
            submitted_at=submitted,
            intake_due=submitted.date() + timedelta(days=5),
        )
        close = CaseClosed(
            case_id=case_id,
            case_number=number,
            outcome=CaseOutcome.SOLVED,
            submitted_at=submitted,
            closed_at=closed,
            duration_days=duration_days,
        )
        evaluated = CaseEvaluated(
            case_id=case_id,
            case_number=number,
            submitter_kind=kind,
            submitting_organisation="gm0363",
            life_domains=domains,
            bottlenecks=bottlenecks,
            outcome=CaseOutcome.SOLVED,
            submitted_at=submitted,
            closed_at=closed,
            duration_days=duration_days,
            learning_points=points,
        )
        return (
            new_event(sub, subject=case_id, source=LOKET),
            new_event(close, subject=case_id, source=LOKET),
            new_event(evaluated, subject=case_id, source=LOKET),
        )

    async def evaluate(self, *points: LearningPoint, **kwargs: Any) -> list[str]:
        """Produce a whole case as the Loket would; the ids of the signals it yields."""
        events = self.case_events(points, **kwargs)
        await self.send(*events)
        ids = [signal_id_for(events[2].id, p.id) for p in points]
        for signal_id in ids:
            await self.signal(signal_id)
        return ids

    async def signal(self, signal_id: str, check: Callable[[dict[str, Any]], bool] | None = None):  # type: ignore[no-untyped-def]
        async def found() -> dict[str, Any] | None:
            r = await self.client.get(f"/signals/{signal_id}", headers=self.staff())
            if r.status_code != 200:
                return None
            body: dict[str, Any] = r.json()
            return body if check is None or check(body) else None

        return await eventually(found, timeout_s=WAIT_S)

    async def assigned(
        self, org: str, count: int, *, settle_s: float = 0.0
    ) -> list[dict[str, Any]]:
        records = await read_topic(
            self.bootstrap,
            signals_assigned_topic(org),
            count=count,
            timeout_s=20,
            settle_s=settle_s,
        )
        return [json.loads(r.value) for r in records]


@pytest.fixture
async def world(
    make_settings: Callable[..., SignalenSettings],
    serve: Any,
    infra: Any,
    unique: str,
    issuer: LocalIssuer,
) -> World:
    org_a, org_b = f"a{unique[:8]}", f"b{unique[:8]}"
    for org in (org_a, org_b):  # so the pattern subscription sees their response topics
        await provision(infra.kafka_bootstrap, list(org_topics(org)))
    # This test's own case topic and response topics: a fresh service does not replay every
    # evaluation and answer earlier test runs left on the shared topics.
    cases_topic = f"{LOKET_CASES}.t{unique}"
    await create_topics(infra.kafka_bootstrap, [cases_topic])
    settings = make_settings(
        SignalenSettings,
        reminder_scan_interval_s=3600,
        figures_interval_s=0.5,
        cases_topic=cases_topic,
        responses_pattern=rf"^pmm\.signalen\.responses\.[ab]{unique[:8]}$",
    )
    app = create_app(settings)
    client = await serve(app)
    # The register knows both organisations (forwards and staff changes are checked
    # against it); wait until this service's read model has them.
    await publish(
        infra.kafka_bootstrap,
        REGISTER_ORGANISATIONS,
        *[
            new_event(
                OrganisationState(
                    code=org,
                    name=org,
                    kind=OrganisationKind.EXECUTING_ORGANISATION,
                    is_member=True,
                    version=1,
                ),
                subject=org,
                source=REGISTER,
            )
            for org in (org_a, org_b)
        ],
    )
    register = app.state.deps.register
    for org in (org_a, org_b):
        await eventually(lambda org=org: register.organisation(org), timeout_s=WAIT_S)
    return World(client, app, infra.kafka_bootstrap, unique, issuer, org_a, org_b, cases_topic)


def uid() -> str:
    return uuid.uuid4().hex[:8]
