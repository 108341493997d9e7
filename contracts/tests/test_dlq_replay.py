"""The DLQ replay command against the real broker: fixed messages go back, once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from pmm_contracts import encode_event, new_event
from pmm_contracts.dlq import ORIGINAL_TOPIC, replay
from pmm_contracts.events.cases import CaseTriaged
from pmm_runtime.testing import admin_connection, create_topics, read_topic

pytestmark = pytest.mark.integration
SOURCE = "urn:nld:oin:00000001234567890000:systeem:loket"


async def test_replay_moves_valid_dead_letters_back_once_and_leaves_the_rest(
    make_settings: Callable[..., Any], unique: str
) -> None:
    bootstrap = make_settings(service_name="replay").kafka_bootstrap
    topic = f"test.replay.{unique}"
    await create_topics(bootstrap, [topic, topic + ".dlq"])
    good = encode_event(
        new_event(
            CaseTriaged(case_id="c1", case_number="LMM-2026-0001", accepted=True),
            subject="c1",
            source=SOURCE,
        )
    )
    producer = AIOKafkaProducer(**admin_connection(bootstrap).kwargs(), acks="all")
    await producer.start()
    try:
        headers = [(ORIGINAL_TOPIC, topic.encode()), ("x-dlq-error", b"handler failed")]
        await producer.send_and_wait(topic + ".dlq", good, key=b"c1", headers=headers)
        await producer.send_and_wait(topic + ".dlq", b"not json", key=b"c2", headers=headers)
    finally:
        await producer.stop()

    dry = await replay(bootstrap, topic, dry_run=True)
    assert [o for o, _ in dry.replayed] == [0, 1]
    report = await replay(bootstrap, topic, valid_only=True)
    assert report.replayed == [(0, topic)]
    assert [o for o, _ in report.skipped] == [1]
    (record,) = await read_topic(bootstrap, topic, count=1, settle_s=1.0)
    assert record.value == good
    assert record.key == b"c1"
    assert all(not k.startswith("x-dlq-") for k, _ in record.headers)
    again = await replay(bootstrap, topic, valid_only=True)
    assert again.replayed == []  # nothing replayed twice
    assert [o for o, _ in again.skipped] == [1]  # the broken one still waits
