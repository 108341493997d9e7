"""Kafka through FastStream (over aiokafka), with the platform's reliability rules.

- Producer: idempotent, ``acks=all``.
- Subscribers: explicit ``group_id``; offsets are committed only after the work is done
  (at-least-once). FastStream's Kafka default commits *before* processing, so every
  subscriber here sets its ack policy explicitly.
- A message that cannot be decoded or validated goes to ``<topic>.dlq`` at once, with the
  error, original topic, partition and offset in headers, and the partition moves on.
- A handler failure is retried ``max_retries`` times with exponential backoff, then
  dead-lettered. ``PermanentError`` skips the retries. An outage (the store unreachable,
  a write lock that stayed held: ``is_outage``) says nothing about the message: it is
  retried with capped backoff for ``outage_patience_s`` (bounded in time, not in count)
  before it is dead-lettered, so a store restart dead-letters nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.publisher.usecase import DefaultPublisher
from pymongo.errors import ConnectionFailure

from pmm_contracts.connection import Connection, local_connection
from pmm_contracts.envelope import CloudEvent, EventData, EventDecodeError, decode_message
from pmm_contracts.topics import dead_letter_topic
from pmm_runtime import kafka_security
from pmm_runtime.errors import Unavailable
from pmm_runtime.logging import get_logger, library_logger
from pmm_runtime.metrics import Metrics
from pmm_runtime.settings import ServiceSettings

log = get_logger(__name__)

EventHandler = Callable[[CloudEvent[Any]], Awaitable[None]]
TombstoneHandler = Callable[[str], Awaitable[None]]

HEADER_ERROR = "x-dlq-error"
HEADER_ERROR_CLASS = "x-dlq-error-class"
HEADER_TOPIC = "x-dlq-original-topic"
HEADER_PARTITION = "x-dlq-original-partition"
HEADER_OFFSET = "x-dlq-original-offset"
HEADER_GROUP = "x-dlq-consumer-group"
HEADER_ATTEMPTS = "x-dlq-attempts"


@dataclass(frozen=True)
class Delivery:
    """Where the message being handled came from (``current_delivery()`` in a handler)."""

    topic: str
    partition: int
    offset: int
    key: str | None


# The delivery of the message the current task handles; set by each subscriber per message,
# so a handler of a pattern subscription knows which topic its event came from.
_delivery: ContextVar[Delivery | None] = ContextVar("pmm_delivery", default=None)


def current_delivery() -> Delivery:
    """The topic, partition, offset and key of the message being handled.

    Only valid inside a handler called by ``subscribe_events``.
    """
    delivery = _delivery.get()
    if delivery is None:
        raise RuntimeError("current_delivery() is only available inside an event handler")
    return delivery


def _record(message: KafkaMessage) -> ConsumerRecord[bytes, bytes]:
    """The aiokafka record behind a (non-batch) FastStream message."""
    return cast("ConsumerRecord[bytes, bytes]", message.raw_message)


class PermanentError(Exception):
    """A handler error that no retry will fix (e.g. an event that breaks a business rule)."""


def create_broker(
    settings: ServiceSettings,
    *,
    client_id: str | None = None,
    middlewares: Sequence[Any] = (),
) -> KafkaBroker:
    """The service's broker; ``middlewares`` are FastStream's (telemetry, Prometheus), and
    its log lines go through the standard library to the JSON handler (no colours)."""
    conn = kafka_security.connection(settings)
    return KafkaBroker(
        conn.bootstrap,
        middlewares=tuple(middlewares),
        logger=library_logger("faststream"),
        security=kafka_security.faststream_security(conn),
        client_id=client_id or f"pmm-{settings.service_name}",
        acks="all",
        enable_idempotence=True,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        graceful_timeout=settings.shutdown_grace_s,
        description=f"PMM {settings.service_name}",
        log_level=10,  # FastStream's per-message lines at DEBUG: ours carry the event ids
    )


def is_outage(exc: BaseException) -> bool:
    """The store (or a write lock in it) is not there now: nothing is wrong with the
    message, a later attempt will do."""
    return isinstance(exc, ConnectionFailure | Unavailable)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_s: float = 0.2
    outage_patience_s: float = 240.0
    outage_backoff_max_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RetryPolicy:
        return cls(
            settings.consumer_max_retries,
            settings.consumer_retry_backoff_s,
            settings.consumer_outage_patience_s,
        )

    def next_delay(self, exc: BaseException, attempt: int, outage_s: float) -> float | None:
        """Seconds to wait before the next attempt, or None: give up (dead-letter).
        ``attempt`` counts the failures that were not outages (for an outage: every
        attempt, for its backoff); ``outage_s`` is how long the handler has met an outage."""
        if is_outage(exc):
            if outage_s >= self.outage_patience_s:
                return None
            return min(self.backoff_s * 2.0 ** min(attempt, 10), self.outage_backoff_max_s)
        if attempt > self.max_retries:
            return None
        return self.backoff_s * 2.0 ** (attempt - 1)


class DeadLetters:
    """The dead-letter publishers of one broker, one declared per consumed topic."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker
        self._publishers: dict[str, DefaultPublisher] = {}

    def declare(self, topic: str) -> None:
        if topic not in self._publishers:
            self._publishers[topic] = self._broker.publisher(
                dead_letter_topic(topic),
                title=f"{dead_letter_topic(topic)}:publish",
                description=f"Messages from {topic} that could not be decoded or handled, "
                "with the error and their origin in x-dlq-* headers.",
            )

    async def send(
        self,
        record: ConsumerRecord[bytes, bytes],
        *,
        error: BaseException | str,
        group_id: str,
        attempts: int,
    ) -> None:
        topic = record.topic
        headers = {  # the original headers too: a binary-mode event's attributes are there
            **_original_headers(record),
            HEADER_ERROR: str(error)[:2000],
            HEADER_ERROR_CLASS: type(error).__name__ if not isinstance(error, str) else "str",
            HEADER_TOPIC: topic,
            HEADER_PARTITION: str(record.partition),
            HEADER_OFFSET: str(record.offset),
            HEADER_GROUP: group_id,
            HEADER_ATTEMPTS: str(attempts),
        }
        publisher = self._publishers.get(topic)
        value: bytes = record.value or b""
        if publisher is not None:
            await publisher.publish(value, key=record.key, headers=headers)
        else:  # a pattern subscription met a topic it was not declared for
            await self._broker.publish(
                value, dead_letter_topic(topic), key=record.key, headers=headers
            )


