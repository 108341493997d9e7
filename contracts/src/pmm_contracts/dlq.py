"""Replay dead letters: move messages from ``<topic>.dlq`` back to the topic they came from.

``pmm-contracts dlq replay --topic pmm.loket.cases [--valid-only] [--dry-run]``

A message lands in a dead-letter topic because it could not be decoded or handled. Once
the cause is fixed (a consumer bug, an organisation that has joined since, a producer that
re-sent a corrected copy), an operator replays the dead letters: each one is produced again,
value, key and its original headers (the ``x-dlq-*`` ones dropped), on the topic named in
its ``x-dlq-original-topic`` header. The replay reads with its own consumer group
(``pmm.dlq-replay.<topic>``) and commits after producing, so a message is replayed once
even when the command runs again; consumers are idempotent by event id, so a replay after
a crash in between changes nothing twice. ``--valid-only`` replays only the messages that
are valid CloudEvents of a known type now and leaves the others (they are reported, and the
group's position stays at the first one left, so a later run sees it again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pmm_contracts.connection import local_connection
from pmm_contracts.envelope import EventData, EventDecodeError, Headers, decode_message
from pmm_contracts.events import REGISTRY
from pmm_contracts.topics import dead_letter_topic

ORIGINAL_TOPIC = "x-dlq-original-topic"


@dataclass
class ReplayReport:
    replayed: list[tuple[int, str]] = field(default_factory=list)  # (dlq offset, to topic)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (dlq offset, why)

    def lines(self) -> list[str]:
        out = [f"replayed offset {o} to {t}" for o, t in self.replayed]
        out += [f"skipped offset {o}: {why}" for o, why in self.skipped]
        out.append(f"{len(self.replayed)} replayed, {len(self.skipped)} left in the DLQ")
        return out


async def replay(
    bootstrap: str,
    topic: str,
    *,
    valid_only: bool = False,
    dry_run: bool = False,
    registry: Mapping[str, type[EventData]] = REGISTRY,
    client_kwargs: Mapping[str, Any] | None = None,
    idle_s: float = 2.0,
) -> ReplayReport:
    """Replay what waits in ``topic``'s DLQ now (stops when nothing arrives for ``idle_s``)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    if client_kwargs is None:  # the local broker's admin credentials when it is secured
        client_kwargs = local_connection(bootstrap).aiokafka_kwargs()
        client_kwargs.pop("bootstrap_servers")
    extra = dict(client_kwargs)
    dlq = dead_letter_topic(topic)
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=bootstrap,
        group_id=f"pmm.dlq-replay.{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **extra,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **extra
    )
    report = ReplayReport()
    await consumer.start()
    await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=500)
            if not batch:
                break
            offsets: dict[Any, int] = {}
            for tp, records in batch.items():
                first_left: int | None = None
                for record in records:
                    headers = {k: v for k, v in (record.headers or ())}
                    target = headers.get(ORIGINAL_TOPIC, topic.encode()).decode()
                    why = _invalid(record.value, record.headers, registry) if valid_only else None
                    if why is not None:
                        report.skipped.append((record.offset, why))
                        first_left = record.offset if first_left is None else first_left
                        continue
                    if not dry_run:
                        kept = [(k, v) for k, v in headers.items() if not k.startswith("x-dlq-")]
                        await producer.send_and_wait(
                            target, record.value, key=record.key, headers=kept
                        )
                    report.replayed.append((record.offset, target))
                offsets[tp] = first_left if first_left is not None else records[-1].offset + 1
            if not dry_run:
                # Up to the first message left behind: a later run sees it again (and
                # replays what followed it once more, which idempotent consumers drop).
                await consumer.commit(offsets)
            if report.skipped:
                break
    finally:
        await producer.stop()
        await consumer.stop()
    return report


def _invalid(
    value: bytes | None, headers: Headers | None, registry: Mapping[str, type[EventData]]
) -> str | None:
    if not value:
        return "empty value"
    try:
        decode_message(value, headers, registry)  # structured or binary mode
    except EventDecodeError as exc:
        return str(exc)[:200]
    return None
