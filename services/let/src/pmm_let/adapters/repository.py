"""Mongo persistence of escalations: one document each, written only by the runtime's change
loop (``Platform.changes``), which puts state, outbox events and the audit entry in one
atomic single-document update.

Dates are ISO strings. Besides the escalation itself a document carries a few fields for
queries: ``next_deadline`` (earliest deadline of an open agreement, for the reminder
scan), ``closed_year`` and ``result`` (for the figures).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

from pymongo import ASCENDING, DESCENDING

from pmm_contracts.topics import LET_ESCALATIONS
from pmm_let.domain.model import Escalation, Status
from pmm_runtime.changes import Aggregates
from pmm_runtime.due import DueIndex
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import APPLIED, AUDIT, OUTBOX, AggregateStore

HIDDEN = {OUTBOX: 0, AUDIT: 0, APPLIED: 0}


class EscalationRepository(Aggregates[Escalation]):
    name = "escalation"

    def __init__(self, store: AggregateStore) -> None:
        super().__init__(store, Escalation, topic=LET_ESCALATIONS)
        # {_id: escalation id, on: earliest open agreement deadline}: the deadline scan's
        # question without a scan of the escalations (pmm_runtime.due)
        self.deadlines = DueIndex(self.collection.database["escalation_deadlines"], store.writes)

    async def written(self, aggregate: Escalation) -> None:
        await self.deadlines.set(aggregate.id, aggregate.next_deadline, new=aggregate.version == 1)

    async def rebuild_deadline_index(self) -> None:
        """At start-up: the index entry of every escalation with an open agreement
        (recovers a crash between an escalation write and its entry)."""

        async def entries() -> AsyncIterator[tuple[str, str | None]]:
            cursor = self.collection.find(
                {"next_deadline": {"$ne": None}}, {"_id": 1, "next_deadline": 1}
            )
            async for doc in cursor:
                yield str(doc["_id"]), doc.get("next_deadline")

        await self.deadlines.rebuild(entries())

    def dump(self, aggregate: Escalation) -> Document:
        fields = super().dump(aggregate)  # with next_deadline, for the reminder scan
        closed_on = aggregate.closed_on
        fields["closed_year"] = closed_on.year if closed_on else None
        fields["result"] = aggregate.result
        return fields

    async def create_indexes(self) -> None:
        c = self.collection
        await c.create_index([("status", ASCENDING), ("opened_at", DESCENDING)])
        await c.create_index([("organisations_involved", ASCENDING)])
        await c.create_index([("case_id", ASCENDING)])
        await c.create_index([("next_deadline", ASCENDING)])
        await c.create_index([("closed_year", ASCENDING), ("result", ASCENDING)])
        await self.deadlines.create_indexes()

    async def audit(self, escalation_id: str) -> list[Document] | None:
        doc = await self.collection.find_one({"_id": escalation_id}, {AUDIT: 1})
        return list(doc.get(AUDIT) or []) if doc else None

    async def search(
        self,
        *,
        status: Status | None = None,
        case_id: str | None = None,
        organisation: str | None = None,
        skip: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[Escalation]]:
        """Escalations newest first; ``organisation`` keeps those it is involved in."""
        query: Document = {}
        if status is not None:
            query["status"] = status.value
        if case_id is not None:
            query["case_id"] = case_id
        if organisation is not None:
            query["organisations_involved"] = organisation
        total = await self.collection.count_documents(query)
        docs = (
            await self.collection.find(query, HIDDEN)
            .sort([("opened_at", DESCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list(None)
        )
        return total, [self.load(d) for d in docs]

    async def with_deadline_before(self, day_iso: str, limit: int) -> list[str]:
        """Ids of escalations with an open agreement whose deadline lies before the day
        (from the small deadline index, never a scan of the escalations)."""
        return await self.deadlines.before(day_iso, limit)

    async def count_by_status(self) -> dict[str, int]:
        return await self._group("$status")

    async def count_agreements_by_status(self) -> dict[str, int]:
        return await self._group("$agreements.status", unwind="$agreements")

    async def results_per_year(self) -> Counter[tuple[int, str]]:
        """How many escalations closed per (year, result)."""
        cursor = await self.collection.aggregate(
            [
                {"$match": {"closed_year": {"$ne": None}}},
                {"$group": {"_id": {"y": "$closed_year", "r": "$result"}, "n": {"$sum": 1}}},
            ]
        )
        rows = await cursor.to_list(None)
        return Counter({(int(r["_id"]["y"]), str(r["_id"]["r"])): int(r["n"]) for r in rows})

    async def _group(self, key: str, *, unwind: str | None = None) -> dict[str, int]:
        pipeline: list[Document] = [{"$unwind": unwind}] if unwind else []
        pipeline.append({"$group": {"_id": key, "n": {"$sum": 1}}})
        cursor = await self.collection.aggregate(pipeline)
        return {str(row["_id"]): int(row["n"]) for row in await cursor.to_list(None)}

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
