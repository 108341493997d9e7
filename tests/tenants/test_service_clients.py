"""A service's own clients on the secured broker, each with the service's principal only.

The register runs as ``pmm-register`` (its ``client.properties`` from ``pmm-contracts
topics``, through the typed settings): its outbox relay writes its changelogs, each
replica's search index replays them without a consumer group, and a removal's tombstone
(a null value, through the runtime's separate tombstone producer) reaches the other
replica. Nothing here connects as the admin except the check of what is on the topic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from pmm_contracts.topics import REGISTER_PROFESSIONALS
from pmm_register.adapters.search_index import Filters
from pmm_register.app import create_app
from pmm_register.service import usecases as uc
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.kafka_security import connection
from pmm_runtime.testing import bearer, eventually

from .conftest import SecuredBroker

pytestmark = pytest.mark.integration

WAIT_S = 90  # a replay of the secured broker's changelog on a loaded shared machine


async def records_of(secured: SecuredBroker, key: bytes) -> list[bytes | None]:
    """The values of ``key`` on the professionals' changelog, oldest first (as the admin)."""
    consumer = AIOKafkaConsumer(
        REGISTER_PROFESSIONALS,
        **secured.admin().aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes | None] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=3000)
            if not batch:
                return values
            values += [r.value for rs in batch.values() for r in rs if r.key == key]
    finally:
        await consumer.stop()


async def test_the_register_writes_replays_and_tombstones_with_its_own_principal(
    secured: SecuredBroker,
    make_settings: Callable[..., RegisterSettings],
    serve: Any,
    issuer: LocalIssuer,
    unique: str,
) -> None:
    settings = make_settings(
        RegisterSettings,
        kafka_bootstrap=secured.bootstrap,
        kafka_client_properties=secured.credentials_dir / "pmm-register.properties",
        group_prefix="pmm",
    )
    own = connection(settings)
    assert (own.sasl_username, own.security_protocol) == ("pmm-register", "SASL_PLAINTEXT")
    app_a, app_b = create_app(settings), create_app(settings)  # two replicas, one database
    a, b = await serve(app_a), await serve(app_b)
    deps_b: uc.Deps = app_b.state.deps
    index_b = deps_b.professionals.index
    assert index_b is not None
    await eventually(lambda: index_b.ready, timeout_s=WAIT_S)

    admin = bearer(issuer, "pmm", "register_admin")
    org = f"tr{unique[:8]}"
    r = await a.post(
        "/organisations",
        headers=admin,
        json={
            "code": org,
            "name": org,
            "kind": "executing_organisation",
            "joined_on": "2024-01-01",
        },
    )
    assert r.status_code == 201, r.text
    professional = f"{org}-anna"
    r = await a.post(
        "/professionals",
        headers=admin,
        json={
            "id": professional,
            "organisation": org,
            "name": "Anna Test",
            "function": "klantmanager",
            "roles": ["maatwerk_professional"],
            "life_domains": ["income"],
            "email": f"anna@{org}.nl",
        },
    )
    assert r.status_code == 201, r.text
    # B learns A's write from the changelog it replays with the register's principal.
    await eventually(
        lambda: index_b.search(Filters(organisation=org), skip=0, limit=10)[0] == 1,
        timeout_s=WAIT_S,
    )

    assert (await a.delete(f"/professionals/{professional}", headers=admin)).status_code == 204
    reader = bearer(issuer, org, "maatwerk_professional")

    async def gone_on_b() -> bool:
        r = await b.get("/professionals", headers=reader, params={"organisation": org})
        return r.json()["total"] == 0 and index_b.get(professional) is None

    await eventually(gone_on_b, timeout_s=WAIT_S)
    values = await records_of(secured, professional.encode())
    assert values[0]  # the state the outbox relay wrote as pmm-register
    assert values[-1] is None  # a real tombstone: a null value
    assert b"" not in values  # never a zero-length value
