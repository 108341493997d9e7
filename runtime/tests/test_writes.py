"""Conditional writes (pmm_runtime.writes, decision 0008): no update is lost and no condition
is broken when two clients or two processes write one document at the same time, on the
real store (FerretDB: serialized with locks; MongoDB: conditional filters)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError, WriteError

from pmm_contracts.envelope import EventData
from pmm_runtime.broker import is_outage
from pmm_runtime.changes import Aggregates
from pmm_runtime.errors import Conflict
from pmm_runtime.mongo import Document
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.writes import (
    LOCK_COLLECTION,
    GroupedUpdateFailed,
    LockTimeout,
    Writes,
    WriteStrategy,
    _Group,
    matches,
)

from .support import Counted, platform, watched_client

STRATEGIES = ["auto", "serialized"]
"""``auto`` is what the store needs (serialized on FerretDB); ``serialized`` runs the lock
path on MongoDB too. ``conditional`` on FerretDB is what decision 0005 shows losing updates."""


def test_matches_the_conditions_the_platform_writes_with() -> None:
    doc: Document = {
        "_id": "a",
        "_version": 3,
        "_applied": ["e1", "e2"],
        "available": 500,
        "expires_at": datetime(2026, 1, 1, tzinfo=UTC),
        "counts": {"open": 2},
        "holder": None,
    }
    assert matches(doc, {"_version": 3})
    assert not matches(doc, {"_version": 2})
    assert matches(doc, {"_applied": {"$ne": "e3"}})
    assert not matches(doc, {"_applied": {"$ne": "e2"}})
    assert matches(doc, {"_applied": "e1"})  # an array matches by element
    assert matches(doc, {"available": {"$gte": 500}})
    assert not matches(doc, {"available": {"$gte": 501}})
    assert matches(doc, {"expires_at": {"$lte": datetime(2026, 1, 2, tzinfo=UTC)}})
    assert matches(doc, {"counts.open": 2, "counts.closed": {"$exists": False}})
    assert matches(doc, {"holder": None, "missing": None})
    assert matches(doc, {"_applied": {"$size": 2}})
    assert not matches(doc, {"available": {"$gt": "text"}})  # other types never compare
    with pytest.raises(NotImplementedError):
        matches(doc, {"$or": [{"_version": 3}]})
    with pytest.raises(NotImplementedError):
        matches(doc, {"_version": {"$mod": [2, 1]}})


@dataclass
class Counter:
    id: str
    total: int = 0
    version: int = 0

    def add(self, amount: int) -> list[EventData]:
        self.total += amount
        return [Counted(counter_id=self.id, amount=amount)]


class Counters(Aggregates[Counter]):
    name = "counter"


@pytest.mark.integration
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_two_clients_changing_one_aggregate_lose_no_update(
    make_settings: Callable[..., ServiceSettings], unique: str, strategy: str
) -> None:
    """Two platforms (two store clients, each with one connection on FerretDB, as two
    processes of one service) apply 10 changes each to the same aggregate at once."""
    settings = make_settings(service_name="writes", store_write_strategy=strategy)
    first, second = platform(settings), platform(settings)
    topic = f"test.writes.{unique}"
    repos = [Counters(app.store("counters"), Counter, topic=topic) for app in (first, second)]
    assert await first.changes.create(repos[0], Counter(id="c"), [], actor="a", action="created")

    async def add(n: int) -> int:
        app, repo = (first, repos[0]) if n % 2 else (second, repos[1])
        while True:  # a Conflict (409) after the change loop's attempts: the client retries
            try:
                done = await app.changes.apply(
                    repo, "c", f"cmd-{n}", lambda c: c.add(n), actor="a", action="added"
                )
            except Conflict:
                continue
            assert done.changed
            return n

    try:
        added = await asyncio.gather(*(add(n) for n in range(1, 21)))
        document = await repos[0].store.get("c")
        assert document is not None
        assert document["total"] == sum(added) == sum(range(1, 21))
        assert document["_version"] == 21
        assert sorted(document["_applied"]) == sorted(f"cmd-{n}" for n in range(1, 21))
        assert len(document["_audit"]) == 21
        assert len(document["_outbox"]) == 20  # every event waits for the relay, none lost
        assert await first.db[LOCK_COLLECTION].count_documents({}) == 0
    finally:
        await first.mongo.drop_database(settings.database_name)
        await first.mongo.close()
        await second.mongo.close()


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pymongo import AsyncMongoClient
    from pmm_runtime.writes import Writes

    async def main(url, database, strategy, holder, takes):
        client = AsyncMongoClient(url, tz_aware=True)
        writes = Writes(client[database], holder=holder, strategy=strategy)
        budget, counter = client[database]["budgets"], client[database]["counters"]

        async def take():
            got = await writes.find_one_and_update(
                budget, {"_id": "b", "available": {"$gte": 1}}, {"$inc": {"available": -1}}
            )
            await writes.update_one(counter, {"_id": "n"}, {"$inc": {"seq": 1}}, upsert=True)
            return got is not None

        taken = sum(await asyncio.gather(*(take() for _ in range(takes))))
        await client.close()
        print(json.dumps({"taken": taken}))

    asyncio.run(main(*sys.argv[1:5], int(sys.argv[5])))
    """
)


