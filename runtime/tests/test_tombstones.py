"""Only a null value is a tombstone (DESIGN.md §5): a zero-length value is dead-lettered.

Anyone who could produce b"" on a compacted changelog would otherwise delete an entry from
every read model while the owning service still lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pmm_contracts.connection import local_connection
from pmm_contracts.envelope import CloudEvent
from pmm_runtime.broker import HEADER_TOPIC
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually, read_topic

from .support import Counted, platform

pytestmark = pytest.mark.integration


async def test_a_null_value_is_a_tombstone_and_a_zero_length_value_is_dead_lettered(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="tombstones")
    topic = f"test.tombstones.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"])
    app = platform(settings)
    removed: list[str] = []
    handled: list[str] = []

    async def handle(event: CloudEvent[Counted]) -> None:
        handled.append(event.data.counter_id)

    async def on_tombstone(key: str) -> None:
        removed.append(key)

    app.subscribe(topic, handler=handle, on_tombstone=on_tombstone)
    await running_platform(app)
    conn = local_connection(settings.kafka_bootstrap)
    producer = AIOKafkaProducer(**conn.kwargs(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"", key=b"forged")
        await producer.send_and_wait(topic, None, key=b"deleted")
    finally:
        await producer.stop()

    await eventually(lambda: removed == ["deleted"])
    dead = await read_topic(settings.kafka_bootstrap, topic + ".dlq", count=1)
    assert [(r.key, r.value) for r in dead] == [(b"forged", b"")]
    assert dict(dead[0].headers)[HEADER_TOPIC] == topic.encode()
    assert removed == ["deleted"]
    assert handled == []
