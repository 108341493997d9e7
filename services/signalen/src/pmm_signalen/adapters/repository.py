"""Mongo persistence: signals (aggregates written by the runtime's change loop, with outbox
and audit trail) and the cases this service keeps from the Loket's events.

Dates are ISO strings. Besides the signal itself a document carries fields for queries:
``organisations`` (current assignees), ``next_due`` (earliest answer term of an open
assignment, for the reminder scan) and ``monitor_keys`` (for the monitor). Every query of
the service lives here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from pmm_contracts.envelope import EventData
from pmm_contracts.events import signals as ev
from pmm_contracts.topics import SIGNALEN_SIGNALS, signals_assigned_topic
from pmm_runtime import migrations
from pmm_runtime.changes import Aggregates
from pmm_runtime.due import DueIndex
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import APPLIED, AUDIT, OUTBOX, AggregateStore, default_writes
from pmm_runtime.writes import Writes
from pmm_signalen.adapters.figures import FIGURES
from pmm_signalen.domain.model import Signal, SignalStatus

HIDDEN = {OUTBOX: 0, AUDIT: 0, APPLIED: 0, FIGURES: 0}
DIRECTOR_CASES = "director_cases"
"""Per regievoerder ``{_id: director id, cases: [case id, ...]}``: whose cases a director
sees, read by bare ``_id`` (a query on the cases' ``case_directors`` decodes every case on
FerretDB 1.24, decision 0008)."""
DIRECTOR_CASES_BUILT = "director_cases"
"""The marker (in ``MIGRATIONS``) of the rebuild of ``DIRECTOR_CASES`` from the cases."""


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


class SignalRepository(Aggregates[Signal]):
    name = "signal"

    def __init__(self, store: AggregateStore) -> None:
        super().__init__(store, Signal, topic=SIGNALEN_SIGNALS)
        # {_id: signal id, on: earliest answer term of an open assignment}: the reminder
        # scan's question without a scan of the signals (pmm_runtime.due)
        self.reminders = DueIndex(self.collection.database["signal_reminders"], store.writes)

    async def written(self, aggregate: Signal) -> None:
        await self.reminders.set(aggregate.id, aggregate.next_due, new=aggregate.version == 1)

    async def rebuild_reminder_index(self) -> None:
        """At start-up: the index entry of every signal with an open assignment (recovers
        a crash between a signal write and its entry)."""

        async def entries() -> AsyncIterator[tuple[str, str | None]]:
            cursor = self.collection.find({"next_due": {"$ne": None}}, {"_id": 1, "next_due": 1})
            async for doc in cursor:
                yield str(doc["_id"]), doc.get("next_due")

        await self.reminders.rebuild(entries())

    def topic(self, aggregate: Signal, event: EventData) -> str:
        """What an organisation must act on goes to its own topic; the life cycle to all."""
        if isinstance(event, ev.SignalAssigned | ev.FollowUpRequested):
            return signals_assigned_topic(event.organisation)
        return self.default_topic

    def dump(self, aggregate: Signal) -> Document:
        fields = super().dump(aggregate)
        next_due = aggregate.next_due
        fields["next_due"] = next_due.isoformat() if next_due else None
        fields["organisations"] = list(dict.fromkeys(aggregate.organisations))
        fields["monitor_keys"] = monitor_keys(aggregate) if aggregate.merged_into is None else []
        return fields

    async def create_indexes(self) -> None:
        c = self.collection
        await c.create_index([("organisations", ASCENDING), ("created_at", DESCENDING)])
        await c.create_index([("next_due", ASCENDING)])
        await c.create_index([("year", ASCENDING)])
        await self.reminders.create_indexes()
        await c.create_index([("created_at", ASCENDING)])
        await c.create_index([("case_id", ASCENDING)])

    async def get(self, aggregate_id: str) -> Signal | None:
        doc = await self.collection.find_one({"_id": aggregate_id}, HIDDEN)
        return self.load(doc) if doc else None

    async def audit(self, signal_id: str) -> list[Document] | None:
        doc = await self.collection.find_one({"_id": signal_id}, {AUDIT: 1})
        return list(doc.get(AUDIT) or []) if doc else None

    async def search(
        self,
        *,
        readable_by: tuple[str, Collection[str]] | None = None,
        assignee: str | None = None,
        status: SignalStatus | None = None,
        order: str | None = None,
        year: int | None = None,
        skip: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[Signal]]:
        """Signals newest first. ``readable_by`` (organisation, case ids) keeps those ever
        assigned to that organisation or made from one of those cases; ``assignee`` those
        ever assigned to that organisation."""
        query: Document = {}
        if readable_by is not None:
            organisation, case_ids = readable_by
            mine: Document = {"assignments.organisation": organisation}
            query["$or"] = [mine, {"case_id": {"$in": list(case_ids)}}] if case_ids else [mine]
        if assignee:
            query["assignments.organisation"] = assignee
        if status:
            query["status"] = status.value
        if order:
            query["order"] = order
        if year:
            query["year"] = year
        return await self._find(query, skip=skip, limit=limit)

    async def not_merged(self, year: int | None) -> list[Signal]:
        query: Document = {"status": {"$ne": SignalStatus.MERGED.value}}
        if year:
            query["year"] = year
        _, found = await self._find(query, limit=0)
        return found

    async def _find(
        self, query: Document, *, skip: int = 0, limit: int
    ) -> tuple[int, list[Signal]]:
        total = await self.collection.count_documents(query)
        docs = (
            await self.collection.find(query, HIDDEN)
            .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list(None)
        )
        return total, [self.load(d) for d in docs]

    async def due_before(self, day_iso: str, limit: int) -> list[Signal]:
        """Signals with an answer term before the day (from the small reminder index; each
        read by its _id)."""
        found = []
        for signal_id in await self.reminders.before(day_iso, limit):
            doc = await self.collection.find_one({"_id": signal_id}, HIDDEN)
            if doc is None:
                await self.reminders.set(signal_id, None)
            else:
                found.append(self.load(doc))
        return found

    async def recurring(self, since_iso: str) -> dict[str, set[str]]:
        """Monitor keys (type|subtype|regulation|organisation) of the signals created since
        ``since_iso``, each with the distinct cases it was seen in."""
        cursor = await self.collection.aggregate(
            [
                {"$match": {"created_at": {"$gte": since_iso}}},
                {"$unwind": "$monitor_keys"},
                {"$group": {"_id": "$monitor_keys", "n": {"$sum": 1}}},
            ]
        )
        cases: dict[str, set[str]] = {}
        for row in await cursor.to_list(None):
            key, _, case_id = str(row["_id"]).partition("#")
            cases.setdefault(key, set()).add(case_id)
        return cases


class CaseRepository:
    """What this service keeps of each case: enough for the yearly report and for who may
    see the case's signals with their case reference (its regievoerders), no person.

    Who directed a case is kept twice: on the case (``case_directors``, for a single
    signal) and per director in ``director_cases`` (for a director's list, by ``_id``).
    The director's document is written after the case's; the consumer handles a
    ``case.assigned`` again when it was not done (at-least-once, the offset is committed
    after the handler returned), and ``add_director`` is idempotent, so a redelivery
    repairs a crash between the two writes."""

    def __init__(self, collection: AsyncCollection[Document], writes: Writes | None = None) -> None:
        self.collection = collection
        self.writes = writes or default_writes(collection.database)
        self.directed = collection.database[DIRECTOR_CASES]
        self.migrations = collection.database[migrations.MIGRATIONS]

    async def create_indexes(self) -> None:
        await self.collection.create_index([("closed_year", ASCENDING)])
        # Used only by the one-time rebuild of director_cases (on MongoDB); directors'
        # lists read director_cases by _id.
        await self.collection.create_index([("case_directors", ASCENDING)])

    async def upsert(self, case_id: str, fields: Document, figures: Document | None = None) -> None:
        """Idempotent: a redelivered event sets the same values again (and queues the same
        figures delta, which the projector applies once)."""
        update: Document = {"$set": fields}
        if figures:
            update["$push"] = {FIGURES: figures}
        await self.writes.update_one(self.collection, {"_id": case_id}, update, upsert=True)

    async def add_director(self, case_id: str, case_number: str, director_id: str) -> None:
        """Remember that ``director_id`` directs (or directed) the case; idempotent. The
        case first, then the director's list (see the class)."""
        await self.writes.update_one(
            self.collection,
            {"_id": case_id},
            {"$set": {"case_number": case_number}, "$addToSet": {"case_directors": director_id}},
            upsert=True,
        )
        await self.writes.update_one(
            self.directed, {"_id": director_id}, {"$addToSet": {"cases": case_id}}, upsert=True
        )

    async def directors(self, case_id: str) -> list[str]:
        doc = await self.collection.find_one({"_id": case_id}, {"case_directors": 1})
        return list((doc or {}).get("case_directors") or [])

    async def directed_by(self, director_id: str) -> list[str]:
        """The ids of the cases ``director_id`` directs or directed (one read by ``_id``)."""
        doc = await self.directed.find_one({"_id": director_id}, {"cases": 1})
        return [str(c) for c in (doc or {}).get("cases") or []]

    async def rebuild_director_index(self) -> None:
        """At start-up, once per database (``pmm_runtime.migrations``, marker
        ``director_cases``): ``director_cases`` from the cases' ``case_directors`` (cases
        written before the index existed). One scan of the cases; ``$addToSet`` makes a
        repeat after a crash harmless. The marker says for how many directors."""

        async def rebuild() -> dict[str, int]:
            directed: dict[str, set[str]] = {}
            cursor = self.collection.find(
                {"case_directors": {"$exists": True}}, {"case_directors": 1}
            )
            async for doc in cursor:
                for director in doc.get("case_directors") or []:
                    directed.setdefault(str(director), set()).add(str(doc["_id"]))
            for director, cases in directed.items():
                await self.writes.update_one(
                    self.directed,
                    {"_id": director},
                    {"$addToSet": {"cases": {"$each": sorted(cases)}}},
                    upsert=True,
                )
            return {"directors": len(directed)}

        await migrations.once(self.migrations, self.writes, DIRECTOR_CASES_BUILT, rebuild)

    async def get(self, case_id: str) -> Document | None:
        return await self.collection.find_one({"_id": case_id}, {FIGURES: 0})