@pytest.mark.integration
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_two_processes_never_overdraw_and_lose_no_increment(
    make_settings: Callable[..., ServiceSettings], strategy: str
) -> None:
    """Two OS processes take from one budget of 50 (40 concurrent takes each) and count
    every take on one counter: exactly 50 taken, nothing below zero, 80 counted."""
    settings = make_settings(service_name="writes")
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url)
    db = client[settings.database_name]
    await db["budgets"].insert_one({"_id": "b", "available": 50})
    try:
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                settings.mongodb_url,
                settings.database_name,
                strategy,
                f"worker-{n}",
                "40",
                stdout=subprocess.PIPE,
            )
            for n in range(2)
        ]
        outputs = [await w.communicate() for w in workers]
        assert [w.returncode for w in workers] == [0, 0]
        taken = [json.loads(out.decode())["taken"] for out, _ in outputs]
        budget = await db["budgets"].find_one({"_id": "b"})
        counter = await db["counters"].find_one({"_id": "n"})
        assert budget is not None
        assert counter is not None
        assert sum(taken) == 50
        assert budget["available"] == 0
        assert counter["seq"] == 80
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


@pytest.mark.integration
async def test_a_stale_lock_is_taken_over_and_a_live_one_waited_for(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    settings = make_settings(service_name="writes")
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name]
    writes = Writes(db, holder="me", strategy=WriteStrategy.SERIALIZED, lock_ttl_s=5, lock_wait_s=1)
    docs = db["docs"]
    await docs.insert_one({"_id": "d", "n": 0})
    now = datetime.now(UTC)
    try:
        # A holder that crashed a minute ago: its lock is taken over.
        await db[LOCK_COLLECTION].insert_one(
            {"_id": "docs/d", "holder": "crashed", "at": now - timedelta(minutes=1)}
        )
        assert await writes.update_one(docs, {"_id": "d", "n": 0}, {"$inc": {"n": 1}})
        assert await db[LOCK_COLLECTION].count_documents({}) == 0
        # A live holder: the write waits, then gives up without writing.
        await db[LOCK_COLLECTION].insert_one({"_id": "docs/d", "holder": "alive", "at": now})
        with pytest.raises(LockTimeout):
            await writes.update_one(docs, {"_id": "d"}, {"$inc": {"n": 1}})
        found: Any = await docs.find_one({"_id": "d"})
        assert found["n"] == 1
        # A condition that does not hold writes nothing.
        await db[LOCK_COLLECTION].delete_one({"_id": "docs/d"})
        assert not await writes.update_one(docs, {"_id": "d", "n": 0}, {"$inc": {"n": 1}})
        found = await docs.find_one({"_id": "d"})
        assert found["n"] == 1
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


