"""CloudEvents binary content mode on the consumer side, against the real broker.

Organisations answer with the CloudEvents SDKs of their own stack, whose Kafka default is
binary mode (attributes in ``ce_*`` headers, the data as the value); the platform's
consumers take it as well as structured mode, and a binary-mode record that cannot be
decoded is dead-lettered with its ``ce_*`` headers, so a replay has the whole event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pmm_contracts import encode_event, new_event
from pmm_contracts.envelope import CONTENT_TYPE, CloudEvent
from pmm_runtime.broker import HEADER_ERROR
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import admin_connection, create_topics, eventually, read_topic

from .support import Counted, platform

pytestmark = pytest.mark.integration

SOURCE = "urn:nld:oin:00000001234567890000:systeem:test"


def binary(counter_id: str, amount: int, event_id: uuid.UUID) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event_id).encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_type", Counted.EVENT_TYPE.encode()),
        ("ce_subject", counter_id.encode()),
        ("ce_time", b"2026-12-02T10:00:00Z"),
        ("content-type", b"application/json"),
    ]


async def test_binary_and_structured_events_are_handled_and_a_broken_binary_one_dead_lettered(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="binary")
    topic = f"test.binary.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"])
    app = platform(settings)
    seen: list[tuple[uuid.UUID, str, int]] = []

    async def handle(event: CloudEvent[Counted]) -> None:
        seen.append((event.id, event.subject, event.data.amount))

    app.subscribe(topic, handler=handle)
    await running_platform(app)
    in_binary, broken, in_structured = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    structured = new_event(
        Counted(counter_id="s", amount=3), subject="s", source=SOURCE, event_id=in_structured
    )
    producer = AIOKafkaProducer(**admin_connection(settings.kafka_bootstrap).kwargs(), acks="all")
    await producer.start()
    try:
        data = json.dumps({"counter_id": "b", "amount": 2}).encode()
        await producer.send_and_wait(topic, data, key=b"b", headers=binary("b", 2, in_binary))
        await producer.send_and_wait(topic, b"", key=b"b", headers=binary("b", 1, broken))
        await producer.send_and_wait(
            topic,
            encode_event(structured),
            key=b"s",
            headers=[("content-type", CONTENT_TYPE.encode())],
        )
    finally:
        await producer.stop()

    await eventually(lambda: len(seen) == 2, timeout_s=60)
    assert sorted(seen) == sorted([(in_binary, "b", 2), (in_structured, "s", 3)])
    [dead] = await read_topic(settings.kafka_bootstrap, topic + ".dlq", count=1)
    headers = {name: value.decode() for name, value in dead.headers}
    assert dead.value == b""
    assert headers["ce_id"] == str(broken)
    assert headers["ce_type"] == Counted.EVENT_TYPE
    assert headers["content-type"] == "application/json"
    assert "not JSON" in headers[HEADER_ERROR]
