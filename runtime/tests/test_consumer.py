"""The consumer rules of DESIGN.md §5 against the real broker and store."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pymongo.errors import ServerSelectionTimeoutError

from pmm_contracts import encode_event, new_event
from pmm_contracts.envelope import CloudEvent
from pmm_runtime.broker import Delivery, PermanentError, RetryPolicy, current_delivery, is_outage
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import admin_connection, create_topics, eventually, read_topic
from pmm_runtime.writes import LockTimeout

from .support import Counted, platform

pytestmark = pytest.mark.integration

SOURCE = "urn:nld:oin:00000001234567890000:systeem:test"


async def produce(bootstrap: str, topic: str, *values: bytes, key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(**admin_connection(bootstrap).kwargs(), acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def counted(counter_id: str, amount: int, event_id: uuid.UUID | None = None) -> bytes:
    event = new_event(
        Counted(counter_id=counter_id, amount=amount),
        subject=counter_id,
        source=SOURCE,
        event_id=event_id,
    )
    return encode_event(event)


async def test_an_event_delivered_twice_changes_state_once(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="counter")
    topic = f"test.counted.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"])
    app = platform(settings)
    store = app.store("counters")

    async def handle(event: CloudEvent[Counted]) -> None:
        if await store.create(event.subject, {"total": 0}) is False:
            pass
        current = await store.get(event.subject)
        assert current is not None
        await store.update(
            event.subject,
            expected_version=current["_version"],
            set_fields={"total": current["total"] + event.data.amount},
            caused_by=str(event.id),
        )

    app.subscribe(topic, handler=handle)
    await running_platform(app)
    same_id = uuid.uuid4()
    await produce(
        settings.kafka_bootstrap,
        topic,
        counted("c1", 5, same_id),
        counted("c1", 5, same_id),
        counted("c1", 1),
    )

    async def total() -> int | None:
        doc = await store.get("c1")
        return doc["total"] if doc and len(doc["_applied"]) == 2 else None

    assert await eventually(total) == 6


async def test_a_pattern_subscriber_knows_which_topic_each_event_came_from(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="pattern")
    prefix = f"test.pattern.{unique}"
    topics = [f"{prefix}.alpha", f"{prefix}.beta"]
    await create_topics(settings.kafka_bootstrap, topics + [t + ".dlq" for t in topics])
    app = platform(settings)
    seen: list[tuple[str, Delivery]] = []

    async def handle(event: CloudEvent[Counted]) -> None:
        seen.append((event.data.counter_id, current_delivery()))

    app.subscribe(handler=handle, pattern=rf"^{prefix.replace('.', '[.]')}[.](alpha|beta)$")
    await running_platform(app)
    await produce(settings.kafka_bootstrap, topics[0], counted("a", 1), key=b"ka")
    await produce(settings.kafka_bootstrap, topics[1], counted("b", 1), key=b"kb")

    await eventually(lambda: len(seen) == 2)
    by_counter = dict(seen)
    assert by_counter["a"] == Delivery(topics[0], 0, 0, "ka")
    assert by_counter["b"] == Delivery(topics[1], 0, 0, "kb")
    with pytest.raises(RuntimeError):
        current_delivery()


async def test_a_batch_keeps_each_keys_order_and_handles_keys_concurrently(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    """The consumer takes a batch: one key's events in their order, different keys at the
    same time; everything committed once done (the group lags by nothing)."""
    settings = make_settings(service_name="batched", consumer_batch_size=50)
    topic = f"test.batched.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"], partitions=3)
    keys = [f"k{n}" for n in range(6)]
    producer = AIOKafkaProducer(**admin_connection(settings.kafka_bootstrap).kwargs(), acks="all")
    await producer.start()
    try:  # all of it there before the consumer starts: it gets full batches
        acks = [
            await producer.send(topic, counted(key, n), key=key.encode())
            for n in range(20)
            for key in keys
        ]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()
    app = platform(settings)
    seen: dict[str, list[int]] = {key: [] for key in keys}
    busy: set[str] = set()
    most_at_once = 0

    async def handle(event: CloudEvent[Counted]) -> None:
        nonlocal most_at_once
        key = event.data.counter_id
        assert key not in busy, "two events of one key at the same time"
        busy.add(key)
        most_at_once = max(most_at_once, len(busy))
        await asyncio.sleep(0.01)
        seen[key].append(event.data.amount)
        busy.discard(key)

    app.subscribe(topic, handler=handle)
    await running_platform(app)
    assert await eventually(lambda: sum(map(len, seen.values())) == 120, timeout_s=60.0)
    assert seen == {key: list(range(20)) for key in keys}
    assert most_at_once > 1, "the keys of a batch were handled one at a time"

    async def committed() -> bool:
        lag = await app.lag.measure()
        return lag.get(settings.group_id("main"), {}).get(topic) == 0

    assert await eventually(committed, timeout_s=30.0)


async def test_undecodable_and_invalid_messages_are_dead_lettered_and_the_partition_moves_on(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="dlq")
    topic = f"test.dlq.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"])
    app = platform(settings)
    seen: list[str] = []

    async def handle(event: CloudEvent[Counted]) -> None:
        seen.append(event.data.counter_id)

    app.subscribe(topic, handler=handle)
    await running_platform(app)
    invalid = json.loads(counted("x", 1))
    invalid["data"]["amount"] = "not a number"
    await produce(
        settings.kafka_bootstrap,
        topic,
        b"{this is not json",
        json.dumps(invalid).encode(),
        counted("good", 1),
    )

    await eventually(lambda: seen == ["good"])
    dead = await read_topic(settings.kafka_bootstrap, topic + ".dlq", count=2)
    assert len(dead) == 2
    headers = [dict(record.headers) for record in dead]
    assert headers[0]["x-dlq-original-topic"] == topic.encode()
    assert headers[0]["x-dlq-original-partition"] == b"0"
    assert headers[0]["x-dlq-original-offset"] == b"0"
    assert b"not JSON" in headers[0]["x-dlq-error"]
    assert headers[1]["x-dlq-original-offset"] == b"1"
    assert b"data.amount" in headers[1]["x-dlq-error"]
    assert dead[0].value == b"{this is not json"


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_bounded_retries(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="retry", consumer_max_retries=2)
    topic = f"test.retry.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"])
    app = platform(settings)
    attempts: dict[str, int] = {}

    async def handle(event: CloudEvent[Counted]) -> None:
        attempts[event.data.counter_id] = attempts.get(event.data.counter_id, 0) + 1
        if event.data.counter_id == "poison":
            raise RuntimeError("downstream keeps failing")
        if event.data.counter_id == "rule":
            raise PermanentError("breaks a business rule")

    app.subscribe(topic, handler=handle)
    await running_platform(app)
    await produce(
        settings.kafka_bootstrap,
        topic,
        counted("poison", 1),
        counted("rule", 1),
        counted("fine", 1),
    )

    await eventually(lambda: attempts.get("fine") == 1)
    assert attempts["poison"] == 3  # the first try and two retries
    assert attempts["rule"] == 1  # a permanent error is not retried
    dead = await read_topic(settings.kafka_bootstrap, topic + ".dlq", count=2)
    headers = [dict(record.headers) for record in dead]
    assert headers[0]["x-dlq-attempts"] == b"3"
    assert headers[0]["x-dlq-error-class"] == b"RuntimeError"
    assert headers[1]["x-dlq-error-class"] == b"PermanentError"
    text = (await app.broker_ready(), app.metrics.render().decode())
    assert 'pmm_events_dead_lettered_total{topic="' + topic + '"} 2.0' in text[1]


def test_an_outage_is_retried_for_its_patience_and_a_failing_message_for_its_count() -> None:
    policy = RetryPolicy(max_retries=3, backoff_s=0.2, outage_patience_s=240.0)
    broken = ValueError("the message breaks the handler")
    assert [policy.next_delay(broken, n, 0.0) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, None]
    away = ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")
    held = LockTimeout("the write lock of cases/c1 stayed held")
    assert is_outage(away)
    assert is_outage(held)
    assert not is_outage(broken)
    assert policy.next_delay(away, 0, 0.0) == 0.2  # not counted against max_retries
    assert policy.next_delay(away, 0, 100.0) == 0.2
    assert policy.next_delay(away, 3, 239.0) == 1.6  # backoff as the message's own failures
    assert policy.next_delay(away, 10, 239.0) == 5.0  # capped
    assert policy.next_delay(held, 0, 240.0) is None  # patience is bounded: dead-lettered