@pytest.mark.integration
async def test_concurrent_inserts_are_one_call_and_each_caller_gets_its_own_outcome(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """Group commit (decision 0010): 40 coroutines inserting into one collection at once
    cost a few ``insert`` commands, not 40; a duplicate is its own caller's error only;
    a caller alone still inserts at once; locks taken and released concurrently are
    grouped too and none is left behind."""
    settings = make_settings(service_name="writes")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="me")
    docs = db["docs"]
    try:
        await docs.insert_one({"_id": "taken"})
        seen.sent.clear()
        ids = [f"d{n}" for n in range(40)] + ["taken"]
        outcomes = await asyncio.gather(
            *(writes.insert_one(docs, {"_id": i, "n": n}) for n, i in enumerate(ids)),
            return_exceptions=True,
        )
        assert outcomes[:40] == [None] * 40
        assert isinstance(outcomes[40], DuplicateKeyError)
        assert sum(seen.inserts()) == 41
        assert len(seen.inserts()) <= 3, seen.inserts()  # one call, or a few under load
        assert await docs.count_documents({}) == 41

        seen.sent.clear()
        await writes.insert_one(docs, {"_id": "alone"})
        assert seen.inserts() == [1]

        seen.sent.clear()
        await asyncio.gather(
            *(writes.update_one(docs, {"_id": f"d{n}"}, {"$inc": {"n": 1}}) for n in range(20))
        )
        lock_inserts = seen.inserts()  # the lock documents, grouped
        assert sum(lock_inserts) == 20, lock_inserts
        assert len(lock_inserts) < 20, lock_inserts
        assert await db[LOCK_COLLECTION].count_documents({}) == 0
        found = await docs.find({"_id": {"$in": [f"d{n}" for n in range(20)]}}).to_list(None)
        assert sorted(d["n"] for d in found) == list(range(1, 21))
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


@pytest.mark.integration
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_concurrent_updates_are_one_call_and_each_caller_learns_its_own_match(
    make_settings: Callable[..., ServiceSettings], strategy: str
) -> None:
    """Grouped updates (decision 0014): 30 holders of different documents' locks updating
    at once send a few ``update`` commands, not 30; a document that is not there answers
    False to its caller alone, an upsert True; a caller alone still sends one statement."""
    settings = make_settings(service_name="writes")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="me", strategy=strategy)
    docs = db["docs"]
    try:
        await docs.insert_many([{"_id": f"d{n}", "n": n} for n in range(30)])
        serialized = await writes.strategy() is WriteStrategy.SERIALIZED
        seen.sent.clear()
        calls = [writes.update_one(docs, {"_id": f"d{n}"}, {"$inc": {"n": 100}}) for n in range(30)]
        calls.insert(7, writes.update_one(docs, {"_id": "missing"}, {"$set": {"n": 1}}))
        calls.append(writes.update_one(docs, {"_id": "new"}, {"$set": {"n": 7}}, upsert=True))
        outcomes = await asyncio.gather(*calls)
        assert outcomes == [True] * 7 + [False] + [True] * 24, outcomes
        statements = seen.updates("docs")
        assert sum(statements) == 32, statements
        if serialized:
            assert len(statements) <= 4, statements  # one call, or a few under load
        found = {d["_id"]: d["n"] for d in await docs.find({}).to_list(None)}
        assert [found[f"d{n}"] for n in range(30)] == [n + 100 for n in range(30)]
        assert found["new"] == 7
        assert "missing" not in found
        assert await db[LOCK_COLLECTION].count_documents({}) == 0

        seen.sent.clear()
        assert await writes.update_one(docs, {"_id": "d0"}, {"$inc": {"n": 1}})
        assert seen.updates("docs") == [1]
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


