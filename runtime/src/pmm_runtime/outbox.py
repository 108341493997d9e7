"""Transactional outbox on one document (DESIGN.md §5).

A state change and the events it causes are written in ONE single-document atomic update:
the events wait in the aggregate's ``_outbox`` field. The relay publishes them in order
and removes them only after the broker acknowledged. A crash between write and publish
loses nothing: the relay finds the events on restart. A crash between publish and removal
publishes an event again, which is why consumers are idempotent by event id.

Document layout: the aggregate's own fields, plus
``_version`` (optimistic concurrency), ``_outbox`` (pending events), ``_applied`` (ids of
the events already applied to it, for idempotent consumers) and ``_audit`` (audit trail).

The relay never scans the aggregates to find work (a scan's cost grows with the data, and
FerretDB decodes every document of it): after each write with events the store announces
the aggregate in a small per-service collection, ``_outbox_pending`` (an insert-only
announcement per write, ``PendingOutbox``). The relay reads a page of it, publishes each
announced aggregate's outbox, and removes exactly the announcements it read, in one
delete; a write meanwhile left a new one. A short outbox travels with its announcement
(the whole outbox as the write left it), so the relay publishes it without reading the
aggregate; a sweep's announcement, a long outbox or a publish that failed part-way makes
it read the aggregate by ``_id`` (decision 0012). A
crash between the aggregate write and its announcement is recovered by a full sweep at
start-up and every ``outbox_sweep_interval_s`` (rarely); a write of this process that
failed with an unknown outcome (the store went away between the two writes, or during the
first: it may have been saved although the client saw an error) makes the next pass sweep
(``SweepSchedule``).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from pmm_runtime.recent import Recent
from pmm_runtime.telemetry import current_trace_context, use_trace_context
from pmm_runtime.writes import Held, SweepSchedule, Writes

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
        entry: Document = {
            "id": str(self.event.id),
            "topic": self.topic,
            "key": self.event.subject,
            "value": event_to_dict(self.event),
        }
        trace_context = current_trace_context()
        if trace_context:  # the relay publishes inside the trace that caused the event
            entry["trace"] = trace_context
        return entry


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
    command_id: str | None = None,
) -> Document:
    """One line of an audit trail: who did what, when, why, and what changed (the one shape
    every service writes; ``command_id`` is the causing command or event, if any)."""
    entry: Document = {
        "at": at or datetime.now(UTC),
        "actor": actor,
        "action": action,
        "reason": reason,
        "old": dict(old) if old else None,
        "new": dict(new) if new else None,
    }
    if command_id is not None:
        entry["command_id"] = command_id
    return entry


class ConcurrencyConflict(Exception):
    """The aggregate changed since it was read (or the causing event was applied already)."""


PENDING_COLLECTION = "_outbox_pending"

SNAPSHOT_LIMIT = 16
"""An outbox of at most this many entries goes with its announcement (an outbox that grew
longer, because the broker was away, is read from the aggregate)."""

REMEMBERED = 10_000
"""How many ids of acknowledged entries a relay remembers (``OutboxRelay._published``)."""


def default_writes(database: Any) -> Writes:
    """The writes of a store built without ``Platform`` (tests, tools): the strategy of
    the server, a holder of its own (correct next to any other holder)."""
    from pmm_runtime.lease import instance_id

    return Writes(database, holder=instance_id())


class PendingOutbox:
    """The small collection that tells the relay (or a projector, or a sweep) which
    aggregates have work waiting.

    An announcement is insert-only: every write that leaves work inserts a new document
    (``{_id: "<collection>/<aggregate id>/<token>", c, a}``, one round trip, no lock: its
    unique ``_id`` is new), and the reader removes exactly the announcements it read once
    their aggregates' work is done, all of one pass in one delete. Nobody ever updates an
    announcement, so neither step needs the serialized write of ``Writes``; a write after
    the reader's read leaves a new announcement, which the next pass finds. An aggregate
    announced several times in one page is handled once.
    """

    def __init__(self, collection: AsyncCollection[Document], writes: Writes | None = None) -> None:
        self.collection = collection
        self.writes = writes or default_writes(collection.database)

    async def announce(
        self,
        collection: str,
        aggregate_id: Any,
        *,
        outbox: Sequence[Mapping[str, Any]] | None = None,
        version: int | None = None,
    ) -> None:
        """Mark ``aggregate_id`` of ``collection`` as having pending work (one insert).

        ``outbox`` with ``version``: the aggregate's whole outbox as the write that
        announces it left it (``AggregateStore``), so that the relay need not read the
        aggregate (``OutboxRelay``)."""
        token = uuid.uuid4().hex
        announcement: Document = {
            "_id": f"{collection}/{aggregate_id}/{token}",
            "c": collection,
            "a": aggregate_id,
        }
        if outbox is not None and version is not None:
            announcement["o"] = [dict(entry) for entry in outbox]
            announcement["v"] = version
        await self.writes.insert_one(self.collection, announcement)

    async def waiting(self, limit: int) -> list[Document]:
        return await self.collection.find({}).limit(limit).to_list(None)

    async def done(self, marker: Mapping[str, Any]) -> None:
        await self.done_all([marker])

    async def done_all(self, markers: Sequence[Mapping[str, Any]]) -> None:
        """Remove exactly these announcements (one round trip)."""
        ids = list(dict.fromkeys(m["_id"] for m in markers))
        if ids:
            await self.writes.delete_immutable(self.collection, ids)

    async def count(self) -> int:
        return await self.collection.count_documents({})


def _snapshot(markers: Sequence[Document]) -> list[Document] | None:
    """The outbox to publish for one aggregate's announcements of a page, without reading
    the aggregate: the outbox the newest of their writes left (an outbox holds every entry
    not yet published, in order, so the newest has what the older ones had but what was
    published meanwhile). None when one of them carries none (a sweep's, or a long
    outbox): then the aggregate is read.

    An entry of an older write that was published and removed after the newest announced
    write is in that snapshot again: the relay that published it skips it (it remembers
    what it saw acknowledged lately); another instance's relay publishes it again (at
    least once, as after a crash between publish and removal). No entry is ever published
    for the first time before an entry that preceded it."""
    if not markers or any("o" not in m or m.get("v") is None for m in markers):
        return None
    newest = max(markers, key=lambda m: int(m["v"]))
    return list(newest["o"])


def by_aggregate(markers: Sequence[Document]) -> dict[tuple[str, Any], list[Document]]:
    """A page of announcements grouped by (collection, aggregate id), in page order."""
    grouped: dict[tuple[str, Any], list[Document]] = {}
    for marker in markers:
        grouped.setdefault((str(marker.get("c", "")), marker["a"]), []).append(marker)
    return grouped


class AggregateStore:
    """Writes aggregate state and its outbox events in one atomic single-document update."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        pending: PendingOutbox | None = None,
        writes: Writes | None = None,
    ) -> None:
        self.collection = collection
        self.pending = pending
        self.writes = writes or (pending.writes if pending else default_writes(collection.database))

    async def _announce(self, aggregate_id: Any, written: Mapping[str, Any]) -> None:
        """Announce the aggregate ``written`` (as the write left it); a short outbox goes
        with the announcement (``SNAPSHOT_LIMIT``)."""
        if self.pending is None:
            return
        outbox = written.get(OUTBOX) or []
        if len(outbox) <= SNAPSHOT_LIMIT:
            await self.pending.announce(
                self.collection.name, aggregate_id, outbox=outbox, version=written.get(VERSION)
            )
        else:
            await self.pending.announce(self.collection.name, aggregate_id)

    async def get(self, aggregate_id: str) -> Document | None:
        return await self.collection.find_one({"_id": aggregate_id})

    def holding(self, aggregate_id: str) -> contextlib.AbstractAsyncContextManager[Held]:
        """Read the aggregate to decide its ``update`` (``Writes.holding``: on FerretDB under
        its lock, so the update needs no second read)."""
        return self.writes.holding(self.collection, aggregate_id)

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
            await self.writes.insert_one(self.collection, document)
        except DuplicateKeyError:
            return False
        if events:
            await self._announce(aggregate_id, document)
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
        held: Held | None = None,
    ) -> Document | None:
        """Change state and queue events atomically; the new document, or None on conflict.

        ``expected_version`` guards against lost updates; ``caused_by`` (the id of the event
        being applied) makes a redelivered event change nothing. ``held``: the aggregate
        was read by ``holding`` (the write goes through it).
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
        if held is not None:
            result = await held.find_one_and_update(condition, update)
        else:
            result = await self.writes.find_one_and_update(
                self.collection, condition, update, return_document=ReturnDocument.AFTER
            )
        if result is not None and events:
            await self._announce(aggregate_id, result)
        return result

    async def record_read(self, aggregate_id: str, audit: Mapping[str, Any]) -> None:
        """Audit a read of the aggregate (it does not change its version)."""
        await self.writes.update_one(
            self.collection, {"_id": aggregate_id}, {"$push": {AUDIT: dict(audit)}}
        )


Send = Callable[[str, bytes | None, bytes | None, dict[str, str]], Awaitable[Awaitable[object]]]
"""(topic, key, value or None for a tombstone, headers): awaiting the call hands the record
to the producer; awaiting what it returns waits for the broker's acknowledgement."""