def _original_headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    """A record's headers as text, without the x-dlq-* ones of an earlier dead-lettering."""
    return {
        name: value.decode(errors="replace")
        for name, value in record.headers or ()
        if value is not None and not name.startswith("x-dlq-")
    }


def subscribe_events(
    broker: KafkaBroker,
    *topics: str,
    group_id: str,
    registry: Mapping[str, type[EventData]],
    handler: EventHandler,
    dead_letters: DeadLetters,
    retry: RetryPolicy = RetryPolicy(),
    metrics: Metrics | None = None,
    on_tombstone: TombstoneHandler | None = None,
    pattern: str | None = None,
    title: str | None = None,
    description: str | None = None,
    batch_size: int = 1,
    traced: Callable[
        [str, Sequence[tuple[str, bytes | None]] | None], contextlib.AbstractContextManager[None]
    ]
    | None = None,
) -> None:
    """Subscribe ``handler`` to CloudEvents on ``topics`` with the platform's rules.

    With ``batch_size`` 1 the handler is awaited for one message at a time. With more, the
    consumer takes what the broker has, up to ``batch_size`` records at once: records of
    one key (one partition) are handled one after the other in their order, records of
    different keys concurrently, and the offsets are committed when the whole batch is
    done. Either way a record is done when its handler returned or it was dead-lettered;
    when even dead-lettering failed, nothing is committed and the partitions are rewound
    to the batch's first records (handled again: handlers are idempotent by event id).
    """
    for topic in topics:
        dead_letters.declare(topic)
    subscriber_args: dict[str, Any] = {
        "group_id": group_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "title": title,
        "description": description,
    }
    if batch_size > 1:
        subscriber_args.update(batch=True, max_records=batch_size, batch_timeout_ms=100)
    if pattern is not None:
        subscriber = broker.subscriber(pattern=pattern, **subscriber_args)
    else:
        subscriber = broker.subscriber(*topics, **subscriber_args)

    async def raw_body(message: KafkaMessage) -> Any:  # decoder: we decode ourselves
        return message.body

    async def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        topic = record.topic
        key = record.key.decode() if isinstance(record.key, bytes) else record.key
        _delivery.set(Delivery(topic, record.partition, record.offset, key))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            topic=topic, partition=record.partition, offset=record.offset, subject=key
        )
        if record.value is None:  # only a null value is a tombstone; b"" is dead-lettered
            if on_tombstone is not None and key is not None:
                await on_tombstone(key)
            return
        try:
            event = decode_message(record.value, record.headers, registry)  # both modes
        except EventDecodeError as exc:
            log.warning("undecodable message dead-lettered", error=str(exc))
            await dead_letters.send(record, error=exc, group_id=group_id, attempts=0)
            if metrics:
                metrics.dead_lettered.labels(topic=topic).inc()
            return
        structlog.contextvars.bind_contextvars(event_id=str(event.id), event_type=event.type)
        attempt = 0  # failures that were not outages
        attempts = 0
        outage_since: float | None = None
        started = time.perf_counter()
        while True:
            attempts += 1
            try:
                await handler(event)
            except PermanentError as exc:
                error: BaseException = exc
                break
            except Exception as exc:
                error = exc
                if metrics:
                    metrics.failed.labels(topic=topic).inc()
                now = time.monotonic()
                if is_outage(exc):
                    outage_since = outage_since if outage_since is not None else now
                else:
                    attempt += 1
                outage_s = now - outage_since if outage_since is not None else 0.0
                delay = retry.next_delay(exc, attempts if is_outage(exc) else attempt, outage_s)
                if delay is None:
                    break
                log.warning(
                    "store unavailable; retrying" if is_outage(exc) else "handler failed; retrying",
                    attempt=attempts,
                    error=repr(exc),
                    retry_in_s=round(delay, 3),
                    outage_s=round(outage_s, 1),
                )
                await asyncio.sleep(delay)
                continue
            if metrics:
                metrics.consumed.labels(topic=topic).inc()
                metrics.processing.labels(topic=topic).observe(time.perf_counter() - started)
            return
        log.error("handler gave up; event dead-lettered", attempts=attempts, error=repr(error))
        await dead_letters.send(record, error=error, group_id=group_id, attempts=attempts)
        if metrics:
            metrics.dead_lettered.labels(topic=topic).inc()

    if batch_size <= 1:

        async def consume(body: Any, message: KafkaMessage) -> None:
            await handle(_record(message))

        subscriber(consume, decoder=raw_body)
        return

    async def traced_handle(record: ConsumerRecord[bytes, bytes]) -> None:
        if traced is None:
            await handle(record)
            return
        with traced(record.topic, record.headers):  # each record in its own trace
            await handle(record)

    async def consume_batch(body: Any, message: KafkaMessage) -> None:
        await handle_batch(traced_handle, _records(message))

    subscriber(consume_batch, decoder=raw_body)


