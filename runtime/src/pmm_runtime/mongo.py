"""MongoDB through PyMongo's own asyncio API (``AsyncMongoClient``); no Motor.

Only what FerretDB 1.x also supports is used: single-document atomic updates,
``find_one_and_update``, unique and compound indexes, basic aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


def create_client(
    url: str, *, app_name: str, listeners: Sequence[monitoring._EventListener] = ()
) -> AsyncMongoClient[Document]:
    """``listeners``: command monitoring of this client only (``telemetry.MongoSpans``)."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        event_listeners=list(listeners),
        tz_aware=True,
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
    )


async def ping(database: AsyncDatabase[Document]) -> bool:
    try:
        await database.command("ping")
    except Exception:
        return False
    return True
