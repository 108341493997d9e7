"""Mongo persistence of escalations: one document each; state, outbox events and the audit
entry of a change are written in one atomic single-document update.

Dates are ISO strings. Besides the escalation itself a document carries a few fields for
queries: ``next_deadline`` (earliest deadline of an open agreement, for the reminder
scan), ``closed_year`` and ``result`` (for the figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING

from pmm_let.domain.model import Escalation
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AUDIT, AggregateStore, Pending


def escalation_fields(escalation: Escalation) -> Document:
    data: Document = escalation.model_dump(mode="json", exclude={"id", "version"})
    next_deadline = escalation.next_deadline
    closed_on = escalation.closed_on
    data["next_deadline"] = next_deadline.isoformat() if next_deadline else None
    data["closed_year"] = closed_on.year if closed_on else None
    data["result"] = escalation.result
    return data


def escalation_from(doc: Document) -> Escalation:
    data = {k: v for k, v in doc.items() if not k.startswith("_")}
    return Escalation.model_validate({**data, "id": doc["_id"], "version": doc["_version"]})


class EscalationRepository:
    def __init__(self, store: AggregateStore) -> None:
        self.store = store

    @property
    def collection(self) -> Any:
        return self.store.collection

    async def create_indexes(self) -> None:
        c = self.collection
        await c.create_index([("status", ASCENDING), ("opened_at", DESCENDING)])
        await c.create_index([("organisations_involved", ASCENDING)])
        await c.create_index([("next_deadline", ASCENDING)])
        await c.create_index([("closed_year", ASCENDING), ("result", ASCENDING)])

    async def get(self, escalation_id: str) -> Escalation | None:
        doc = await self.store.get(escalation_id)
        return escalation_from(doc) if doc else None

    async def audit(self, escalation_id: str) -> list[Document] | None:
        doc = await self.collection.find_one({"_id": escalation_id}, {AUDIT: 1})
        return list(doc.get(AUDIT) or []) if doc else None

    async def add(
        self, escalation: Escalation, events: Sequence[Pending], audit: Document, caused_by: str
    ) -> bool:
        """False when it exists already (a replayed request)."""
        return await self.store.create(
            escalation.id,
            escalation_fields(escalation),
            events,
            caused_by=caused_by,
            audit=audit,
        )

    async def save(
        self,
        escalation: Escalation,
        expected_version: int,
        events: Sequence[Pending],
        audit: Document,
    ) -> bool:
        saved = await self.store.update(
            escalation.id,
            expected_version=expected_version,
            set_fields=escalation_fields(escalation),
            events=events,
            audit=audit,
        )
        return saved is not None

    async def find(
        self, query: Document, *, skip: int = 0, limit: int = 100
    ) -> tuple[int, list[Escalation]]:
        total = await self.collection.count_documents(query)
        docs = (
            await self.collection.find(query, {"_outbox": 0, "_audit": 0, "_applied": 0})
            .sort([("opened_at", DESCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list(None)
        )
        return total, [escalation_from(d) for d in docs]

    async def with_deadline_before(self, day_iso: str, limit: int) -> list[Escalation]:
        docs = (
            await self.collection.find({"next_deadline": {"$lt": day_iso}})
            .limit(limit)
            .to_list(None)
        )
        return [escalation_from(d) for d in docs]

    async def overdue_agreements(self, *, limit: int) -> list[Document]:
        """Every overdue agreement, earliest deadline first.

        Not with $unwind/$project: FerretDB 1.24 keeps only ``_id`` and the unwound field
        after $unwind, and takes "$field" in $project as a literal string.
        """
        docs = (
            await self.collection.find(
                {"agreements.status": "overdue"}, {"case_number": 1, "agreements": 1}
            )
            .limit(limit)
            .to_list(None)
        )
        rows = [
            {
                "escalation_id": doc["_id"],
                "case_number": doc["case_number"],
                "agreement_id": a["id"],
                "organisation": a["organisation"],
                "deadline": a["deadline"],
            }
            for doc in docs
            for a in doc.get("agreements", [])
            if a.get("status") == "overdue"
        ]
        return sorted(rows, key=lambda r: (r["deadline"], r["escalation_id"]))[:limit]

    async def aggregate(self, pipeline: list[Document]) -> list[Document]:
        cursor = await self.collection.aggregate(pipeline)
        result: list[Document] = await cursor.to_list(None)
        return result