def _records(message: KafkaMessage) -> Sequence[ConsumerRecord[bytes, bytes]]:
    """The aiokafka records behind a batch message."""
    raw = message.raw_message
    return cast("Sequence[ConsumerRecord[bytes, bytes]]", raw if isinstance(raw, tuple) else (raw,))


async def handle_batch(
    handle: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]],
    records: Sequence[ConsumerRecord[bytes, bytes]],
) -> None:
    """Handle a batch: the records of one (topic, partition, key) in order, the groups
    concurrently (each in its own task, so each has its own delivery and log context).
    Raises the first failure after every group has finished."""
    groups: dict[tuple[str, int, bytes | None], list[ConsumerRecord[bytes, bytes]]] = {}
    for record in records:
        groups.setdefault((record.topic, record.partition, record.key), []).append(record)

    async def in_order(group: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in group:
            await handle(record)

    outcomes = await asyncio.gather(*(in_order(g) for g in groups.values()), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


class TombstonePublisher:
    """Publishes tombstones (a null value) for compacted topics.

    FastStream encodes ``None`` as an empty byte string, which log compaction does not
    treat as a tombstone, so tombstones go through a plain idempotent aiokafka producer,
    started on first use. The relay waits for the acknowledgements before and after a
    tombstone (another producer), so order per key is kept.
    """

    def __init__(self, bootstrap: str | Connection, client_id: str) -> None:
        # A bare bootstrap string: the local broker's admin credentials when it is secured
        # (tests, tools); a service passes its own ``kafka_security.connection(settings)``.
        self._connection = (
            bootstrap if isinstance(bootstrap, Connection) else local_connection(bootstrap)
        )
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def send(self, topic: str, key: bytes) -> Awaitable[object]:
        """Hand a tombstone to the producer; the result resolves on the broker's ack."""
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self._connection.with_client_id(self._client_id + "-tombstones").kwargs(),
                acks="all",
                enable_idempotence=True,
            )
            await producer.start()
            self._producer = producer
        ack: Awaitable[object] = await self._producer.send(topic, None, key=key)
        return ack

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


def send_fn(
    broker: KafkaBroker,
    publishers: Mapping[str, DefaultPublisher],
    tombstones: TombstonePublisher,
) -> Callable[[str, bytes | None, bytes | None, dict[str, str]], Awaitable[Awaitable[object]]]:
    """The outbox relay's send (``outbox.Send``): through the declared publisher of the
    topic if any, without waiting for the acknowledgement (the relay waits for a batch)."""

    async def send(
        topic: str, key: bytes | None, value: bytes | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        if value is None:
            if key is None:
                raise ValueError("a tombstone needs a key")
            return await tombstones.send(topic, key)
        publisher = publishers.get(topic)
        if publisher is not None:
            return await publisher.publish(value, key=key, headers=headers, no_confirm=True)
        return await broker.publish(value, topic, key=key, headers=headers, no_confirm=True)

    return send
