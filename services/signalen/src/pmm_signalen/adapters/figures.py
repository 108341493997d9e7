"""The yearly figures: bucket documents of counters, fed from the ``_figures`` deltas that
signal and case documents carry (written atomically with the change that caused them).

The projector applies each delta once (``ApplyOnce``, decision 0011): the bucket update is
conditional on the delta not being in the bucket's short list of deltas in flight, and
pushes it there in the same write; then the delta's marker is written (its key in
``figures_applied``), and deltas with markers leave the list now and then, so a bucket
stays small however many cases its year has. A crash after applying and before removing
the delta from its source only means the delta is skipped next time. Measures taken are
kept as examples in ``measures`` (one per bucket, so at most 64 a year).

The projector does not scan the sources for deltas on its timer (a scan's cost grows with
the data; FerretDB decodes every document): the writer of a delta announces its document
in the small ``_figures_pending`` collection after the write (``announce``), and the
projector reads the announcements. A crash between the write and its announcement is
recovered by the full scan at the first round and every ``sweep_interval_s`` (rarely).

A delta that depends only on the event that causes it (a case's evaluation) needs no
source document: it is *carried* by its announcement (``carry``: one insert, its ``_id``
derived from the delta's id, so a redelivered event inserts nothing new), written before
the change it belongs to, and the projector applies it from the announcement without
reading or clearing a source (decision 0010). Applying it once is the bucket's rule, as
for every delta.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_runtime.mongo import Document
from pmm_runtime.once import Applied, ApplyOnce, Seen
from pmm_runtime.outbox import PendingOutbox, by_aggregate, default_writes
from pmm_runtime.writes import SweepSchedule, Writes
from pmm_signalen.domain.figures import Delta

FIGURES = "_figures"
FIGURES_PENDING = "_figures_pending"
"""The announcements of documents with deltas waiting (collection, id): small."""
CARRIED = "delta"
"""The ``c`` of an announcement that carries its delta itself (``d``; ``carry``)."""
APPLIED = "_applied"
VERSION = "_v"


def applied_key(delta_id: str) -> str:
    """A short fixed-size key of a delta (64 bits): the ``_id`` of its marker and its entry
    in a bucket's list of deltas in flight."""
    return hashlib.blake2b(delta_id.encode(), digest_size=8).hexdigest()


