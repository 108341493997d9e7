"""A running LET whose register read model knows two involved organisations, their
executives (one absent, with a deputy) and a chair, fed through the register's topics."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from pmm_contracts import new_event
from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.cases import EscalationRequested
from pmm_contracts.events.register import Availability, OrganisationState, ProfessionalState
from pmm_contracts.topics import (
    LET_ESCALATIONS,
    LOKET_CASES,
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
)
from pmm_contracts.vocabulary import OrganisationKind, Role
from pmm_let.app import create_app
from pmm_let.settings import LetSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, eventually, read_topic
from pmm_runtime.testing import publish_events as publish

REGISTER = "urn:nld:oin:00000001234567890000:systeem:register"
LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"


@dataclass
class World:
    client: httpx.AsyncClient
    app: Any
    bootstrap: str
    unique: str
    issuer: LocalIssuer
    org_a: str  # executive available
    org_b: str  # executive absent, deputy stands in
    exec_a: str
    exec_b: str
    deputy_b: str
    chair: str
    loket_source: str = LOKET

    async def send(self, topic: str, *events: CloudEvent[Any]) -> None:
        await publish(self.bootstrap, topic, *events)

    def chair_h(self) -> dict[str, str]:
        return bearer(self.issuer, "pmm", Role.LET_CHAIR, subject=self.chair)

    def staff_h(self) -> dict[str, str]:
        return bearer(self.issuer, "pmm", Role.PMM_STAFF, subject=f"staff-{self.unique}")

    def executive_h(self, org: str) -> dict[str, str]:
        return bearer(self.issuer, org, Role.EXECUTIVE, subject=f"x-{org}")

    async def request(
        self, n: int = 1, *, request_id: str | None = None, case: int | None = None
    ) -> tuple[str, str]:
        """Produce an EscalationRequested as the Loket would; (request id, case id)."""
        request_id = request_id or f"req-{self.unique}-{n}"
        case_id = f"case-{self.unique}-{case or n}"
        data = EscalationRequested(
            case_id=case_id,
            case_number=f"LMM-2026-{int(self.unique[:6], 16) % 10000:04d}",
            request_id=request_id,
            organisations_involved=(self.org_a, self.org_b),
            justification="every route was tried; benefit and rent stay stuck",
            question="will both organisations agree who pays the arrears?",
            requested_by=f"regie-{self.unique}",
        )
        await publish(self.bootstrap, LOKET_CASES, new_event(data, subject=case_id, source=LOKET))
        return request_id, case_id

    async def published(self, escalation_id: str, timeout_s: float = 4) -> list[dict[str, Any]]:
        """The events of one escalation on its topic, once each by event id: every LET
        process on the shared broker (other tests' too) follows the whole case topic and
        opens the same escalation with the same derived event id, as a consumer dedupes."""
        records = await read_topic(
            self.bootstrap, LET_ESCALATIONS, count=10**6, timeout_s=timeout_s
        )
        events = [
            json.loads(r.value) for r in records if r.key == escalation_id.encode() and r.value
        ]
        return list({e["id"]: e for e in events}.values())

    async def escalation(self, escalation_id: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            r = await self.client.get(f"/escalations/{escalation_id}", headers=self.chair_h())
            return r.json() if r.status_code == 200 else None

        result: dict[str, Any] = await eventually(found, timeout_s=60)
        return result


@pytest.fixture
async def world(
    make_settings: Callable[..., LetSettings],
    serve: Any,
    infra: Any,
    unique: str,
    issuer: LocalIssuer,
) -> World:
    org_a, org_b = f"a{unique[:8]}", f"b{unique[:8]}"
    exec_a, exec_b = f"xa-{unique}", f"xb-{unique}"
    deputy_b, chair = f"db-{unique}", f"chair-{unique}"
    orgs = [
        OrganisationState(code=code, name=code, kind=kind, is_member=True, version=1)
        for code, kind in (
            (org_a, OrganisationKind.EXECUTING_ORGANISATION),
            (org_b, OrganisationKind.MUNICIPALITY),
        )
    ]
    await publish(
        infra.kafka_bootstrap,
        REGISTER_ORGANISATIONS,
        *[new_event(o, subject=o.code, source=REGISTER) for o in orgs],
    )

    def pro(pid: str, org: str, role: Role, **extra: Any) -> ProfessionalState:
        return ProfessionalState(
            id=pid,
            organisation=org,
            name=f"Naam {pid}",
            email=f"{pid}@example.nl",
            roles=(role,),
            last_verified_on=date(2026, 1, 1),
            version=1,
            **extra,
        )

    people = [
        pro(exec_a, org_a, Role.EXECUTIVE),
        pro(
            exec_b,
            org_b,
            Role.EXECUTIVE,
            availability=Availability(
                available=False, absent_until=date.today() + timedelta(days=60), deputy_id=deputy_b
            ),
        ),
        pro(deputy_b, org_b, Role.MAATWERK_PROFESSIONAL),
        pro(chair, "pmm", Role.LET_CHAIR),
    ]
    await publish(
        infra.kafka_bootstrap,
        REGISTER_PROFESSIONALS,
        *[new_event(p, subject=p.id, source=REGISTER) for p in people],
    )
    app = create_app(make_settings(LetSettings))
    client = await serve(app)
    register = app.state.deps.register
    for pid in (exec_a, exec_b, deputy_b, chair):
        await eventually(lambda pid=pid: register.professional(pid), timeout_s=60)
    return World(
        client,
        app,
        infra.kafka_bootstrap,
        unique,
        issuer,
        org_a,
        org_b,
        exec_a,
        exec_b,
        deputy_b,
        chair,
    )
