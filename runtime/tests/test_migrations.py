"""One-time start-up migrations (``pmm_runtime.migrations``), on the real store."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pymongo import AsyncMongoClient

from pmm_runtime.migrations import MIGRATIONS, once
from pmm_runtime.mongo import Document
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.writes import Writes

pytestmark = pytest.mark.integration


async def test_a_migration_runs_until_it_completes_then_never_again(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    settings = make_settings(service_name="migrations")
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name]
    writes = Writes(db, holder="me")
    runs: list[str] = []

    async def crashing() -> dict[str, int]:
        runs.append("crashed")
        raise RuntimeError("the process stopped midway")

    async def migrate() -> dict[str, int]:
        runs.append("done")
        return {"documents": 3}

    try:
        with pytest.raises(RuntimeError):
            await once(db[MIGRATIONS], writes, "m1", crashing)
        assert await db[MIGRATIONS].find_one({"_id": "m1"}) is None  # no marker: runs again
        assert await once(db[MIGRATIONS], writes, "m1", migrate) == {"documents": 3}
        assert await once(db[MIGRATIONS], writes, "m1", migrate) is None
        assert runs == ["crashed", "done"]
        marker = await db[MIGRATIONS].find_one({"_id": "m1"})
        assert marker is not None
        assert marker["documents"] == 3
        assert "at" in marker
        # Another replica ran it at the same start and wrote its marker first: kept.

        async def raced() -> dict[str, int]:
            await db[MIGRATIONS].insert_one({"_id": "m2", "by": "other"})
            return {"documents": 1}

        assert await once(db[MIGRATIONS], writes, "m2", raced) == {"documents": 1}
        assert (await db[MIGRATIONS].find_one({"_id": "m2"}) or {}).get("by") == "other"
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
