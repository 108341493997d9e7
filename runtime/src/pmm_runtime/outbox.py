"""Transactional outbox on one document (DESIGN.md §5).

A state change and the events it causes are written in ONE single-document atomic update:
the events wait in the aggregate's ``_outbox`` field. The relay publishes them in order
and removes them only after the broker acknowledged. A crash between write and publish
loses nothing: the relay finds the events on restart. A crash between publish and removal
publishes an event again, which is why consumers are idempotent by event id.

Document layout: the aggregate's own fields, plus
``_version`` (optimistic concurrency), ``_outbox`` (pending events), ``_applied`` (ids of
the events already applied to it, for idempotent consumers) and ``_audit`` (audit trail).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from pmm_contracts.envelope import CONTENT_TYPE, CloudEvent, event_to_dict
from pmm_runtime.logging import get_logger
from pmm_runtime.metrics import Metrics
from pmm_runtime.mongo import Document

log = get_logger(__name__)

OUTBOX = "_outbox"
VERSION = "_version"
APPLIED = "_applied"
AUDIT = "_audit"


@dataclass(frozen=True)
class Outgoing:
    """An event bound for a topic."""

    topic: str
    event: CloudEvent[Any]

    def entry(self) -> Document:
        return {
            "id": str(self.event.id),
            "topic": self.topic,
            "key": self.event.subject,
            "value": event_to_dict(self.event),
        }


@dataclass(frozen=True)
class Tombstone:
    """A null value for ``key`` on a compacted topic: the entry is removed everywhere."""

    topic: str
    key: str

    def entry(self) -> Document:
        return {
            "id": f"tombstone:{self.topic}:{self.key}:{uuid.uuid4()}",
            "topic": self.topic,
            "key": self.key,
            "value": None,
        }


Pending = Outgoing | Tombstone


def audit_entry(
    *,
    actor: str,
    action: str,
    reason: str | None = None,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Document:
    """One line of an audit trail: who did what, when, why, and what changed."""
    return {
        "at": at or datetime.now(UTC),
        "actor": actor,
        "action": action,
        "reason": reason,
        "old": dict(old) if old else None,
        "new": dict(new) if new else None,
    }


class ConcurrencyConflict(Exception):
    """The aggregate changed since it was read (or the causing event was applied already)."""


class AggregateStore:
    """Writes aggregate state and its outbox events in one atomic single-document update."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def get(self, aggregate_id: str) -> Document | None:
        return await self.collection.find_one({"_id": aggregate_id})

    async def create(
        self,
        aggregate_id: str,
        state: Mapping[str, Any],
        events: Sequence[Pending] = (),
        *,
        caused_by: str | None = None,
        audit: Mapping[str, Any] | None = None,
    ) -> bool:
        """Insert a new aggregate with its events. False when the id exists already.

        With an id derived from the causing event, a replayed creation is a no-op.
        """
        document: Document = {
            **state,
            "_id": aggregate_id,
            VERSION: 1,
            OUTBOX: [e.entry() for e in events],
            APPLIED: [caused_by] if caused_by else [],
            AUDIT: [dict(audit)] if audit else [],
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            return False
        return True

    async def update(
        self,
        aggregate_id: str,
        *,
        expected_version: int | None,
        set_fields: Mapping[str, Any] | None = None,
        events: Sequence[Pending] = (),
        caused_by: str | None = None,
        audit: Mapping[str, Any] | None = None,
        extra_condition: Mapping[str, Any] | None = None,
        push: Mapping[str, Any] | None = None,
    ) -> Document | None:
        """Change state and queue events atomically; the new document, or None on conflict.

        ``expected_version`` guards against lost updates; ``caused_by`` (the id of the event
        being applied) makes a redelivered event change nothing.
        """
        condition: dict[str, Any] = {"_id": aggregate_id}
        if expected_version is not None:
            condition[VERSION] = expected_version
        if caused_by is not None:
            condition[APPLIED] = {"$ne": caused_by}
        if extra_condition:
            condition.update(extra_condition)
        to_push: dict[str, Any] = dict(push or {})
        if events:
            to_push[OUTBOX] = {"$each": [e.entry() for e in events]}
        if caused_by is not None:
            to_push[APPLIED] = caused_by
        if audit is not None:
            to_push[AUDIT] = dict(audit)
        update: dict[str, Any] = {"$inc": {VERSION: 1}}
        if set_fields:
            update["$set"] = dict(set_fields)
        if to_push:
            update["$push"] = to_push
        result: Document | None = await self.collection.find_one_and_update(
            condition, update, return_document=ReturnDocument.AFTER
        )
        return result

    async def record_read(self, aggregate_id: str, audit: Mapping[str, Any]) -> None:
        """Audit a read of the aggregate (it does not change its version)."""
        await self.collection.update_one({"_id": aggregate_id}, {"$push": {AUDIT: dict(audit)}})


Publish = Callable[[str, bytes | None, bytes | None, dict[str, str]], Awaitable[None]]
"""(topic, key, value or None for a tombstone, headers) -> awaits the broker's ack."""


class OutboxRelay:
    """Publishes pending outbox events of the given collections, in order, at least once."""

    def __init__(
        self,
        publish: Publish,
        collections: Sequence[AsyncCollection[Document]],
        *,
        metrics: Metrics | None = None,
        poll_interval_s: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        self._publish = publish
        self._collections = list(collections)
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def add_collection(self, collection: AsyncCollection[Document]) -> None:
        self._collections.append(collection)

    def notify(self) -> None:
        """Wake the relay now (after a write), instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Publish what is pending now; returns the number of events published."""
        published = 0
        backlog = 0
        for collection in self._collections:
            cursor = collection.find({f"{OUTBOX}.0": {"$exists": True}}, {OUTBOX: 1}).limit(
                self._batch_size
            )
            async for document in cursor:
                entries: list[Document] = document.get(OUTBOX) or []
                backlog += len(entries)
                done: list[Document] = []
                try:
                    for entry in entries:
                        value = (
                            None
                            if entry["value"] is None
                            else json.dumps(entry["value"], separators=(",", ":")).encode()
                        )
                        key = entry["key"].encode() if entry.get("key") is not None else None
                        await self._publish(
                            entry["topic"], key, value, {"content-type": CONTENT_TYPE}
                        )
                        done.append(entry)
                        if self._metrics:
                            self._metrics.published.labels(topic=entry["topic"]).inc()
                finally:
                    if done:
                        # Remove exactly the entries published, as read (FerretDB 1.x
                        # matches whole entries in $pullAll, not conditions in $pull).
                        await collection.update_one(
                            {"_id": document["_id"]}, {"$pullAll": {OUTBOX: done}}
                        )
                        published += len(done)
        if self._metrics:
            self._metrics.outbox_backlog.set(max(backlog - published, 0))
        return published

    async def run(self) -> None:
        """Loop until ``stop()``; on stop, one last flush so nothing written waits."""
        while not self._stopping.is_set():
            try:
                published = await self.run_once()
            except (PyMongoError, OSError, RuntimeError) as exc:
                log.warning("outbox relay pass failed; retrying", error=str(exc))
                published = 0
            except Exception as exc:
                log.warning("outbox relay pass failed; retrying", error=repr(exc))
                published = 0
            if published:
                continue
            self._wake.clear()
            waiters = [
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self._stopping.wait()),
            ]
            await asyncio.wait(
                waiters, timeout=self._poll_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
        try:
            await self.run_once()
        except Exception as exc:
            log.warning("final outbox flush failed; events stay queued", error=repr(exc))

    def stop(self) -> None:
        self._stopping.set()