class OutboxRelay:
    """Publishes pending outbox events of the given collections, in order, at least once.

    Work is found through the pending collection (``_id`` lookups only), a page of
    announcements at a time; the page's aggregates are published concurrently, and each
    aggregate's entries are handed to the producer without waiting for each one's
    acknowledgement (the idempotent producer keeps their order per partition, so per key).
    An entry counts as published only when it and every entry before it were acknowledged:
    after a failure the rest stays in the outbox and is published again (at least once,
    never out of order but for a repeat). A tombstone goes through its own producer, so it
    waits for the entries before it, and the entries after it wait for it.
    """

    def __init__(
        self,
        send: Send,
        collections: Sequence[AsyncCollection[Document]],
        *,
        pending: PendingOutbox | None = None,
        metrics: Metrics | None = None,
        poll_interval_s: float = 1.0,
        sweep_interval_s: float = 600.0,
        batch_size: int = 100,
        writes: Writes | None = None,
    ) -> None:
        self._send = send
        self._writes = writes or (pending.writes if pending else None)
        self._collections: dict[str, AsyncCollection[Document]] = {}
        for collection in collections:
            self.add_collection(collection)
        self._pending = pending
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sweeps = SweepSchedule(self._writes, sweep_interval_s)
        self._stale: set[tuple[str, Any]] = set()
        """Aggregates whose last publish failed part-way: their announced outboxes are
        older than what is left, so they are read again."""
        self._published = Recent(REMEMBERED)
        """The ids of the entries this relay saw acknowledged lately (at most
        ``REMEMBERED``): an announced outbox that still holds one (its write came before
        the entry was removed) does not publish it again."""

    def add_collection(self, collection: AsyncCollection[Document]) -> None:
        self._collections[collection.name] = collection

    def notify(self) -> None:
        """Wake the relay now (after a write), instead of at the next poll."""
        self._wake.set()

    async def _publish_document(
        self,
        collection: AsyncCollection[Document],
        aggregate_id: Any,
        snapshot: Sequence[Document] | None = None,
    ) -> int:
        """Publish one aggregate's outbox in order; remove exactly what was published.

        ``snapshot``: the outbox as the newest announced write left it (see
        ``_snapshot``), instead of reading the aggregate."""
        published_before: list[Document] = []  # acknowledged here before; to be removed
        if snapshot is None:
            document = await collection.find_one({"_id": aggregate_id}, {OUTBOX: 1})
            outbox: list[Document] = (document or {}).get(OUTBOX) or []
            published_before = [e for e in outbox if e["id"] in self._published]
            entries = [e for e in outbox if e["id"] not in self._published]
        else:  # an older write's entries may be in it: published and removed since
            entries = [e for e in snapshot if e["id"] not in self._published]
        in_flight: list[tuple[Document, Awaitable[object]]] = []
        done: list[Document] = []
        failures: list[BaseException] = []

        async def settle() -> None:
            """Wait for the acknowledgements in flight; ``done`` grows by the prefix that
            was acknowledged (after the first failure nothing more counts)."""
            outcomes = await asyncio.gather(*(ack for _, ack in in_flight), return_exceptions=True)
            for (entry, _), outcome in zip(in_flight, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failures.append(outcome)
                elif not failures:
                    done.append(entry)
                    self._published.add(entry["id"])
                    if self._metrics:
                        self._metrics.published.labels(topic=entry["topic"]).inc()
            in_flight.clear()

        handing_over: BaseException | None = None
        try:
            for entry in entries:
                tombstone = entry["value"] is None
                if in_flight and (tombstone or in_flight[-1][0]["value"] is None):
                    await settle()  # another producer: the order holds only by waiting
                    if failures:
                        break
                value = (
                    None
                    if tombstone
                    else json.dumps(entry["value"], separators=(",", ":")).encode()
                )
                key = entry["key"].encode() if entry.get("key") is not None else None
                with use_trace_context(entry.get("trace")):
                    ack = await self._send(
                        entry["topic"], key, value, {"content-type": CONTENT_TYPE}
                    )
                in_flight.append((entry, ack))
        except Exception as exc:
            handing_over = exc
        finally:
            await settle()
            if done or published_before:
                # Remove exactly the entries published, as read (FerretDB 1.x matches whole
                # entries in $pullAll, not conditions in $pull).
                if self._writes is None:
                    self._writes = default_writes(collection.database)
                await self._writes.update_one(
                    collection,
                    {"_id": aggregate_id},
                    {"$pullAll": {OUTBOX: [*published_before, *done]}},
                )
        if failures:
            raise failures[0]
        if handing_over is not None:
            raise handing_over
        return len(done)

    async def sweep(self) -> int:
        """Announce every aggregate with pending events (a full scan: at start-up and
        rarely, to recover a crash between an aggregate write and its announcement).
        Without a pending collection, publishes them directly."""
        found = 0
        async with self._sweeps.sweeping():
            for name, collection in self._collections.items():
                cursor = collection.find({f"{OUTBOX}.0": {"$exists": True}}, {"_id": 1})
                async for document in cursor:
                    found += 1
                    if self._pending is not None:
                        await self._pending.announce(name, document["_id"])
                    else:
                        await self._publish_document(collection, document["_id"])
        return found

    async def run_once(self) -> int:
        """Publish what is pending now; returns the number of events published."""
        if self._pending is None:
            return await self.sweep()
        if self._sweeps.due():
            await self.sweep()
        pages = by_aggregate(await self._pending.waiting(self._batch_size))
        handled: list[Document] = []

        async def one(name: str, aggregate_id: Any, markers: list[Document]) -> int:
            collection = self._collections.get(name)
            if collection is None:
                return 0  # not a collection of this process
            key = (name, aggregate_id)
            snapshot = None if key in self._stale else _snapshot(markers)
            try:
                published = await self._publish_document(collection, aggregate_id, snapshot)
            except BaseException:
                self._stale.add(key)
                raise
            self._stale.discard(key)
            handled.extend(markers)
            return published

        results = await asyncio.gather(
            *(one(name, aggregate_id, markers) for (name, aggregate_id), markers in pages.items()),
            return_exceptions=True,
        )
        await self._pending.done_all(handled)  # one delete for the page
        failures = [r for r in results if isinstance(r, BaseException)]
        published = sum(r for r in results if isinstance(r, int))
        if self._metrics:  # aggregates whose events could not be published in this pass
            self._metrics.outbox_backlog.set(len(failures))
        if failures and not published:
            raise failures[0]
        for failure in failures:
            log.warning("outbox relay: an aggregate failed; retrying", error=repr(failure))
        return published

    async def run(self) -> None:
        """Loop until ``stop()``; on stop, one last flush so nothing written waits."""
        while not self._stopping.is_set():
            self._wake.clear()  # before the pass: a write during it wakes the next one
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
