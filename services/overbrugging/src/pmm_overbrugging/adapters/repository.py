"""Mongo persistence: applications (aggregates with outbox), yearly budgets, the ledger.

A budget can never be overdrawn: an approval commits with ONE conditional single-document
update (``available_cents >= amount``, the command not applied yet); the check is in the
update's condition, not in a read before it. Ledger entries are immutable documents whose
``_id`` is the command id, so a retried command books nothing twice. The budget lists the
bookings in flight with their amounts until their ledger entries exist (``ApplyOnce``,
decision 0011), so a retry after a crash writes the ledger entry with the amount the
budget moved by, and the budget stays one small document however many bookings a year
has.

Every other money step is saved on the application first, with the booking it owes in
``_pending_bookings`` (same atomic write, the change loop's ``extra_push``), and booked
after; whoever finds a pending booking (the same step, the next step on that application,
a retry, or the periodic sweep) books it, once. The queries of the use cases live here.

An application knows the ids of its ledger entries (``_ledger_entries``, added in the same
update that takes a booking off its pending list), so its ledger is read by bare ``_id``
whatever the size of the ledger (FerretDB 1.24 decodes the whole collection for any other
filter: decision 0008).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_contracts.topics import OVERBRUGGING_APPLICATIONS
from pmm_overbrugging.domain.model import Application, Status
from pmm_runtime import migrations
from pmm_runtime.changes import Aggregates
from pmm_runtime.mongo import Document
from pmm_runtime.once import INFLIGHT, ApplyOnce, Refused, Seen
from pmm_runtime.outbox import AggregateStore, PendingOutbox
from pmm_runtime.writes import SweepSchedule

# How each ledger kind moves the budget's counters (in cents).
BUDGET_MOVES: dict[str, dict[str, int]] = {
    "commitment": {"available_cents": -1, "committed_cents": 1},
    "release": {"available_cents": 1, "committed_cents": -1},
    "payment": {"paid_cents": 1},
    "guarantee_called": {"paid_cents": 1},
    "recovery": {"recovered_cents": 1, "committed_cents": -1, "available_cents": 1},
    "write_off": {"written_off_cents": 1, "committed_cents": -1},
}

PENDING = "_pending_bookings"
ENTRIES = "_ledger_entries"
"""The ids of the application's ledger entries that left its pending list (``booked``)."""
HIDDEN = {"_audit": 0, "_outbox": 0, "_applied": 0, PENDING: 0, ENTRIES: 0}
ENTRIES_MIGRATION = "application_ledger_entries"
"""The start-up migration that gave applications written before ``ENTRIES`` theirs."""


@dataclass(frozen=True)
class Booking:
    """One ledger entry a step books: its id, year, kind and amount in cents."""

    entry_id: str
    year: int
    kind: str
    cents: int

    def document(self) -> Document:
        return {
            "entry_id": self.entry_id,
            "year": self.year,
            "kind": self.kind,
            "cents": self.cents,
        }


class AlreadyBooked(Exception):
    """The command was applied before: a retry books nothing again."""