@pytest.mark.integration
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_refused_statement_fails_its_group_as_an_outage_then_alone(
    make_settings: Callable[..., ServiceSettings], strategy: str
) -> None:
    """A statement the store refuses in a grouped update (FerretDB 1.24 stops at it and
    names it by a wrong index): every caller of that call learns that its outcome is
    unknown (``GroupedUpdateFailed``, an outage, so retried); the retries go one statement
    per call, where the faulty one fails with its own error and the others land."""
    settings = make_settings(service_name="writes")
    db_client, _ = watched_client(settings)
    db = db_client[settings.database_name]
    writes = Writes(db, holder="me", strategy=strategy)
    docs = db["docs"]
    try:
        await docs.insert_many([{"_id": f"d{n}", "n": n} for n in range(10)] + [{"_id": "text"}])
        await docs.update_one({"_id": "text"}, {"$set": {"n": "x"}})

        def calls() -> list[Any]:
            ups = [
                writes.update_one(docs, {"_id": f"d{n}"}, {"$set": {"n": -n}}) for n in range(10)
            ]
            ups.insert(4, writes.update_one(docs, {"_id": "text"}, {"$inc": {"n": 1}}))
            return ups

        first = await asyncio.gather(*calls(), return_exceptions=True)
        if await writes.strategy() is WriteStrategy.SERIALIZED:
            failed = [o for o in first if isinstance(o, GroupedUpdateFailed)]
            assert failed, first  # the faulty statement went out with others
            assert all(isinstance(o, GroupedUpdateFailed) or o is True for o in first), first
            assert is_outage(failed[0])
        again = await asyncio.gather(*calls(), return_exceptions=True)
        assert isinstance(again[4], WriteError), again
        assert not isinstance(again[4], GroupedUpdateFailed)
        assert again[:4] + again[5:] == [True] * 10, again
        found = {d["_id"]: d["n"] for d in await docs.find({}).to_list(None)}
        assert [found[f"d{n}"] for n in range(10)] == [-n for n in range(10)]
        assert found["text"] == "x"
        assert await db[LOCK_COLLECTION].count_documents({}) == 0
    finally:
        await db_client.drop_database(settings.database_name)
        await db_client.close()


@pytest.mark.integration
async def test_deletes_by_key_name_the_bare_id_and_an_old_lock_its_holder(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """FerretDB 1.24 answers a delete statement through its ``_id`` index only when the
    filter is a bare ``_id``; ``$in`` or any other field reads the whole collection. So the
    announcements of a relay page are deleted by one statement per id (one command,
    whatever backlog the collection holds), and a lock taken a moment ago by its bare id.
    A lock held for over half of ``lock_ttl_s`` might have been taken over by another
    process meanwhile: it is deleted only while it still names this holder."""
    settings = make_settings(service_name="writes")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="me", strategy=WriteStrategy.SERIALIZED, lock_ttl_s=0.2)
    marks, locks = db["marks"], db[LOCK_COLLECTION]
    try:
        await marks.insert_many([{"_id": f"m{n}"} for n in range(10)])
        seen.sent.clear()
        assert await writes.delete_immutable(marks, ["m1", "m2", "m3", "gone"]) == 3
        assert seen.sent == [("delete", "marks", 4)]
        assert seen.deleted == [("marks", {"_id": key}) for key in ("m1", "m2", "m3", "gone")]
        assert await marks.count_documents({}) == 7

        seen.deleted.clear()
        async with writes.locked("marks", "quick"):
            pass
        async with writes.locked("marks", "slow"):
            await asyncio.sleep(0.15)  # past half of lock_ttl_s
        assert seen.deleted == [
            (LOCK_COLLECTION, {"_id": "marks/quick"}),
            (LOCK_COLLECTION, {"_id": "marks/slow", "holder": "me"}),
        ]
        assert await locks.count_documents({}) == 0
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_the_lock_document_is_handed_over_within_the_process_and_never_left_behind(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """Decision 0014: 30 coroutines of one process writing one document in turn take its
    lock document once and delete it once, and every increment lands; a waiter cancelled
    while the lock document was kept for it leaves none behind; a lock document held on
    for longer than a third of ``lock_ttl_s`` is released, so another process (another
    holder) gets its turn while this one keeps writing."""
    settings = make_settings(service_name="writes")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="me", strategy=WriteStrategy.SERIALIZED)
    docs, locks = db["docs"], db[LOCK_COLLECTION]
    try:
        await docs.insert_one({"_id": "hot", "n": 0})
        seen.sent.clear()
        await asyncio.gather(
            *(writes.update_one(docs, {"_id": "hot"}, {"$inc": {"n": 1}}) for _ in range(30))
        )
        assert [(name, n) for name, c, n in seen.sent if c == LOCK_COLLECTION] == [
            ("insert", 1),
            ("delete", 1),
        ]
        # Taken a moment ago, so nobody can have taken it over: deleted by bare _id, which
        # FerretDB answers by its index (not by reading every held lock).
        assert seen.deleted == [(LOCK_COLLECTION, {"_id": "docs/hot"})]
        assert (await docs.find_one({"_id": "hot"}) or {})["n"] == 30
        assert await locks.count_documents({}) == 0

        inside, leave = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with writes.locked("docs", "hot"):
                inside.set()
                await leave.wait()

        first = asyncio.create_task(holder())
        await inside.wait()
        waiter = asyncio.create_task(writes.update_one(docs, {"_id": "hot"}, {"$inc": {"n": 1}}))
        await asyncio.sleep(0.05)
        leave.set()
        await asyncio.sleep(0)  # the holder leaves, keeping the lock for the waiter ...
        waiter.cancel()  # ... which is cancelled before its turn
        await asyncio.gather(first, waiter, return_exceptions=True)
        assert waiter.cancelled()
        assert await locks.count_documents({}) == 0

        quick = Writes(db, holder="me", strategy=WriteStrategy.SERIALIZED, lock_ttl_s=0.6)
        other = Writes(db, holder="other", strategy=WriteStrategy.SERIALIZED, lock_wait_s=5)
        stop = asyncio.Event()

        async def busy() -> int:
            done = 0
            while not stop.is_set():
                await asyncio.gather(
                    *(quick.update_one(docs, {"_id": "hot"}, {"$inc": {"n": 1}}) for _ in range(4))
                )
                done += 4
            return done

        running = asyncio.create_task(busy())
        await asyncio.sleep(0.1)
        assert await other.update_one(docs, {"_id": "hot"}, {"$set": {"seen_by": "other"}})
        stop.set()
        done = await running
        hot = await docs.find_one({"_id": "hot"}) or {}
        assert hot["seen_by"] == "other"
        assert hot["n"] == 30 + done
        assert await locks.count_documents({}) == 0
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


