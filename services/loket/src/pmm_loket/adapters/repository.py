"""Mongo persistence of cases: one document per case (state, outbox, audit in one write)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import TypeAdapter
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from pmm_loket.domain.model import Case, Punctuality
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AggregateStore, Pending

_CASE = TypeAdapter(Case)


def case_fields(case: Case) -> Document:
    fields: Document = _CASE.dump_python(case, mode="json")
    fields.pop("id")
    fields.pop("version")
    return fields


def case_from(doc: Document) -> Case:
    data = {k: v for k, v in doc.items() if not k.startswith("_")}
    return _CASE.validate_python({**data, "id": doc["_id"], "version": doc["_version"]})


def timeliness_query(deadline: str, wanted: Punctuality, today: date) -> Document:
    """Cases whose ``deadline`` (intake or case) was met on time, late, or late beyond three
    times the term: the stored result once done, else where it stands today. Only constant
    comparisons, so the store evaluates it (no ``$expr``)."""
    due, limit, result = f"{deadline}_due", f"{deadline}_limit", f"{deadline}_result"
    t = today.isoformat()
    running: Document = {
        Punctuality.ON_TIME: {due: {"$gte": t}},
        Punctuality.LATE: {due: {"$lt": t}, limit: {"$gte": t}},
        Punctuality.VERY_LATE: {limit: {"$lt": t}},
    }[wanted]
    return {"$or": [{result: wanted.value}, {result: None, **running}]}


class CaseRepository:
    def __init__(self, cases: AggregateStore, counters: AsyncCollection[Document]) -> None:
        self.cases = cases
        self.counters = counters

    async def create_indexes(self) -> None:
        coll = self.cases.collection
        await coll.create_index("number", unique=True)
        await coll.create_index([("status", ASCENDING), ("case_director_id", ASCENDING)])
        await coll.create_index([("submitting_organisation", ASCENDING)])

    async def next_number(self, year: int) -> int:
        """The next sequence number of ``year``: atomic, never reused."""
        counter = await self.counters.find_one_and_update(
            {"_id": year},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if counter is None:  # pragma: no cover - upsert always returns the document
            raise RuntimeError("case number counter missing")
        return int(counter["seq"])

    async def get(self, case_id: str) -> Case | None:
        doc = await self.cases.get(case_id)
        return case_from(doc) if doc else None

    async def add(self, case: Case, events: Sequence[Pending], audit: Document) -> bool:
        return await self.cases.create(case.id, case_fields(case), events, audit=audit)

    async def save(
        self,
        case: Case,
        expected_version: int,
        events: Sequence[Pending],
        audit: Document,
        caused_by: str | None = None,
        scrub_audit: bool = False,
    ) -> bool:
        """State, events and audit entry in one write; False when the case changed meanwhile.

        ``scrub_audit`` (anonymisation) then drops the old and new values from the trail,
        keeping who did what, when and why.
        """
        saved = await self.cases.update(
            case.id,
            expected_version=expected_version,
            set_fields=case_fields(case),
            events=events,
            audit=audit,
            caused_by=caused_by,
        )
        if saved is None:
            return False
        if scrub_audit:
            trail = [
                {k: v for k, v in entry.items() if k not in ("old", "new")}
                for entry in saved.get("_audit", [])
            ]
            await self.cases.collection.update_one(
                {"_id": case.id, "_version": saved["_version"], "_audit": {"$size": len(trail)}},
                {"$set": {"_audit": trail}},
            )
        return True

    async def applied(self, case_id: str, event_id: str) -> bool:
        """Whether the event with this id has changed the case already."""
        found = await self.cases.collection.find_one({"_id": case_id, "_applied": event_id})
        return found is not None

    async def find(self, query: dict[str, Any], limit: int = 500, skip: int = 0) -> list[Case]:
        cursor = self.cases.collection.find(query, {"_audit": 0, "_outbox": 0, "_applied": 0})
        docs = await cursor.sort("number", ASCENDING).skip(skip).limit(limit).to_list(None)
        return [case_from(d) for d in docs]

    async def audit_trail(self, case_id: str) -> list[Document]:
        doc = await self.cases.collection.find_one({"_id": case_id}, {"_audit": 1})
        return list(doc.get("_audit", [])) if doc else []
