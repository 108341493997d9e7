"""Mongo persistence of cases: one document per case (state, outbox, audit in one write).

The queries the Loket's use cases ask live here and nowhere else. Reads of a case file are
audited in a read log of their own (``case_read_log``: one document per case, keyed by the
case id), so a read never writes the case document or changes its version, and the trail
of one case is read by ``_id`` whatever the number of cases and reads (decision 0015).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from pmm_contracts.topics import LOKET_CASES
from pmm_loket.domain.model import HANDLING_STATUSES, OPEN_STATUSES, Case, Punctuality, Status
from pmm_runtime.changes import Aggregates
from pmm_runtime.due import DueIndex
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AUDIT, AggregateStore

HIDDEN = {"_audit": 0, "_outbox": 0, "_applied": 0}
ENDED = (Status.CLOSED, Status.EVALUATED, Status.DECLINED)


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


@dataclass(frozen=True)
class CaseFilter:
    """What a list of cases asks for; ``organisation`` limits it to one submitter."""

    organisation: str | None = None
    status: Status | None = None
    open_only: bool = False
    case_director_id: str | None = None
    timeliness: Punctuality | None = None
    deadline: str = "case"
    number: str | None = None
    household_reference: str | None = None
    text: str | None = None


class CaseRepository(Aggregates[Case]):
    name = "case"

    def __init__(
        self,
        cases: AggregateStore,
        counters: AsyncCollection[Document],
        *,
        warn_days: int = 2,
    ) -> None:
        super().__init__(cases, Case, topic=LOKET_CASES)
        self.counters = counters
        database = cases.collection.database
        # {_id: case id, reads: [{at, actor, action}]}: the case's reads, by bare _id
        self.reads = database["case_read_log"]
        # before decision 0015: one document per read, {case_id, at, actor, action}
        self.legacy_reads = database["case_reads"]
        # {_id: case id, on: first warning day} of the open cases with a running deadline
        self.deadline_index = DueIndex(database["case_deadlines"], cases.writes)
        self.warn_days = warn_days

    # The due-date index of the deadline scan ----------------------------------------------

    async def written(self, aggregate: Case) -> None:
        """The case's entry in the deadline index (read, and written only when it moved; a
        new case's by one insert)."""
        on = aggregate.next_warning_on(self.warn_days)
        await self.deadline_index.set(aggregate.id, on, new=aggregate.version == 1)

    async def rebuild_deadline_index(self) -> None:
        """At start-up: the index entry of every open case (recovers a crash between a case
        write and its index write). The only scan of the cases; once per start."""
        for case in await self.open_cases():
            await self.written(case)

    async def due_for_warning(self, today: date) -> list[str]:
        """Ids of the cases with a warning due by ``today``: read from the small index
        (open cases with a running deadline), never a scan of all cases."""
        return await self.deadline_index.before((today + timedelta(days=1)).isoformat(), 0)

    async def create_indexes(self) -> None:
        coll = self.collection
        await coll.create_index("number", unique=True)
        await coll.create_index([("status", ASCENDING), ("case_director_id", ASCENDING)])
        await coll.create_index([("submitting_organisation", ASCENDING)])
        await self.deadline_index.create_indexes()

    async def next_number(self, year: int) -> int:
        """The next sequence number of ``year``: atomic, never reused."""
        counter = await self.store.writes.find_one_and_update(
            self.counters,
            {"_id": year},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if counter is None:  # pragma: no cover - upsert always returns the document
            raise RuntimeError("case number counter missing")
        return int(counter["seq"])

    # Reading ---------------------------------------------------------------------------------

    def _query(self, wanted: CaseFilter, today: date) -> Document:
        query: Document = {}
        if wanted.organisation is not None:
            query["submitting_organisation"] = wanted.organisation
        if wanted.status:
            query["status"] = wanted.status.value
        elif wanted.open_only:
            query["status"] = {"$in": sorted(s.value for s in OPEN_STATUSES)}
        if wanted.case_director_id:
            query["case_director_id"] = wanted.case_director_id
        if wanted.number:
            query["number"] = wanted.number
        if wanted.household_reference:
            query["household.reference"] = wanted.household_reference
        if wanted.timeliness and wanted.deadline in ("intake", "case"):
            query.update(timeliness_query(wanted.deadline, wanted.timeliness, today))
        elif wanted.timeliness:
            query["consultations"] = {"$ne": []}
        return query

    async def search(
        self, wanted: CaseFilter, today: date, *, skip: int, limit: int
    ) -> tuple[int, list[Case]]:
        """One page of the cases that match, by case number, and how many match in all."""
        query = self._query(wanted, today)
        needs_python = bool(wanted.text) or (
            wanted.timeliness is not None and wanted.deadline == "consultation"
        )
        if not needs_python:
            total = await self.collection.count_documents(query)
            cursor = self.collection.find(query, HIDDEN).sort("number", ASCENDING)
            docs = await cursor.skip(skip).limit(limit).to_list(None)
            return total, [self.load(d) for d in docs]
        hits = [case for case in await self._all(query) if _matches(case, wanted, today)]
        return len(hits), hits[skip : skip + limit]

    async def _all(self, query: Document) -> list[Case]:
        cursor = self.collection.find(query, HIDDEN).sort("number", ASCENDING)
        return [self.load(d) async for d in cursor]

    async def with_open_consultations_for(self, organisation: str) -> list[Case]:
        """Cases being handled with a consultation addressed to ``organisation``."""
        return await self._all(
            {
                "consultations.organisation": organisation,
                "status": {"$in": sorted(s.value for s in HANDLING_STATUSES)},
            }
        )

    async def open_cases(self) -> list[Case]:
        return await self._all({"status": {"$in": sorted(s.value for s in OPEN_STATUSES)}})

    async def ended_not_anonymised(self) -> list[Case]:
        return await self._all({"status": {"$in": [s.value for s in ENDED]}, "anonymised_at": None})

    # Audit -------------------------------------------------------------------------------------

    async def record_read(self, case_id: str, actor: str, at: datetime) -> None:
        """A read of the case file (the law asks who read it): appended to the case's read
        log, never to the case itself. One update by bare ``_id`` (serialized per case on
        FerretDB, so two processes lose no read)."""
        read = {"at": at, "actor": actor, "action": "case.read"}
        await self.store.writes.update_one(
            self.reads, {"_id": case_id}, {"$push": {"reads": read}}, upsert=True
        )

    async def audit_trail(self, case_id: str) -> list[Document]:
        """Changes and reads of the case, in time order: two reads by bare ``_id``."""
        doc = await self.collection.find_one({"_id": case_id}, {AUDIT: 1})
        changes = list(doc.get(AUDIT, [])) if doc else []
        log = await self.reads.find_one({"_id": case_id})
        reads = list((log or {}).get("reads", []))
        return sorted(changes + reads, key=lambda e: e["at"])

    async def migrate_read_log(self, batch: int = 500) -> int:
        """At start-up: move the reads of the old one-document-per-read collection into the
        per-case read log, then drop it; the number of reads moved. Once it is gone this
        finds nothing (one read). A crash midway repeats the move from the start: a case's
        log takes each old read once (``$addToSet`` of the same time, actor and action)."""
        moved = 0
        by_case: dict[str, list[Document]] = {}
        async for r in self.legacy_reads.find({}):
            read = {"at": r["at"], "actor": r["actor"], "action": r["action"]}
            by_case.setdefault(str(r["case_id"]), []).append(read)
            moved += 1
            if moved % batch == 0:
                await self._add_reads(by_case)
        await self._add_reads(by_case)
        if moved:
            await self.legacy_reads.drop()
        return moved

    async def _add_reads(self, by_case: dict[str, list[Document]]) -> None:
        for case_id, reads in by_case.items():
            await self.store.writes.update_one(
                self.reads,
                {"_id": case_id},
                {"$addToSet": {"reads": {"$each": reads}}},
                upsert=True,
            )
        by_case.clear()

    async def scrub_audit(self, case_id: str) -> None:
        """Anonymisation: drop the old and new values from the trail, keeping who did what,
        when and why."""
        doc = await self.collection.find_one({"_id": case_id}, {AUDIT: 1})
        if doc is None:
            return
        trail = [
            {k: v for k, v in entry.items() if k not in ("old", "new")}
            for entry in doc.get(AUDIT, [])
        ]
        await self.store.writes.update_one(
            self.collection,
            {"_id": case_id, AUDIT: {"$size": len(trail)}},
            {"$set": {AUDIT: trail}},
        )


def _matches(case: Case, wanted: CaseFilter, today: date) -> bool:
    if (
        wanted.timeliness is not None
        and wanted.deadline == "consultation"
        and not any(c.punctuality(today) == wanted.timeliness for c in case.consultations)
    ):
        return False
    if wanted.text:
        needle = wanted.text.casefold()
        haystack: Iterable[Any] = (case.number, case.question, case.tried_locally, case.legal_basis)
        if not any(needle in str(part).casefold() for part in haystack):
            return False
    return True
