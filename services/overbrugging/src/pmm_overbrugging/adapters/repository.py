"""Mongo persistence: applications (aggregates with outbox), yearly budgets, the ledger.

A budget can never be overdrawn: an approval commits with ONE conditional single-document
update (``available_cents >= amount`` and the command not applied yet); there is no
read-then-write. Ledger entries are immutable documents whose ``_id`` is the command id,
so a retried command books nothing twice; the budget remembers each command's amount, so
a retry after a crash writes the ledger entry with the amount the budget moved by.

Every other money step is saved on the application first, with the booking it owes in
``_pending_bookings`` (same atomic write), and booked after; whoever finds a pending
booking (the next command on that application, or the periodic sweep) books it, once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_overbrugging.domain.model import Application
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AggregateStore, Pending

_APP = TypeAdapter(Application)

# How each ledger kind moves the budget's counters (in cents).
BUDGET_MOVES: dict[str, dict[str, int]] = {
    "commitment": {"available_cents": -1, "committed_cents": 1},
    "release": {"available_cents": 1, "committed_cents": -1},
    "payment": {"paid_cents": 1},
    "guarantee_called": {"paid_cents": 1},
    "recovery": {"recovered_cents": 1, "committed_cents": -1, "available_cents": 1},
    "write_off": {"written_off_cents": 1, "committed_cents": -1},
}


def app_fields(application: Application) -> Document:
    fields: Document = _APP.dump_python(application, mode="json")
    fields.pop("id")
    fields.pop("version")
    return fields


def app_from(doc: Document) -> Application:
    data = {k: v for k, v in doc.items() if not k.startswith("_")}
    return _APP.validate_python({**data, "id": doc["_id"], "version": doc["_version"]})


PENDING = "_pending_bookings"


class AlreadyBooked(Exception):
    """The command was applied before: a retry books nothing again."""


class BridgingRepository:
    def __init__(
        self,
        applications: AggregateStore,
        budgets: AsyncCollection[Document],
        ledger: AsyncCollection[Document],
    ) -> None:
        self.applications = applications
        self.budgets = budgets
        self.ledger = ledger

    async def create_indexes(self) -> None:
        await self.ledger.create_index([("application_id", ASCENDING)])
        await self.ledger.create_index([("year", ASCENDING), ("kind", ASCENDING)])
        await self.applications.collection.create_index([("status", ASCENDING)])

    # Applications ------------------------------------------------------------------------------

    async def get(self, application_id: str) -> Application | None:
        doc = await self.applications.get(application_id)
        return app_from(doc) if doc else None

    async def add(
        self,
        application: Application,
        events: Sequence[Pending],
        audit: Document,
        caused_by: str | None,
    ) -> bool:
        return await self.applications.create(
            application.id, app_fields(application), events, caused_by=caused_by, audit=audit
        )

    async def save(
        self,
        application: Application,
        expected_version: int,
        events: Sequence[Pending],
        audit: Document,
        caused_by: str | None = None,
        pending_booking: Document | None = None,
    ) -> bool:
        """Save the new state, its events and audit entry, and the booking it owes (if
        any), in one conditional write."""
        saved = await self.applications.update(
            application.id,
            expected_version=expected_version,
            set_fields=app_fields(application),
            events=events,
            audit=audit,
            caused_by=caused_by,
            push={PENDING: pending_booking} if pending_booking is not None else None,
        )
        return saved is not None

    async def get_with_applied(
        self, application_id: str
    ) -> tuple[Application | None, set[str], list[Document]]:
        """The application, the ids of the commands applied to it and the bookings it still
        owes, in one read by _id (FerretDB pushes only a bare _id filter down)."""
        doc = await self.applications.get(application_id)
        if doc is None:
            return None, set(), []
        return app_from(doc), set(doc.get("_applied", [])), list(doc.get(PENDING, []))

    async def booked(self, application_id: str, booking: Document) -> None:
        """The booking is in the ledger: remove it from the application's pending list
        (the exact entry; FerretDB's ``$pull`` with a condition removes nothing)."""
        await self.applications.collection.update_one(
            {"_id": application_id}, {"$pullAll": {PENDING: [booking]}}
        )

    async def with_pending_bookings(self, limit: int = 500) -> list[tuple[str, list[Document]]]:
        docs = (
            await self.applications.collection.find(
                {f"{PENDING}.0": {"$exists": True}}, {PENDING: 1}
            )
            .limit(limit)
            .to_list(None)
        )
        return [(d["_id"], list(d[PENDING])) for d in docs]

    async def all(self, status: str | None = None) -> list[Application]:
        query = {"status": status} if status else {}
        docs = (
            await self.applications.collection.find(query)
            .sort("received_on", ASCENDING)
            .to_list(None)
        )
        return [app_from(d) for d in docs]

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
                    "commands": [],
                }
            )
            return await self.budgets.find_one({"_id": year})
        current = await self.budgets.find_one({"_id": year})
        if current is None:
            return None
        delta = total_cents - current["total_cents"]
        result: Document | None = await self.budgets.find_one_and_update(
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
        return await self.budgets.find_one({"_id": year}, {"commands": 0, "amounts": 0})

    async def book(
        self, *, command_id: str, year: int, kind: str, amount_cents: int, application_id: str
    ) -> None:
        """Move the budget and write the ledger entry for one command, exactly once.

        Raises ``InsufficientBudget`` (from the caller's domain) via ``None`` return
        handling; raises ``AlreadyBooked`` when the command was applied before.
        """
        moves = {k: v * amount_cents for k, v in BUDGET_MOVES[kind].items()}
        condition: dict[str, Any] = {"_id": year, "commands": {"$ne": command_id}}
        if moves.get("available_cents", 0) < 0:
            condition["available_cents"] = {"$gte": amount_cents}
        moved = await self.budgets.find_one_and_update(
            condition,
            {
                "$inc": moves,
                "$push": {"commands": command_id, "amounts": {"c": command_id, "n": amount_cents}},
            },
        )
        if moved is None:
            applied = await self.budgets.find_one({"_id": year, "commands": command_id})
            if applied is None:
                raise LookupError("budget")  # no budget, or not enough available
            # Moved by an earlier attempt that may have crashed before its ledger entry:
            # the entry gets the amount the budget moved by, not this attempt's.
            for booked in applied.get("amounts", []):
                if booked.get("c") == command_id:
                    amount_cents = int(booked["n"])
        entry = {
            "_id": command_id,
            "application_id": application_id,
            "year": year,
            "kind": kind,
            "amount_cents": amount_cents,
            "at": datetime.now(UTC),
        }
        # DuplicateKeyError: the same command, retried after a crash, is booked once.
        with contextlib.suppress(DuplicateKeyError):
            await self.ledger.insert_one(entry)
        if moved is None:
            raise AlreadyBooked(command_id)

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

    async def entries(self, application_id: str) -> list[Document]:
        return (
            await self.ledger.find({"application_id": application_id})
            .sort("at", ASCENDING)
            .to_list(None)
        )
