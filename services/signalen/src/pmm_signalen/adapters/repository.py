"""Mongo persistence: signals (one aggregate document each, with outbox and audit trail)
and the cases this service keeps from the Loket's events, for the yearly report.

Dates are ISO strings. Besides the signal itself a document carries fields for queries:
``organisations`` (current assignees), ``next_due`` (earliest answer term of an open
assignment, for the reminder scan) and ``monitor_keys`` (for the monitor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from pmm_runtime.mongo import Document
from pmm_runtime.outbox import APPLIED, AUDIT, OUTBOX, AggregateStore, Pending
from pmm_signalen.domain.model import Signal

HIDDEN = {OUTBOX: 0, AUDIT: 0, APPLIED: 0, "_figures": 0}


def monitor_keys(signal: Signal) -> list[str]:
    """One key per current assignee: bottleneck type|subtype|regulation|organisation#case.

    The case id rides along so the monitor counts distinct cases: FerretDB 1.x keeps only
    the unwound field after ``$unwind``, so the key must carry everything grouped on.
    """
    reg = (signal.regulation_reference or "").strip().lower()
    subtype = signal.bottleneck.subtype.value if signal.bottleneck.subtype else ""
    return sorted(
        {
            f"{signal.bottleneck.type.value}|{subtype}|{reg}|{org}#{signal.case_id}"
            for org in signal.organisations
        }
    )


def signal_fields(signal: Signal) -> Document:
    data: Document = signal.model_dump(mode="json", exclude={"id", "version"})
    next_due = signal.next_due
    data["next_due"] = next_due.isoformat() if next_due else None
    data["organisations"] = list(dict.fromkeys(signal.organisations))
    data["monitor_keys"] = monitor_keys(signal) if signal.merged_into is None else []
    return data


def signal_from(doc: Document) -> Signal:
    data = {k: v for k, v in doc.items() if not k.startswith("_")}
    return Signal.model_validate({**data, "id": doc["_id"], "version": doc["_version"]})


class SignalRepository:
    def __init__(self, store: AggregateStore) -> None:
        self.store = store

    @property
    def collection(self) -> AsyncCollection[Document]:
        return self.store.collection

    async def create_indexes(self) -> None:
        c = self.collection
        await c.create_index([("organisations", ASCENDING), ("created_at", DESCENDING)])
        await c.create_index([("next_due", ASCENDING)])
        await c.create_index([("year", ASCENDING)])
        await c.create_index([("created_at", ASCENDING)])
        await c.create_index([("case_id", ASCENDING)])

    async def get(self, signal_id: str) -> Signal | None:
        doc = await self.collection.find_one({"_id": signal_id}, HIDDEN)
        return signal_from(doc) if doc else None

    async def is_applied(self, signal_id: str, event_id: str) -> bool:
        doc = await self.collection.find_one({"_id": signal_id, APPLIED: event_id}, {"_id": 1})
        return doc is not None

    async def audit(self, signal_id: str) -> list[Document] | None:
        doc = await self.collection.find_one({"_id": signal_id}, {AUDIT: 1})
        return list(doc.get(AUDIT) or []) if doc else None

    async def add(
        self,
        signal: Signal,
        events: Sequence[Pending],
        audit: Document,
        caused_by: str,
        figures: Document | None = None,
    ) -> bool:
        """False when it exists already (a replayed evaluation)."""
        state = {**signal_fields(signal), "_figures": [figures] if figures else []}
        return await self.store.create(signal.id, state, events, caused_by=caused_by, audit=audit)

    async def save(
        self,
        signal: Signal,
        expected_version: int,
        events: Sequence[Pending],
        audit: Document,
        caused_by: str | None = None,
        figures: Document | None = None,
    ) -> bool:
        saved = await self.store.update(
            signal.id,
            expected_version=expected_version,
            set_fields=signal_fields(signal),
            events=events,
            audit=audit,
            caused_by=caused_by,
            push={"_figures": figures} if figures else None,
        )
        return saved is not None

    async def find(
        self, query: Document, *, skip: int = 0, limit: int = 100
    ) -> tuple[int, list[Signal]]:
        total = await self.collection.count_documents(query)
        docs = (
            await self.collection.find(query, HIDDEN)
            .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list(None)
        )
        return total, [signal_from(d) for d in docs]

    async def due_before(self, day_iso: str, limit: int) -> list[Signal]:
        docs = (
            await self.collection.find({"next_due": {"$lt": day_iso}}, HIDDEN)
            .limit(limit)
            .to_list(None)
        )
        return [signal_from(d) for d in docs]

    async def aggregate(self, pipeline: list[Document]) -> list[Document]:
        cursor = await self.collection.aggregate(pipeline)
        result: list[Document] = await cursor.to_list(None)
        return result

    async def raw(self, query: Document, projection: Document, limit: int = 0) -> list[Document]:
        result: list[Document] = (
            await self.collection.find(query, projection).limit(limit).to_list(None)
        )
        return result


class CaseRepository:
    """What this service keeps of each case: enough for the yearly report, no person."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def create_indexes(self) -> None:
        await self.collection.create_index([("closed_year", ASCENDING)])

    async def upsert(self, case_id: str, fields: Document, figures: Document | None = None) -> None:
        """Idempotent: a redelivered event sets the same values again (and queues the same
        figures delta, which the projector applies once)."""
        update: Document = {"$set": fields}
        if figures:
            update["$push"] = {"_figures": figures}
        await self.collection.update_one({"_id": case_id}, update, upsert=True)

    async def get(self, case_id: str) -> Document | None:
        return await self.collection.find_one({"_id": case_id})

    async def aggregate(self, pipeline: list[Document]) -> list[Document]:
        cursor = await self.collection.aggregate(pipeline)
        result: list[Document] = await cursor.to_list(None)
        return result

    async def insert_many(self, docs: list[Document]) -> None:
        await self.collection.insert_many(docs, ordered=False)


def rows(items: Sequence[Document]) -> dict[Any, int]:
    return {row["_id"]: int(row["n"]) for row in items}
