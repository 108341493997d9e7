"""The store's time per operation on the one connection a process has (the budget every
figure spends; issue 12 item 3): an insert, a lookup by ``_id``, an update by ``_id`` and a
lookup by another field, in a collection of 100 documents and of 10,000."""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from pymongo import AsyncMongoClient
from stack import Row, Run

Doc = dict[str, Any]


def doc(i: int) -> Doc:
    return {"_id": f"d{i}", "status": "open", "n": i, "body": "x" * 600, "_outbox": []}


async def timed(samples: int, op: Any) -> float:
    took = []
    for i in range(samples):
        t = time.perf_counter()
        await op(i)
        took.append((time.perf_counter() - t) * 1000)
    return statistics.median(took)


async def bench(run: Run) -> list[Row]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(run.store.url)
    db = client[f"bench_store_{run.run_id}"]
    rows: list[Row] = []
    try:
        results: dict[int, dict[str, float]] = {}
        coll = db[f"c{uuid.uuid4().hex[:6]}"]
        have = 0
        for size in (100, 10_000):
            for start in range(have, size, 1000):
                await coll.insert_many([doc(i) for i in range(start, min(size, start + 1000))])
            have = size
            r: dict[str, float] = {}
            r["insert_one"] = await timed(50, lambda i, s=size: coll.insert_one(doc(10**6 + s + i)))
            await coll.delete_many({"_id": {"$in": [f"d{10**6 + size + i}" for i in range(50)]}})
            r["find_one by _id"] = await timed(50, lambda i: coll.find_one({"_id": f"d{i * 7}"}))
            r["update_one by _id"] = await timed(
                50, lambda i: coll.update_one({"_id": f"d{i * 7}"}, {"$set": {"status": "x"}})
            )
            r["find_one_and_update by _id"] = await timed(
                20,
                lambda i: coll.find_one_and_update(
                    {"_id": f"d{i * 11}"}, {"$set": {"status": "y"}}
                ),
            )
            r["replace_one by _id"] = await timed(
                20, lambda i: coll.replace_one({"_id": f"d{i * 13}"}, doc(i * 13))
            )
            r["replace_one by _id + version"] = await timed(
                20,
                lambda i: coll.replace_one(
                    {"_id": f"d{i * 17}", "n": i * 17}, {**doc(i * 17), "status": "z"}
                ),
            )
            r["find_one by another field"] = await timed(
                5, lambda i, s=size: coll.find_one({"n": s - 1 - i})
            )
            results[size] = r
            print(f"  {size} docs: " + ", ".join(f"{k} {v:.1f} ms" for k, v in r.items()))
        for op in results[100]:
            few, many = results[100][op], results[10_000][op]
            rows.append(
                {
                    "figure": f"store {op} (median, one connection)",
                    "value": f"{many:.1f} ms at 10,000 documents",
                    "baseline": f"{few:.1f} ms at 100 documents",
                    "target": "(the budget: issue item 3)",
                    "met": many <= few * 2 + 1,
                    "note": "",
                }
            )
    finally:
        await client.drop_database(db.name)
        await client.close()
    return rows
