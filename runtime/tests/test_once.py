"""Exactly-once updates of a hot document that keeps only its keys in flight (decision 0011),
on the real store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pymongo import AsyncMongoClient

from pmm_runtime.mongo import Document
from pmm_runtime.once import EPOCH, INFLIGHT, Applied, ApplyOnce, Refused, Seen
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.writes import LOCK_COLLECTION, Writes, WriteStrategy

from .support import watched_client

pytestmark = pytest.mark.integration


async def _apply_and_mark(once: ApplyOnce, key: str, cents: int = 1) -> str:
    """What a caller does: apply, then write the key's marker (also after a crash left the
    key in flight)."""
    outcome = await once.apply(
        "budget",
        [{"k": key, "n": cents}],
        {"$inc": {"available": -cents, "taken": cents}},
        condition={"available": {"$gte": cents}},
    )
    if isinstance(outcome, Refused):
        return "refused"
    if isinstance(outcome, Seen) and not outcome.inflight:
        return "seen"
    await once.mark({"_id": key})
    return "applied" if isinstance(outcome, Applied) else "seen"


async def test_each_key_counts_once_and_the_document_stays_small(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """Two writers (two store clients, as two processes) apply 60 keys each, 20 of them the
    same keys, concurrently and then again (a retry of everything), with a budget of 90:
    exactly 90 taken, each key at most once, nothing below zero, and the document lists
    no more than ``keep`` keys plus those in flight, not the 100 it saw."""
    settings = make_settings(service_name="once")
    clients: list[AsyncMongoClient[Document]] = [
        AsyncMongoClient(settings.mongodb_url, tz_aware=True) for _ in range(2)
    ]
    onces = [
        ApplyOnce(
            Writes(c[settings.database_name], holder=f"w{n}"),
            c[settings.database_name]["budgets"],
            c[settings.database_name]["ledger"],
            keep=8,
        )
        for n, c in enumerate(clients)
    ]
    db = clients[0][settings.database_name]
    await db["budgets"].insert_one({"_id": "budget", "available": 90, "taken": 0})
    try:
        keys = [
            [f"shared-{i}" for i in range(20)] + [f"own{n}-{i}" for i in range(40)] for n in (0, 1)
        ]
        for _ in range(2):  # the second round is every command retried
            outcomes = await asyncio.gather(
                *(_apply_and_mark(onces[n], key) for n in (0, 1) for key in keys[n])
            )
        assert await _apply_and_mark(onces[0], "one-more") == "refused"  # compacts first
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert budget["available"] == 0
        assert budget["taken"] == 90
        assert len(budget.get(INFLIGHT) or []) <= 8, budget[INFLIGHT]
        assert budget.get(EPOCH, 0) > 0  # compacted along the way
        assert "refused" in outcomes  # the budget ran out: the rest was refused
        marked = await db["ledger"].count_documents({})
        assert marked == 90  # one marker per key applied, none for a refused one
    finally:
        await clients[0].drop_database(settings.database_name)
        for c in clients:
            await c.close()


async def test_a_key_applied_without_its_marker_stays_in_flight_with_its_entry(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """A crash between the update and the marker: the key stays in flight (compaction does
    not take it off), a retry is ``Seen`` with what the first attempt applied, and after
    its marker it is taken off at the next compaction."""
    settings = make_settings(service_name="once")
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name]
    once = ApplyOnce(Writes(db, holder="me"), db["budgets"], db["ledger"], keep=2)
    await db["budgets"].insert_one({"_id": "budget", "available": 100, "taken": 0})
    try:
        first = await once.apply("budget", [{"k": "crashed", "n": 7}], {"$inc": {"taken": 7}})
        assert isinstance(first, Applied)  # ... and no marker: the process died here
        for n in range(6):
            assert await _apply_and_mark(once, f"k{n}") == "applied"
        retry = await once.apply("budget", [{"k": "crashed", "n": 9}], {"$inc": {"taken": 9}})
        assert isinstance(retry, Seen)
        assert retry.inflight == [{"k": "crashed", "n": 7}]
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert budget["taken"] == 7 + 6
        assert budget[INFLIGHT][0]["k"] == "crashed"

        await db["ledger"].insert_one({"_id": "crashed"})  # the retry writes its marker
        assert await once.compact("budget", budget[INFLIGHT]) == len(budget[INFLIGHT])
        again = await once.apply("budget", [{"k": "crashed", "n": 7}], {"$inc": {"taken": 7}})
        assert again == Seen(marked=["crashed"])
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert budget[INFLIGHT] == []
        assert budget["taken"] == 13

        assert isinstance(
            await once.apply("missing", [{"k": "x"}], {"$inc": {"taken": 1}}), Refused
        )
        upserted = await once.apply("new", [{"k": "y"}], {"$inc": {"n": 1}}, upsert=True)
        assert isinstance(upserted, Applied)
        assert upserted.document["n"] == 1
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_on_ferretdb_the_document_and_the_marker_are_read_once_under_the_lock(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """Decision 0013: with the serialized strategy one exactly-once update reads the
    document once, under its lock, and looks for the key's marker there: lock, read,
    marker, ``findAndModify``, release, and nothing else."""
    settings = make_settings(service_name="once")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="me", strategy=WriteStrategy.SERIALIZED)
    once = ApplyOnce(writes, db["budgets"], db["ledger"])
    await db["budgets"].insert_one({"_id": "budget", "available": 10, "taken": 0})
    try:
        await writes.strategy()
        seen.sent.clear()
        assert await _apply_and_mark(once, "k1", cents=4) == "applied"
        assert [(name, c) for name, c, _ in seen.sent] == [
            ("insert", LOCK_COLLECTION),  # take the budget's lock
            ("find", "budgets"),  # the budget, under the lock
            ("find", "ledger"),  # the key's marker
            ("findAndModify", "budgets"),
            ("delete", LOCK_COLLECTION),  # release
            ("insert", "ledger"),  # the caller's marker
        ]
        seen.sent.clear()
        assert await _apply_and_mark(once, "k2", cents=7) == "refused"
        assert [name for name, _, _ in seen.sent] == ["insert", "find", "find", "delete"]
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert (budget["available"], budget["taken"]) == (6, 4)
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_a_compaction_does_not_read_the_markers_this_process_wrote(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """Decision 0014: markers are never removed, so the keys this process marked are
    remembered: 20 keys applied and marked one after the other, with compactions along
    the way, read the marker collection once per key (its own check before it is applied)
    and never again; a marker another process wrote is read from the store."""
    settings = make_settings(service_name="once")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    once = ApplyOnce(Writes(db, holder="me"), db["budgets"], db["ledger"], keep=4)
    await db["budgets"].insert_one({"_id": "budget", "available": 100, "taken": 0})
    try:
        await once.writes.strategy()
        seen.sent.clear()
        for n in range(20):
            assert await _apply_and_mark(once, f"k{n}") == "applied"
        assert seen.finds("ledger") == 20
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert budget.get(EPOCH, 0) >= 3  # compacted along the way
        assert len(budget[INFLIGHT]) <= 5
        assert await once.mark({"_id": "k3"}) is False  # there already

        other = ApplyOnce(Writes(db, holder="other"), db["budgets"], db["ledger"], keep=4)
        assert await _apply_and_mark(other, "theirs") == "applied"
        assert await once.marked("theirs")  # read from the store
        assert await _apply_and_mark(once, "theirs") == "seen"
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert budget["taken"] == 21
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_a_handed_over_lock_knows_the_document_and_forgets_it_after_another_write(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    """Decision 0014: 20 bookings of one budget at once read the budget from the store once
    (the lock document stays in this process, so the document the last booking wrote is
    the one the store holds); a write of the budget that is not a booking makes the next
    booking read it again, so the budget is never overdrawn."""
    settings = make_settings(service_name="once")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="me", strategy=WriteStrategy.SERIALIZED)
    once = ApplyOnce(writes, db["budgets"], db["ledger"], keep=64)
    await db["budgets"].insert_one({"_id": "budget", "available": 100, "taken": 0})
    try:
        await writes.strategy()
        seen.sent.clear()
        outcomes = await asyncio.gather(*(_apply_and_mark(once, f"k{n}") for n in range(20)))
        assert outcomes == ["applied"] * 20
        assert seen.finds("budgets") == 1
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert (budget["available"], budget["taken"]) == (80, 20)

        await db["budgets"].update_one({"_id": "budget"}, {"$set": {"available": 10}})
        first, other, last = await asyncio.gather(
            _apply_and_mark(once, "a", cents=4),
            writes.update_one(
                db["budgets"],
                {"_id": "budget", "available": {"$gte": 6}},
                {"$inc": {"available": -6}},
            ),
            _apply_and_mark(once, "c", cents=1),
        )
        budget = await db["budgets"].find_one({"_id": "budget"})
        assert budget is not None
        assert first == "applied"
        assert (other, last, budget["available"]) in ((True, "refused", 0), (False, "applied", 5))
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
