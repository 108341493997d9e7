"""The store's time per operation on the one connection a process has (the budget every
figure spends; issue 12 item 3), in a collection of 100 documents and of 10,000.

Every write changes the document (FerretDB answers a write that changes nothing without
writing, which made an earlier version of this bench report replaces as cheap). The last
two rows are the change loop's versioned write by each strategy of ``pmm_runtime.writes``
(decision 0008): the version in the filter (``conditional``, MongoDB), and the lock, the
read by bare ``_id``, the check here and the write by bare ``_id`` (``serialized``).
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from pymongo import AsyncMongoClient
from stack import Row, Run

from pmm_runtime.once import Applied, ApplyOnce
from pmm_runtime.writes import Writes, WriteStrategy

Doc = dict[str, Any]


def doc(i: int) -> Doc:
    return {"_id": f"d{i}", "status": "open", "n": i, "body": "x" * 600, "_version": 1}


def spread(i: int, salt: int, size: int) -> int:
    """The i-th document of a sample spread over the whole collection (a scan that stops
    at the first match would look cheap for the first documents)."""
    return (i * 7919 + salt * 101) % size


async def timed(samples: int, op: Any) -> float:
    took = []
    for i in range(samples):
        t = time.perf_counter()
        await op(i)
        took.append((time.perf_counter() - t) * 1000)
    return statistics.median(took)


async def exactly_once(db: Any, writes: Writes, results: dict[int, dict[str, float]]) -> None:
    """A hot document (a budget, a figures bucket) updated once per key after 100 and
    after 10,000 earlier keys: by ``ApplyOnce`` (decision 0011: the keys in flight on the
    document, a marker per key), and by the rule it replaced (every key in a list on the
    document, the condition ``$ne`` on it), both serialized as on FerretDB."""
    markers = db["once_markers"]
    hot = db["once_hot"]
    once = ApplyOnce(writes, hot, markers)
    for size in (100, 10_000):
        keys = [f"commitment:application-{size}-{i:06d}" for i in range(size)]
        for start in range(0, size, 1000):
            await markers.insert_many([{"_id": k} for k in keys[start : start + 1000]])
        await hot.insert_one({"_id": f"new{size}", "n": 0})
        await hot.insert_one(
            {"_id": f"old{size}", "n": 0, "applied": [{"c": k, "n": 100} for k in keys]}
        )

        async def new_rule(i: int, s: int = size) -> None:
            key = f"new-{s}-{i}"
            outcome = await once.apply(f"new{s}", [{"k": key, "n": 100}], {"$inc": {"n": 100}})
            assert isinstance(outcome, Applied)
            await markers.insert_one({"_id": key})

        async def old_rule(i: int, s: int = size) -> None:
            key = f"old-{s}-{i}"
            await writes.find_one_and_update(
                hot,
                {"_id": f"old{s}", "applied.c": {"$ne": key}},
                {"$inc": {"n": 100}, "$push": {"applied": {"c": key, "n": 100}}},
            )

        results[size]["exactly-once update of a hot document by ApplyOnce (0011)"] = await timed(
            30, new_rule
        )
        results[size][
            "exactly-once update, every key listed on the document (before 0011)"
        ] = await timed(10, old_rule)


async def bench(run: Run) -> list[Row]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(run.store.url, tz_aware=True)
    db = client[f"bench_store_{run.run_id}"]
    rows: list[Row] = []
    serialized = Writes(db, holder="bench", strategy=WriteStrategy.SERIALIZED)
    conditional = Writes(db, holder="bench", strategy=WriteStrategy.CONDITIONAL)
    try:
        results: dict[int, dict[str, float]] = {}
        coll = db[f"c{uuid.uuid4().hex[:6]}"]
        have = 0
        tick = 0

        def fresh() -> int:  # a new value for every write
            nonlocal tick
            tick += 1
            return tick

        for size in (100, 10_000):
            for start in range(have, size, 1000):
                await coll.insert_many([doc(i) for i in range(start, min(size, start + 1000))])
            have = size
            r: dict[str, float] = {}
            r["insert_one"] = await timed(50, lambda i, s=size: coll.insert_one(doc(10**6 + s + i)))
            r["delete_one by _id"] = await timed(
                50, lambda i, s=size: coll.delete_one({"_id": f"d{10**6 + s + i}"})
            )
            r["find_one by _id"] = await timed(
                50, lambda i, s=size: coll.find_one({"_id": f"d{spread(i, 7, s)}"})
            )
            r["update_one by _id"] = await timed(
                50,
                lambda i, s=size: coll.update_one(
                    {"_id": f"d{spread(i, 7, s)}"}, {"$set": {"s": fresh()}}
                ),
            )
            r["find_one_and_update by _id"] = await timed(
                20,
                lambda i, s=size: coll.find_one_and_update(
                    {"_id": f"d{spread(i, 11, s)}"}, {"$inc": {"_version": 1}}
                ),
            )
            r["replace_one by _id"] = await timed(
                20,
                lambda i, s=size: coll.replace_one(
                    {"_id": f"d{spread(i, 13, s)}"}, {**doc(spread(i, 13, s)), "s": fresh()}
                ),
            )
            r["find_one by another field"] = await timed(
                5, lambda i, s=size: coll.find_one({"n": s - 1 - i})
            )

            async def versioned(i: int, writes: Writes, s: int = size) -> None:
                key = f"d{spread(i, 17, s)}"
                current = await coll.find_one({"_id": key}, {"_version": 1})
                assert current is not None
                await writes.find_one_and_update(
                    coll,
                    {"_id": key, "_version": current["_version"]},
                    {"$inc": {"_version": 1}, "$set": {"s": fresh()}},
                )

            r["versioned write, conditional (version in the filter)"] = await timed(
                10, lambda i: versioned(i, conditional)
            )
            r["versioned write, serialized (lock, bare _id)"] = await timed(
                30, lambda i: versioned(i, serialized)
            )
            results[size] = r
            print(f"  {size} docs: " + ", ".join(f"{k} {v:.1f} ms" for k, v in r.items()))
        await exactly_once(db, serialized, results)
        for op in results[100]:
            few, many = results[100][op], results[10_000][op]
            rows.append(
                {
                    "figure": f"store {op} (median, one connection)",
                    "value": f"{many:.1f} ms at 10,000 documents",
                    "baseline": f"{few:.1f} ms at 100 documents",
                    "target": "cost independent of the data (issue item 1, 3)",
                    "met": many <= few * 2 + 1,
                    "note": "",
                }
            )
    finally:
        await client.drop_database(db.name)
        await client.close()
    return rows