class YearlyFigures:
    def __init__(
        self,
        figures: AsyncCollection[Document],
        measures: AsyncCollection[Document],
        sources: Sequence[AsyncCollection[Document]],
        *,
        batch_size: int = 500,
        writes: Writes | None = None,
        pending: PendingOutbox | None = None,
        sweep_interval_s: float = 600.0,
    ) -> None:
        self.figures = figures
        self.measures = measures
        self.sources = list(sources)
        self.batch_size = batch_size
        self.writes = writes or default_writes(figures.database)
        self.pending = pending
        self.sweeps = SweepSchedule(self.writes, sweep_interval_s)
        self.markers = figures.database[figures.name + "_applied"]
        self.once = ApplyOnce(self.writes, figures, self.markers)
        self._with_example: set[str] = set()  # buckets known to have their example

    async def create_indexes(self) -> None:
        await self.migrate()
        await self.figures.create_index([("year", ASCENDING)])
        await self.measures.create_index([("year", ASCENDING)])

    async def _example(self, bucket_id: str, *deltas: Delta) -> None:
        """Keep a measure taken as the bucket's example: at most one per bucket (64 a
        year; FerretDB ignores $push's $slice), so once a bucket has one, no write."""
        if bucket_id in self._with_example:
            return
        for delta in deltas:
            for example in delta.get("examples") or []:
                with contextlib.suppress(DuplicateKeyError):
                    await self.writes.insert_one(
                        self.measures,
                        {"_id": bucket_id, "year": delta["year"], "delta": delta["id"], **example},
                    )
                self._with_example.add(bucket_id)
                return

    async def apply(self, delta: Delta) -> bool:
        """Add one delta to its year's bucket, exactly once. False when applied already."""
        bucket_id = _bucket_id(delta)
        await self._example(bucket_id, delta)
        if not any(delta["counts"].values()):
            return False
        return await self._apply_group(bucket_id, [delta])

    async def apply_all(self, deltas: Sequence[Delta]) -> int:
        """Add many deltas, each exactly once: the deltas of one bucket in ONE write
        (their counts summed, their ids pushed together, on condition that none of them
        is in the bucket yet); a bucket that has one of them already (a crash after its
        write and before the deltas' removal from their documents) gets them one by one,
        so each is counted once. Returns how many were applied now."""
        groups: dict[str, list[Delta]] = {}
        for delta in {d["id"]: d for d in deltas}.values():
            groups.setdefault(_bucket_id(delta), []).append(delta)
        applied = 0
        for bucket_id, group in groups.items():
            await self._example(bucket_id, *group)
            counting = [d for d in group if any(d["counts"].values())]
            if len(counting) > 1 and await self._apply_group(bucket_id, counting):
                applied += len(counting)
                continue
            for delta in counting:
                applied += int(await self.apply(delta))
        return applied

    async def _apply_group(self, bucket_id: str, group: Sequence[Delta]) -> bool:
        """Add the deltas of one bucket in one write, on condition that none is in it yet
        (False when one is: applied already, or the caller goes one by one). The bucket
        lists only the deltas in flight; each applied delta has a marker (``ApplyOnce``,
        decision 0011), so the bucket does not grow with the year's cases."""
        totals: Counter[str] = Counter()
        for delta in group:
            totals.update({f"counts.{k}": int(v) for k, v in delta["counts"].items() if v})
        keys = [applied_key(d["id"]) for d in group]
        outcome = await self.once.apply(
            bucket_id,
            [{"k": key} for key in keys],
            {"$inc": {**totals, VERSION: 1}, "$set": {"year": group[0]["year"]}},
            upsert=True,
        )
        if isinstance(outcome, Applied):
            await self._mark(keys)
            return True
        if isinstance(outcome, Seen) and outcome.inflight:  # a crash before their markers
            await self._mark([str(entry["k"]) for entry in outcome.inflight])
        return False

    async def _mark(self, keys: Sequence[str]) -> None:
        """The markers of applied deltas (inserted together: ``Writes``' group commit)."""

        await asyncio.gather(*(self.once.mark({"_id": key}) for key in keys))

    async def migrate(self) -> int:
        """Buckets written before decision 0011 listed every delta they applied
        (``_applied``): give those deltas their markers and drop the lists. At start-up;
        the buckets are at most 64 a year. How many buckets were changed."""
        changed = 0
        async for bucket in self.figures.find({APPLIED: {"$exists": True}}, {APPLIED: 1}):
            keys = [str(k) for k in bucket.get(APPLIED) or []]
            for start in range(0, len(keys), 64):
                await self._mark(keys[start : start + 64])
            if await self.writes.update_one(
                self.figures,
                {"_id": bucket["_id"], APPLIED: {"$size": len(keys)}},
                {"$unset": {APPLIED: ""}},
            ):
                changed += 1
        return changed

    async def carry(self, delta: Delta) -> bool:
        """Queue ``delta`` in an announcement of its own (no source document); False
        without an announcement collection (the caller then queues it on its document)."""
        if self.pending is None:
            return False
        with contextlib.suppress(DuplicateKeyError):  # redelivered: queued already
            await self.writes.insert_one(
                self.pending.collection,
                {"_id": f"{CARRIED}/{delta['id']}", "c": CARRIED, "a": delta["id"], "d": delta},
            )
        return True

    async def announce(self, source: str, document_id: str) -> None:
        """After a write that queued a delta on ``source``'s document: the projector's work."""
        if self.pending is not None:
            await self.pending.announce(source, document_id)

    async def run_once(self) -> int:
        """Apply the announced deltas (all pending deltas, by a full scan, at the first
        round, every ``sweep_interval_s``, after a failed write of this process and without an
        announcement collection); returns how many were applied now. One page of
        announcements is one round: each announced document read once, the deltas of a
        bucket in one write, each document's deltas removed, the announcements removed in
        one delete."""
        if self.pending is None or self.sweeps.due():
            return await self.sweep()
        sources = {source.name: source for source in self.sources}
        docs: list[tuple[AsyncCollection[Document], Document]] = []
        carried: list[Delta] = []
        markers: list[Document] = []
        for (name, doc_id), announced in by_aggregate(
            await self.pending.waiting(self.batch_size)
        ).items():
            source = sources.get(name)
            if name == CARRIED:
                carried.extend(m["d"] for m in announced[:1] if m.get("d"))
            elif source is not None:
                doc = await source.find_one({"_id": doc_id}, {FIGURES: 1})
                if doc is not None:
                    docs.append((source, doc))
            markers.extend(announced)
        applied = await self._apply_documents(docs, carried)
        await self.pending.done_all(markers)
        return applied

    async def _apply_documents(
        self,
        docs: Sequence[tuple[AsyncCollection[Document], Document]],
        carried: Sequence[Delta] = (),
    ) -> int:
        """Apply the deltas the documents carry (and those carried by announcements), then
        remove them from the documents (the exact entries, as read: FerretDB's ``$pull``
        with a condition removes nothing), all documents at once (their write locks are
        taken and released together: ``Writes``' group commit)."""
        applied = await self.apply_all(
            [*carried, *(delta for _, doc in docs for delta in doc.get(FIGURES) or [])]
        )
        cleared = await asyncio.gather(
            *(
                self.writes.update_one(
                    source, {"_id": doc["_id"]}, {"$pullAll": {FIGURES: doc[FIGURES]}}
                )
                for source, doc in docs
                if doc.get(FIGURES)
            ),
            return_exceptions=True,
        )
        for outcome in cleared:
            if isinstance(outcome, BaseException):
                raise outcome
        return applied

    async def sweep(self) -> int:
        """Apply every pending delta of every source (a full scan)."""
        applied = 0
        async with self.sweeps.sweeping():
            for source in self.sources:
                while True:
                    docs = (
                        await source.find({f"{FIGURES}.0": {"$exists": True}}, {FIGURES: 1})
                        .limit(self.batch_size)
                        .to_list(None)
                    )
                    applied += await self._apply_documents([(source, doc) for doc in docs])
                    if len(docs) < self.batch_size:
                        break
        return applied

    async def counts(self, year: int) -> dict[str, int]:
        """The year's counters: its bucket documents, summed (64 small documents a year:
        since decision 0011 a bucket lists only its deltas in flight, so the report reads
        the buckets themselves and no copy of their counters is kept)."""
        total: dict[str, int] = {}
        async for doc in self.figures.find({"year": year}, {"counts": 1}):
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


def _bucket_id(delta: Delta) -> str:
    return f"{delta['year']}:{delta['bucket']:02d}"


def pending(delta: Delta | None) -> dict[str, Any]:
    """The ``push`` argument of a store update that queues ``delta``."""
    return {FIGURES: delta} if delta else {}
