"""The due-date index (pmm_runtime.due): what a periodic scan asks, from a small collection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest
from pymongo import AsyncMongoClient

from pmm_runtime.due import DueIndex
from pmm_runtime.mongo import Document
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.writes import Writes

pytestmark = pytest.mark.integration


async def test_entries_follow_the_dates_and_a_rebuild_drops_stale_ones(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    settings = make_settings(service_name="due")
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name]
    due = DueIndex(db["deadlines"], Writes(db, holder="test"))
    try:
        await due.create_indexes()
        await due.set("a", date(2026, 3, 1))
        await due.set("b", "2026-01-15")
        await due.set("c", date(2026, 5, 1))
        await due.set("d", None)  # no date: no entry
        assert await due.before("2026-04-01", limit=10) == ["b", "a"]  # earliest first
        assert await due.before("2026-04-01", limit=1) == ["b"]
        await due.set("b", None)  # its date is gone
        await due.set("a", date(2026, 6, 1))  # moved
        assert await due.before("2026-04-01", limit=10) == []
        assert await due.before("2026-07-01", limit=10) == ["c", "a"]

        async def aggregates() -> AsyncIterator[tuple[str, date | str | None]]:
            yield "a", "2026-02-01"
            yield "e", date(2026, 2, 2)

        # "c" has no aggregate with a date any more (a crash left it): the rebuild drops it
        assert await due.rebuild(aggregates()) == 2
        assert await due.before("2027-01-01", limit=10) == ["a", "e"]
        assert await db["deadlines"].count_documents({}) == 2
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