class _Recorded(_Group[str]):
    """A group whose call the test holds open and can fail, recording what went out."""

    def __init__(self) -> None:
        super().__init__(limit=64)
        self.sent: list[list[str]] = []
        self.gate = asyncio.Event()
        self.fail_whole: Exception | None = None

    async def _send(self, items: list[str]) -> dict[int, BaseException]:
        self.sent.append(items)
        await self.gate.wait()
        if self.fail_whole is not None:
            raise self.fail_whole
        return {i: ValueError(item) for i, item in enumerate(items) if item.startswith("bad")}


async def test_a_group_settles_each_caller_and_drops_a_cancelled_callers_unsent_entry() -> None:
    """The group-commit pattern of ``GroupInsert`` and ``GroupRelease`` (decision 0010):
    an entry failing alone fails only its caller; a caller cancelled while its entry waits
    behind a call in flight is never sent; an error of the whole call reaches every caller
    of that call."""
    group = _Recorded()
    first = asyncio.create_task(group._submit("a"))
    await asyncio.sleep(0.01)  # "a" is in flight, holding the turn
    waiting = asyncio.create_task(group._submit("gone"))
    others = [asyncio.create_task(group._submit(n)) for n in ("b", "bad1", "c")]
    await asyncio.sleep(0.01)
    waiting.cancel()
    group.gate.set()
    await first
    outcomes = await asyncio.gather(*others, return_exceptions=True)
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    assert group.sent == [["a"], ["b", "bad1", "c"]]
    assert waiting.cancelled()

    whole = _Recorded()
    whole.fail_whole = ConnectionError("store gone")
    whole.gate.set()
    results = await asyncio.gather(
        *(whole._submit(n) for n in ("x", "y", "z")), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results), results
    assert whole.sent == [["x", "y", "z"]]
