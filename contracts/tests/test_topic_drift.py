"""Durability from settings and the drift report of ``pmm-contracts topics``, on the real
broker: a topic is created with the replication factor and ``min.insync.replicas`` asked
for; an existing topic that differs from the catalogue is reported, never changed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pmm_contracts.cli import Durability, provision
from pmm_contracts.topics import TopicSpec
from pmm_runtime.testing import Infra

pytestmark = pytest.mark.integration


def spec(name: str) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=2,
        key="id",
        cleanup_policy="delete",
        retention_ms=86_400_000,
        producer="test",
        consumers=(),
        event_types=(),
        description="drift test",
    )


def topic_state(infra: Infra, name: str) -> tuple[int, int, dict[str, str]]:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient(infra.connection.librdkafka_config())
    topic = admin.list_topics(topic=name, timeout=30).topics[name]
    [future] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values()
    configs = {k: v.value for k, v in future.result(timeout=30).items()}
    replicas = min(len(p.replicas) for p in topic.partitions.values())
    return len(topic.partitions), replicas, configs


def test_durability_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMM_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("PMM_KAFKA_MIN_INSYNC_REPLICAS", "2")
    assert Durability.from_env() == Durability(3, 2)
    monkeypatch.delenv("PMM_KAFKA_REPLICATION_FACTOR")
    monkeypatch.delenv("PMM_KAFKA_MIN_INSYNC_REPLICAS")
    assert Durability.from_env() == Durability(1, 1)


async def test_a_topic_gets_its_durability_and_a_different_one_is_reported_not_changed(
    infra: Infra, unique: str
) -> None:
    wanted = spec(f"test.drift.{unique}")
    created = await provision(
        infra.kafka_bootstrap, [wanted], connection=infra.connection, durability=Durability(1, 1)
    )
    assert created == [wanted.name]
    partitions, replicas, configs = await asyncio.to_thread(topic_state, infra, wanted.name)
    assert (partitions, replicas) == (2, 1)
    assert configs["min.insync.replicas"] == "1"
    assert configs["retention.ms"] == "86400000"

    drift: list[str] = []
    again = await provision(
        infra.kafka_bootstrap,
        [replace(wanted, partitions=3, retention_ms=3_600_000)],
        connection=infra.connection,
        durability=Durability(3, 2),  # what compose and Kubernetes ask for
        drift=drift,
    )
    assert again == []
    assert sorted(drift) == sorted(
        [
            f"{wanted.name}: 2 partitions, wanted 3",
            f"{wanted.name}: replication factor 1, wanted 3",
            f"{wanted.name}: retention.ms=86400000, wanted 3600000",
            f"{wanted.name}: min.insync.replicas=1, wanted 2",
        ]
    )
    # Reported, not changed.
    assert await asyncio.to_thread(topic_state, infra, wanted.name) == (
        partitions,
        replicas,
        configs,
    )
    in_line: list[str] = []
    await provision(
        infra.kafka_bootstrap,
        [wanted],
        connection=infra.connection,
        durability=Durability(1, 1),
        drift=in_line,
    )
    assert in_line == []
