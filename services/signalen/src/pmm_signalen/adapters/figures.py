"""The yearly figures: bucket documents of counters, fed from the ``_figures`` deltas that
signal and case documents carry (written atomically with the change that caused them).

The projector applies each delta once: the bucket update is conditional on the delta id
not being in the bucket's ``_applied`` list, and pushes it there in the same write. A
crash after applying and before removing the delta from its source only means the delta
is skipped next time. Measures taken are kept as examples in ``measures`` (one per
bucket, so at most 64 a year).

The projector does not scan the sources for deltas on its timer (a scan's cost grows with
the data; FerretDB decodes every document): the writer of a delta announces its document
in the small ``_figures_pending`` collection after the write (``announce``), and the
projector reads the announcements. A crash between the write and its announcement is
recovered by the full scan at the first round and every ``sweep_interval_s`` (rarely).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_runtime.mongo import Document
from pmm_runtime.outbox import PendingOutbox, default_writes
from pmm_runtime.writes import SweepSchedule, Writes
from pmm_signalen.domain.figures import Delta

FIGURES = "_figures"
FIGURES_PENDING = "_figures_pending"
"""The announcements of documents with deltas waiting (collection, id): small."""
APPLIED = "_applied"
VERSION = "_v"


def applied_key(delta_id: str) -> str:
    """A short fixed-size key for the applied list (64 bits, per year bucket): the report
    reads the buckets, and FerretDB decodes the whole list even when it is not projected."""
    return hashlib.blake2b(delta_id.encode(), digest_size=8).hexdigest()


class YearlyFigures:
    def __init__(
        self,
        figures: AsyncCollection[Document],
        measures: AsyncCollection[Document],
        sources: Sequence[AsyncCollection[Document]],
        *,
        views: AsyncCollection[Document] | None = None,
        batch_size: int = 500,
        writes: Writes | None = None,
        pending: PendingOutbox | None = None,
        sweep_interval_s: float = 600.0,
    ) -> None:
        self.figures = figures
        self.views = views if views is not None else figures.database[figures.name + "_view"]
        self.measures = measures
        self.sources = list(sources)
        self.batch_size = batch_size
        self.writes = writes or default_writes(figures.database)
        self.pending = pending
        self.sweeps = SweepSchedule(self.writes, sweep_interval_s)

    async def create_indexes(self) -> None:
        await self.figures.create_index([("year", ASCENDING)])
        await self.views.create_index([("year", ASCENDING)])
        await self.measures.create_index([("year", ASCENDING)])

    async def apply(self, delta: Delta, shown: dict[str, Document] | None = None) -> bool:
        """Add one delta to its year's bucket, exactly once. False when applied already.

        The bucket's view is written at once, or, with ``shown``, collected there (the
        newest copy per bucket) for the caller to write once per round (``_show_all``)."""
        bucket_id = f"{delta['year']}:{delta['bucket']:02d}"
        for example in delta.get("examples") or []:
            # at most one example per bucket (64 a year): FerretDB ignores $push's $slice
            with contextlib.suppress(DuplicateKeyError):
                await self.measures.insert_one(
                    {"_id": bucket_id, "year": delta["year"], "delta": delta["id"], **example}
                )
        increments = {f"counts.{k}": int(v) for k, v in delta["counts"].items() if v}
        if not increments:
            return False
        try:
            bucket = await self.writes.find_one_and_update(
                self.figures,
                {"_id": bucket_id, APPLIED: {"$ne": applied_key(delta["id"])}},
                {
                    "$inc": {**increments, VERSION: 1},
                    "$push": {APPLIED: applied_key(delta["id"])},
                    "$set": {"year": delta["year"]},
                },
                upsert=True,  # no projection: FerretDB 1.24 does not implement it here
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the bucket exists and has this delta: applied already
            return False
        if bucket is not None:
            if shown is None:
                await self._show(bucket)
            elif bucket[VERSION] > shown.get(bucket_id, {}).get(VERSION, -1):
                shown[bucket_id] = bucket
        return True

    async def _show_all(self, shown: dict[str, Document]) -> None:
        for bucket in shown.values():
            await self._show(bucket)

    async def _show(self, bucket: Document) -> None:
        """Copy a bucket's counters to its view (what the report reads), newer over older.

        The bucket's applied list grows with every delta and FerretDB decodes it whenever
        the document is read; the view holds the counters only.
        """
        with contextlib.suppress(DuplicateKeyError):  # a newer copy is there already
            await self.writes.update_one(
                self.views,
                {"_id": bucket["_id"], VERSION: {"$lt": bucket[VERSION]}},
                {
                    "$set": {
                        "year": bucket["year"],
                        "counts": bucket.get("counts") or {},
                        VERSION: bucket[VERSION],
                    }
                },
                upsert=True,
            )

    async def refresh_views(self, year: int) -> None:
        """Copy every bucket of ``year`` to its view again (after a crash between the two)."""
        async for bucket in self.figures.find({"year": year}, {"counts": 1, "year": 1, VERSION: 1}):
            await self._show(bucket)

    async def announce(self, source: str, document_id: str) -> None:
        """After a write that queued a delta on ``source``'s document: the projector's work."""
        if self.pending is not None:
            await self.pending.announce(source, document_id)

    async def run_once(self) -> int:
        """Apply the announced deltas (all pending deltas, by a full scan, at the first
        round, every ``sweep_interval_s``, after a failed write of this process and without an
        announcement collection);
        returns how many were applied now."""
        if self.pending is None or self.sweeps.due():
            return await self.sweep()
        applied = 0
        sources = {source.name: source for source in self.sources}
        shown: dict[str, Document] = {}  # one view write per bucket and round
        try:
            for marker in await self.pending.waiting(self.batch_size):
                source = sources.get(str(marker.get("c")))
                if source is not None:
                    doc = await source.find_one({"_id": marker["a"]}, {FIGURES: 1})
                    if doc is not None:
                        applied += await self._apply_document(source, doc, shown)
                await self.pending.done(marker)
        finally:
            await self._show_all(shown)
        return applied

    async def _apply_document(
        self, source: AsyncCollection[Document], doc: Document, shown: dict[str, Document]
    ) -> int:
        applied = 0
        done: list[Document] = []
        for delta in doc.get(FIGURES) or []:
            applied += int(await self.apply(delta, shown))
            done.append(delta)
        if done:  # exact entries, as read ($pull with a condition: FerretDB)
            await self.writes.update_one(source, {"_id": doc["_id"]}, {"$pullAll": {FIGURES: done}})
        return applied

    async def sweep(self) -> int:
        """Apply every pending delta of every source (a full scan)."""
        applied = 0
        shown: dict[str, Document] = {}
        try:
            async with self.sweeps.sweeping():
                for source in self.sources:
                    while True:
                        docs = (
                            await source.find({f"{FIGURES}.0": {"$exists": True}}, {FIGURES: 1})
                            .limit(self.batch_size)
                            .to_list(None)
                        )
                        for doc in docs:
                            applied += await self._apply_document(source, doc, shown)
                        if len(docs) < self.batch_size:
                            break
        finally:
            await self._show_all(shown)
        return applied

    async def counts(self, year: int) -> dict[str, int]:
        """The year's counters: its bucket documents, summed."""
        total: dict[str, int] = {}
        async for doc in self.views.find({"year": year}, {"counts": 1}):
            for key, n in (doc.get("counts") or {}).items():
                total[key] = total.get(key, 0) + int(n)
        return total

    async def examples(self, year: int, limit: int) -> list[Document]:
        docs: list[Document] = (
            await self.measures.find({"year": year}, {"_id": 0, "year": 0, "delta": 0})
            .limit(limit)
            .to_list(None)
        )
        return docs


def pending(delta: Delta | None) -> dict[str, Any]:
    """The ``push`` argument of a store update that queues ``delta``."""
    return {FIGURES: delta} if delta else {}
