"""End to end: a fresh consumer (another service's read model, its own group and database)
rebuilds the register from the compacted changelogs at offset 0, removals included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from pmm_contracts.topics import REGISTER_PROFESSIONALS
from pmm_register.app import create_app
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import admin_connection, bearer, eventually


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(topic, **admin_connection(bootstrap).kwargs())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        result: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return result
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**admin_connection(bootstrap).kwargs())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_another_service_rebuilds_the_register_including_a_removal(
    make_settings: Callable[..., Any],
    serve: Any,
    running_platform: Any,
    issuer: LocalIssuer,
    unique: str,
) -> None:
    register = await serve(create_app(make_settings(RegisterSettings)))
    admin = bearer(issuer, "pmm", "register_admin")
    org = f"svb{unique[:6]}"
    for code in ("pmm", org):
        kind = "ministry" if code == "pmm" else "executing_organisation"
        await register.post(
            "/organisations",
            headers=admin,
            json={"code": code, "name": code, "kind": kind, "joined_on": "2024-01-01"},
        )
    for who in ("stays", "leaves"):
        created = await register.post(
            "/professionals",
            headers=admin,
            json={
                "id": f"{org}-{who}",
                "organisation": org,
                "name": f"Professional {who}",
                "roles": ["maatwerk_professional", "executive"],
                "email": f"{who}@{org}.nl",
            },
        )
        assert created.status_code == 201, created.text
    assert (await register.delete(f"/professionals/{org}-leaves", headers=admin)).status_code == 204

    # A brand-new consumer, as another service would start for the first time.
    other = Platform(
        make_settings(
            ServiceSettings, service_name="rebuilder", mongodb_database=f"t_rebuilder_{unique}"
        ),
        configure_logs=False,
    )
    model = RegisterReadModel(other)
    await running_platform(other)

    async def rebuilt() -> bool:
        stays = await model.professional(f"{org}-stays")
        organisation = await model.organisation(org)
        return bool(stays and organisation and organisation["is_member"])

    await eventually(rebuilt, timeout_s=60)

    # Caught up: the group's committed offsets reached the end of the changelog, so the
    # tombstone (published after the entry) has been applied, not merely not yet seen.
    end = await end_offsets(other.settings.kafka_bootstrap, REGISTER_PROFESSIONALS)
    group = other.settings.group_id("register-professionals")

    async def caught_up() -> bool:
        committed = await committed_offsets(other.settings.kafka_bootstrap, group)
        return all(committed.get(tp, -1) >= offset for tp, offset in end.items())

    await eventually(caught_up, timeout_s=60)
    assert await model.professional(f"{org}-leaves") is None
    executives = await model.with_role("executive", organisation=org)
    assert [p["_id"] for p in executives] == [f"{org}-stays"]
    assert executives[0]["email"] == f"stays@{org}.nl"
