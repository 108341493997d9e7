"""A regievoerder's cases are one document read by bare ``_id`` (``director_cases``), on the
real store: FerretDB 1.24 decodes every case for a query on ``case_directors`` (decision
0008). Cases written before the index existed are indexed once at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from pmm_runtime.migrations import MIGRATIONS
from pmm_runtime.mongo import Document
from pmm_runtime.writes import Writes
from pmm_signalen.adapters.repository import (
    DIRECTOR_CASES,
    DIRECTOR_CASES_BUILT,
    CaseRepository,
)
from pmm_signalen.settings import SignalenSettings

pytestmark = pytest.mark.integration


class Sent(monitoring.CommandListener):
    """Each command the client sends: its name, collection and filter."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, dict[str, Any]]] = []

    def started(self, event: Any) -> None:
        command = event.command
        self.commands.append(
            (
                event.command_name,
                str(command.get(event.command_name)),
                dict(command.get("filter") or {}),
            )
        )

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


@dataclass
class Store:
    client: AsyncMongoClient[Document]
    cases: CaseRepository
    sent: Sent

    def repository(self) -> CaseRepository:
        """Another process's repository on the same database (a restart)."""
        db = self.cases.collection.database
        return CaseRepository(db["cases"], Writes(db, holder="restarted"))


@pytest.fixture
async def store(make_settings: Callable[..., SignalenSettings]) -> AsyncIterator[Store]:
    settings = make_settings(SignalenSettings)
    sent = Sent()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, event_listeners=[sent]
    )
    db = client[settings.database_name]
    cases = CaseRepository(db["cases"], Writes(db, holder="test"))
    try:
        await cases.create_indexes()
        yield Store(client, cases, sent)
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_a_director_sees_exactly_the_cases_they_directed(store: Store) -> None:
    """Two regievoerders, a handover, every event handled twice (a redelivery): each sees
    the cases they direct or directed, each once; someone else sees none."""
    cases = store.cases
    for _ in range(2):
        await cases.add_director("case-1", "LMM-1", "regie-a")
        await cases.add_director("case-2", "LMM-2", "regie-a")
        await cases.add_director("case-2", "LMM-2", "regie-b")  # handover
        await cases.add_director("case-3", "LMM-3", "regie-b")
    assert sorted(await cases.directed_by("regie-a")) == ["case-1", "case-2"]
    assert sorted(await cases.directed_by("regie-b")) == ["case-2", "case-3"]
    assert await cases.directed_by("nobody") == []
    assert sorted(await cases.directors("case-2")) == ["regie-a", "regie-b"]
    index = await cases.directed.find_one({"_id": "regie-a"})
    assert index is not None
    assert len(index["cases"]) == 2  # no duplicates after the redelivery

    # A crash after the case's write and before the director's: the redelivered event
    # (the consumer had not committed it) writes the director's document.
    await cases.collection.update_one(
        {"_id": "case-4"},
        {"$set": {"case_number": "LMM-4"}, "$addToSet": {"case_directors": "regie-a"}},
        upsert=True,
    )
    assert "case-4" not in await cases.directed_by("regie-a")
    await cases.add_director("case-4", "LMM-4", "regie-a")
    assert sorted(await cases.directed_by("regie-a")) == ["case-1", "case-2", "case-4"]


async def test_directed_by_reads_one_document_by_bare_id(store: Store) -> None:
    cases = store.cases
    await cases.add_director("case-1", "LMM-1", "regie-a")
    await cases.add_director("case-2", "LMM-2", "regie-b")
    store.sent.commands.clear()
    assert await cases.directed_by("regie-a") == ["case-1"]
    assert await cases.directed_by("nobody") == []
    assert store.sent.commands == [
        ("find", DIRECTOR_CASES, {"_id": "regie-a"}),
        ("find", DIRECTOR_CASES, {"_id": "nobody"}),
    ]


async def test_the_start_up_rebuild_indexes_cases_written_before_once(store: Store) -> None:
    """Cases with ``case_directors`` and no director documents (an existing database): the
    first start fills ``director_cases`` and leaves its marker; the next start reads only
    the marker (no scan of the cases)."""
    cases = store.cases
    await cases.collection.insert_many(
        [
            {"_id": "old-1", "case_number": "LMM-1", "case_directors": ["regie-a"]},
            {"_id": "old-2", "case_number": "LMM-2", "case_directors": ["regie-a", "regie-b"]},
            {"_id": "old-3", "case_number": "LMM-3"},  # no director yet
        ]
    )
    await cases.add_director("new-1", "LMM-4", "regie-b")  # written by this version already
    assert await cases.directed_by("regie-a") == []

    await cases.rebuild_director_index()
    assert sorted(await cases.directed_by("regie-a")) == ["old-1", "old-2"]
    assert sorted(await cases.directed_by("regie-b")) == ["new-1", "old-2"]
    marker = await cases.migrations.find_one({"_id": DIRECTOR_CASES_BUILT})
    assert marker is not None
    assert marker["directors"] == 2

    store.sent.commands.clear()
    restarted = store.repository()
    await restarted.rebuild_director_index()
    assert store.sent.commands == [("find", MIGRATIONS, {"_id": DIRECTOR_CASES_BUILT})]
    assert sorted(await restarted.directed_by("regie-b")) == ["new-1", "old-2"]
