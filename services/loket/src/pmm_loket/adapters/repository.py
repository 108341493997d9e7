"""Mongo persistence of cases: one document per case (state, outbox, audit in one write)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from pmm_loket.domain.model import Case
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
            {"_id": f"case-{year}"},
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
    ) -> bool:
        saved = await self.cases.update(
            case.id,
            expected_version=expected_version,
            set_fields=case_fields(case),
            events=events,
            audit=audit,
            caused_by=caused_by,
        )
        return saved is not None

    async def find(self, query: dict[str, Any], limit: int = 500) -> list[Case]:
        docs = (
            await self.cases.collection.find(query)
            .sort("number", ASCENDING)
            .limit(limit)
            .to_list(None)
        )
        return [case_from(d) for d in docs]

    async def audit_trail(self, case_id: str) -> list[Document]:
        doc = await self.cases.collection.find_one({"_id": case_id}, {"_audit": 1})
        return list(doc.get("_audit", [])) if doc else []
