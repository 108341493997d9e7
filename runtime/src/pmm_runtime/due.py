"""A due-date index: what a periodic scan asks, answered from a small collection.

A deadline or reminder scan runs on a timer; a query on the aggregates (``{"next_due":
{"$lt": today}}``) costs what the collection holds (FerretDB decodes every document of it,
and MongoDB still reads its index). Instead a repository keeps ``{_id: aggregate id, on:
ISO date}`` for the aggregates whose date runs, in a collection of its own, from its
``Aggregates.written`` hook (after each write), and the scan reads that. An aggregate
without a running date has no entry, so the index holds only the open work.

Written after the aggregate, so a crash in between leaves the index behind, and two
writers of one aggregate may set its entry in the other order; the repository rebuilds
the index at start-up (``rebuild``), and a scan re-reads each aggregate it finds (the
domain decides again whether it is due), so a stale entry costs one read.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable
from datetime import date

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_runtime.mongo import Document
from pmm_runtime.writes import Writes


class DueIndex:
    def __init__(self, collection: AsyncCollection[Document], writes: Writes) -> None:
        self.collection = collection
        self.writes = writes

    async def create_indexes(self) -> None:
        await self.collection.create_index([("on", ASCENDING)])

    async def set(self, key: str, on: date | str | None, *, new: bool = False) -> None:
        """The entry of ``key`` after a write: its date, or none. ``new``: the aggregate
        was just created, so it has no entry yet (one insert, no read first)."""
        if new:
            if on is None:
                return
            with contextlib.suppress(DuplicateKeyError):  # it has one after all: below
                await self.writes.insert_one(
                    self.collection,
                    {"_id": key, "on": on if isinstance(on, str) else on.isoformat()},
                )
                return
        if on is None:
            if await self.collection.find_one({"_id": key}, {"_id": 1}) is not None:
                await self.writes.delete_one(self.collection, {"_id": key})
            return
        day = on if isinstance(on, str) else on.isoformat()
        current = await self.collection.find_one({"_id": key})
        if current is not None and current.get("on") == day:
            return  # unchanged: no write
        if current is None:
            with contextlib.suppress(DuplicateKeyError):  # written meanwhile: update it
                await self.writes.insert_one(self.collection, {"_id": key, "on": day})
                return
        await self.writes.update_one(
            self.collection, {"_id": key}, {"$set": {"on": day}}, upsert=True
        )

    async def before(self, day_iso: str, limit: int) -> list[str]:
        """Keys whose date lies before ``day_iso``, earliest first (``limit`` 0: all)."""
        docs = (
            await self.collection.find({"on": {"$lt": day_iso}}, {"_id": 1})
            .sort([("on", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list(None)
        )
        return [str(d["_id"]) for d in docs]

    async def rebuild(self, entries: AsyncIterable[tuple[str, date | str | None]]) -> int:
        """At start-up: the entry of every aggregate the repository names (its one scan
        of the aggregates per start; entries of others are removed); returns how many
        have a date."""
        stale = {str(d["_id"]) async for d in self.collection.find({}, {"_id": 1})}
        dated = 0
        async for key, on in entries:
            await self.set(key, on)
            stale.discard(key)
            dated += on is not None
        for key in stale:
            await self.writes.delete_one(self.collection, {"_id": key})
        return dated
