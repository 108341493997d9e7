"""The yearly figures' buckets count each delta once and stay small (decision 0011), on the
real store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from pmm_runtime.mongo import Document
from pmm_runtime.once import INFLIGHT
from pmm_runtime.writes import Writes
from pmm_signalen.adapters.figures import APPLIED, YearlyFigures, applied_key
from pmm_signalen.settings import SignalenSettings

pytestmark = pytest.mark.integration


def delta(n: int) -> dict[str, Any]:
    return {"id": f"case-{n}:evaluated", "year": 2031, "bucket": 7, "counts": {"cases": 1}}


async def test_a_bucket_counts_each_delta_once_without_listing_them_all(
    make_settings: Callable[..., SignalenSettings],
) -> None:
    """60 deltas into one bucket, each applied twice (a redelivery), singly and in groups:
    60 counted, each with its marker, and the bucket lists no more than a few in flight.
    A bucket of the old form (every delta in ``_applied``) is migrated at start-up: its
    deltas get markers, the list goes, and they still count once."""
    settings = make_settings(SignalenSettings)
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name]
    figures = YearlyFigures(db["figures"], db["measures"], [], writes=Writes(db, holder="test"))
    try:
        await figures.create_indexes()
        for n in range(30):
            assert await figures.apply(delta(n))
        assert await figures.apply_all([delta(n) for n in range(30, 60)]) == 30
        for n in range(0, 60, 7):
            assert not await figures.apply(delta(n))
        assert await figures.apply_all([delta(n) for n in range(25, 35)]) == 0
        bucket = await db["figures"].find_one({"_id": "2031:07"})
        assert bucket is not None
        assert bucket["counts"]["cases"] == 60
        assert len(bucket.get(INFLIGHT) or []) <= figures.once.keep + 30
        assert APPLIED not in bucket
        assert await figures.markers.count_documents({}) == 60
        assert await figures.apply(delta(60))  # compacts first: what has markers goes
        bucket = await db["figures"].find_one({"_id": "2031:07"})
        assert bucket is not None
        assert len(bucket.get(INFLIGHT) or []) <= 1

        old = [delta(100 + n) for n in range(3)]
        await db["figures"].insert_one(
            {
                "_id": "2031:08",
                "year": 2031,
                "counts": {"cases": 3},
                "_v": 3,
                APPLIED: [applied_key(d["id"]) for d in old],
            }
        )
        assert await figures.migrate() == 1
        migrated = await db["figures"].find_one({"_id": "2031:08"})
        assert migrated is not None
        assert APPLIED not in migrated
        for d in old:
            assert not await figures.apply({**d, "bucket": 8})
        assert await figures.apply({**delta(200), "bucket": 8})
        migrated = await db["figures"].find_one({"_id": "2031:08"})
        assert migrated is not None
        assert migrated["counts"]["cases"] == 4
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