class BridgingRepository(Aggregates[Application]):
    name = "application"

    def __init__(
        self,
        applications: AggregateStore,
        budgets: AsyncCollection[Document],
        ledger: AsyncCollection[Document],
        *,
        sweep_interval_s: float = 600.0,
    ) -> None:
        super().__init__(applications, Application, topic=OVERBRUGGING_APPLICATIONS)
        self.budgets = budgets
        self.ledger = ledger
        self.budget_once = ApplyOnce(applications.writes, budgets, ledger)
        # Applications whose booking failed after their step was saved: the periodic
        # sweep's work without a scan of the applications (the scan runs at its first
        # round, after a restart, and every ``sweep_interval_s``).
        self.owing_marks = PendingOutbox(
            applications.collection.database["application_bookings_pending"], applications.writes
        )
        self.sweeps = SweepSchedule(applications.writes, sweep_interval_s)
        # One document per start-up migration done (read by bare _id at every start).
        self.migrations = applications.collection.database[migrations.MIGRATIONS]

    async def create_indexes(self) -> None:
        await self.migrate_budgets()
        await self.migrate_ledger_entries()
        # The service reads an application's entries by id (``entries``); on MongoDB the
        # index still serves a query of them by application (a check, a tool).
        await self.ledger.create_index([("application_id", ASCENDING)])
        await self.ledger.create_index([("year", ASCENDING), ("kind", ASCENDING)])
        for key in ("status", "case_id", "budget_year"):
            await self.collection.create_index([(key, ASCENDING), ("received_on", ASCENDING)])

    # Applications ------------------------------------------------------------------------------

    async def search(
        self,
        *,
        case_id: str | None = None,
        status: Status | None = None,
        skip: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[Application]]:
        """One page of the applications that match, oldest first, and how many match."""
        query: Document = {}
        if case_id is not None:
            query["case_id"] = case_id
        if status is not None:
            query["status"] = status.value
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query, HIDDEN).sort([("received_on", ASCENDING), ("_id", 1)])
        docs = await cursor.skip(skip).limit(limit).to_list(None)
        return total, [self.load(d) for d in docs]

    async def of_year(self, year: int) -> list[Application]:
        """The applications decided on ``year``'s budget (its figures)."""
        docs = await self.collection.find({"budget_year": year}, HIDDEN).to_list(None)
        return [self.load(d) for d in docs]

    async def pending_bookings(self, application_id: str) -> list[Booking]:
        """What the application still owes the ledger (one read by _id)."""
        doc = await self.collection.find_one({"_id": application_id}, {PENDING: 1})
        return [Booking(**b) for b in (doc or {}).get(PENDING, [])]

    def owing(self, bookings: Sequence[Booking]) -> Document | None:
        """The bookings a step owes, pushed in the same write as its state (the change
        loop's ``extra_push``)."""
        return {PENDING: {"$each": [b.document() for b in bookings]}} if bookings else None

    async def booked(self, application_id: str, booking: Booking) -> None:
        """The booking is in the ledger: move it from the application's pending list (the
        exact entry; FerretDB's ``$pull`` with a condition removes nothing) to the ids of
        its ledger entries, in one update: at every moment an entry of the ledger is in
        one of the two (``entries``)."""
        await self.store.writes.update_one(
            self.collection,
            {"_id": application_id},
            {
                "$pullAll": {PENDING: [booking.document()]},
                "$addToSet": {ENTRIES: booking.entry_id},
            },
        )

    async def announce_owing(self, application_id: str) -> None:
        """A step's booking failed after its save: the sweep books it."""
        await self.owing_marks.announce(self.collection.name, application_id)

    async def with_pending_bookings(
        self, limit: int = 500
    ) -> list[tuple[str, list[Booking], Document | None]]:
        """The sweep's question: applications that saved a step but did not book it, each
        with its announcement (``settled`` removes it); a full scan only at the first
        round, every ``sweep_interval_s`` and after a failed write (``SweepSchedule``)."""
        if self.sweeps.due():
            async with self.sweeps.sweeping():
                docs = (
                    await self.collection.find({f"{PENDING}.0": {"$exists": True}}, {PENDING: 1})
                    .limit(limit)
                    .to_list(None)
                )
            return [(d["_id"], [Booking(**b) for b in d[PENDING]], None) for d in docs]
        return [
            (str(m["a"]), await self.pending_bookings(str(m["a"])), m)
            for m in await self.owing_marks.waiting(limit)
        ]

    async def settled(self, marker: Document | None) -> None:
        if marker is not None:
            await self.owing_marks.done(marker)

    # Budgets -----------------------------------------------------------------------------------

    async def set_budget(self, year: int, total_cents: int) -> Document | None:
        """Create the year's budget, or raise its total (never below what is committed)."""
        with contextlib.suppress(DuplicateKeyError):  # exists already: change it below
            await self.budgets.insert_one(
                {
                    "_id": year,
                    "total_cents": total_cents,
                    "available_cents": total_cents,
                    "committed_cents": 0,
                    "paid_cents": 0,
                    "recovered_cents": 0,
                    "written_off_cents": 0,
                }
            )
            return await self.budgets.find_one({"_id": year})
        current = await self.budgets.find_one({"_id": year})
        if current is None:
            return None
        delta = total_cents - current["total_cents"]
        result = await self.store.writes.find_one_and_update(
            self.budgets,
            {
                "_id": year,
                "total_cents": current["total_cents"],
                "available_cents": {"$gte": -delta},
            },
            {"$inc": {"total_cents": delta, "available_cents": delta}},
            return_document=ReturnDocument.AFTER,
        )
        return result

    async def budget(self, year: int) -> Document | None:
        return await self.budgets.find_one({"_id": year}, {INFLIGHT: 0})

    async def book(self, booking: Booking, application_id: str) -> None:
        """Move the budget and write the ledger entry for one booking, exactly once.

        Raises ``LookupError`` when there is no budget or not enough available, and
        ``AlreadyBooked`` when the booking's entry was applied before. The budget lists
        only the bookings in flight (``ApplyOnce``; the ledger entry is the marker), so
        its document does not grow with the year's bookings (decision 0011).
        """
        command_id, amount_cents = booking.entry_id, booking.cents
        moves = {k: v * amount_cents for k, v in BUDGET_MOVES[booking.kind].items()}
        condition = (
            {"available_cents": {"$gte": amount_cents}}
            if moves.get("available_cents", 0) < 0
            else None
        )
        outcome = await self.budget_once.apply(
            booking.year,
            [{"k": command_id, "n": amount_cents}],
            {"$inc": moves},
            condition=condition,
        )
        if isinstance(outcome, Refused):
            raise LookupError("budget")  # no budget, or not enough available
        if isinstance(outcome, Seen):
            if not outcome.inflight:
                raise AlreadyBooked(command_id)  # its ledger entry is there
            # Moved by an earlier attempt that may have crashed before its ledger entry:
            # the entry gets the amount the budget moved by, not this attempt's.
            amount_cents = int(outcome.inflight[0]["n"])
        entry = {
            "_id": command_id,
            "application_id": application_id,
            "year": booking.year,
            "kind": booking.kind,
            "amount_cents": amount_cents,
            "at": datetime.now(UTC),
        }
        # There already: the same command, retried after a crash, is booked once.
        await self.budget_once.mark(entry)
        if isinstance(outcome, Seen):
            raise AlreadyBooked(command_id)

    async def migrate_budgets(self) -> int:
        """Budgets written before decision 0011 listed every command they applied
        (``commands``, ``amounts``): keep those without a ledger entry in flight, drop the
        lists. At start-up; the budgets are one document a year. How many were changed."""
        changed = 0
        async for budget in self.budgets.find({"commands": {"$exists": True}}):
            commands = list(budget.get("commands") or [])
            amounts = {a.get("c"): a.get("n") for a in budget.get("amounts") or []}
            missing = [
                {"k": c, "n": int(amounts.get(c) or 0)}
                for c in commands
                if not await self.budget_once.marked(c)
            ]
            update: Document = {"$unset": {"commands": "", "amounts": ""}}
            if missing:
                update["$push"] = {INFLIGHT: {"$each": missing}}
            if await self.store.writes.update_one(
                self.budgets, {"_id": budget["_id"], "commands": {"$size": len(commands)}}, update
            ):
                changed += 1
        return changed

    async def entry_amount(self, entry_id: str) -> int | None:
        entry = await self.ledger.find_one({"_id": entry_id}, {"amount_cents": 1})
        return int(entry["amount_cents"]) if entry else None

    async def ledger_sums(self, year: int) -> dict[str, int]:
        rows = await (
            await self.ledger.aggregate(
                [
                    {"$match": {"year": year}},
                    {"$group": {"_id": "$kind", "cents": {"$sum": "$amount_cents"}}},
                ]
            )
        ).to_list(None)
        return {row["_id"]: int(row["cents"]) for row in rows}

    async def entries(self, application_id: str, also: Iterable[str] = ()) -> list[Document]:
        """The application's ledger entries, oldest first, each once; reads by bare ``_id``
        only, so the cost does not grow with the ledger.

        The ids are those the application lists as booked (``ENTRIES``), those still on its
        pending list (their entry may exist already: a crash, or a booking under way,
        between the ledger insert and ``booked``) and ``also``: entries written before the
        application could record them (the commitment, booked before the approval is
        saved, whose id the caller derives from the application). The two lists are read
        in one read of the application and ``booked`` moves an id from one to the other in
        one update, so no entry that existed at that read is missed. An id whose entry
        does not exist (a booking still owed) is skipped."""
        doc = await self.collection.find_one({"_id": application_id}, {ENTRIES: 1, PENDING: 1})
        if doc is None:
            return []
        ids = dict.fromkeys(
            [
                *(str(i) for i in doc.get(ENTRIES) or []),
                *(str(b["entry_id"]) for b in doc.get(PENDING) or []),
                *also,
            ]
        )
        found = [await self.ledger.find_one({"_id": entry_id}) for entry_id in ids]
        return sorted((e for e in found if e is not None), key=_in_time_order)

    async def migrate_ledger_entries(self, batch: int = 64) -> int:
        """Applications written before ``ENTRIES`` existed do not list their ledger entries:
        at start-up, once (``pmm_runtime.migrations``, marker ``ENTRIES_MIGRATION``), read
        the ledger (one scan) and add each application's entry ids to its list. A crash
        midway repeats it (``$addToSet``), and a ``booked`` meanwhile only adds what the
        migration adds too. How many applications it changed (0 when done before)."""

        async def add(application_id: str, ids: list[str]) -> bool:
            return await self.store.writes.update_one(
                self.collection,
                {"_id": application_id},
                {"$addToSet": {ENTRIES: {"$each": ids}}},
            )

        async def migrate() -> dict[str, int]:
            by_application: dict[str, list[str]] = {}
            async for entry in self.ledger.find({}, {"application_id": 1}):
                if entry.get("application_id") is not None:
                    by_application.setdefault(str(entry["application_id"]), []).append(
                        str(entry["_id"])
                    )
            changed = 0
            groups = list(by_application.items())
            for start in range(0, len(groups), batch):  # grouped updates (decision 0014)
                done = await asyncio.gather(
                    *(add(a, ids) for a, ids in groups[start : start + batch])
                )
                changed += sum(done)
            return {"applications": changed}

        report = await migrations.once(
            self.migrations, self.store.writes, ENTRIES_MIGRATION, migrate
        )
        return int((report or {}).get("applications", 0))


def _in_time_order(entry: Document) -> tuple[bool, datetime | None, str]:
    """Oldest first (as the ledger's ``at``; an entry without one first), then by id."""
    at = entry.get("at")
    return (at is not None, at, str(entry["_id"]))
